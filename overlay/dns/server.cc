#include "overlay/dns/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace skep::dns {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using boost::system::error_code;

namespace {

constexpr const char* kListenAddress = "127.0.0.11";
constexpr uint16_t kDnsPort = 53;
// A UDP query longer than this is cut short by the receive and then fails to parse: FORMERR.
constexpr size_t kUdpQueryBuffer = 4096;
// How long a listener waits before accepting again after an accept error (EMFILE and such).
constexpr std::chrono::seconds kAcceptRetry{1};

struct Upstream {
  asio::ip::address address;
  uint16_t port = kDnsPort;
};

std::optional<Upstream> ParseUpstream(const std::string& text) {
  std::string host = text;
  std::string port;
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    if (close == std::string::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    const std::string rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (!rest.starts_with(':')) return std::nullopt;
      port = rest.substr(1);
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    host = text.substr(0, text.find(':'));
    port = text.substr(text.find(':') + 1);
  }
  error_code ec;
  Upstream u;
  u.address = asio::ip::make_address(host, ec);
  if (ec) return std::nullopt;
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    const int p = std::stoi(port);
    if (p < 1 || p > 65535) return std::nullopt;
    u.port = static_cast<uint16_t>(p);
  }
  return u;
}

std::string Frame(const std::string& message) {
  std::string out;
  out.reserve(2 + message.size());
  out.push_back(static_cast<char>(message.size() >> 8));
  out.push_back(static_cast<char>(message.size() & 0xFF));
  out += message;
  return out;
}

size_t FrameLength(const std::array<uint8_t, 2>& len) {
  return static_cast<size_t>(len[0]) << 8 | len[1];
}

struct ListenerFds {
  int datagram = -1;
  int stream = -1;
  void CloseAll() {
    if (datagram >= 0) close(datagram);
    if (stream >= 0) close(stream);
    datagram = stream = -1;
  }
};

// A socket bound to 127.0.0.11:53 in the calling thread's network namespace.
int BoundSocket(int type, const std::string& netns, std::string* error) {
  const char* kind = type == SOCK_DGRAM ? "udp" : "tcp";
  auto fail = [&](const char* what, int fd) {
    *error = std::string("dns: cannot ") + what + " " + kListenAddress + ":53/" + kind +
             " in network namespace " + netns + ": " + strerror(errno);
    if (fd >= 0) close(fd);
    return -1;
  };
  const int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail("create a socket for", -1);
  const int one = 1;
  if (type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
    return fail("set SO_REUSEADDR on", fd);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(kDnsPort);
  inet_pton(AF_INET, kListenAddress, &addr.sin_addr);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
    return fail("bind", fd);
  if (type == SOCK_STREAM && listen(fd, SOMAXCONN) != 0) return fail("listen on", fd);
  return fd;
}

// Makes the listener's sockets inside the namespace, on a thread of its own: setns changes
// only the calling thread's namespace, and that thread ends here.
ListenerFds OpenInNamespace(const std::string& netns) {
  ListenerFds fds;
  std::string error;
  std::thread t([&] {
    const int ns = open(netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
      error = "dns: cannot open the network namespace " + netns + ": " + strerror(errno);
      return;
    }
    const int rc = setns(ns, CLONE_NEWNET);
    const int setns_errno = errno;
    close(ns);
    if (rc != 0) {
      error = "dns: cannot enter the network namespace " + netns + ": " + strerror(setns_errno);
      return;
    }
    fds.datagram = BoundSocket(SOCK_DGRAM, netns, &error);
    if (fds.datagram >= 0) fds.stream = BoundSocket(SOCK_STREAM, netns, &error);
  });
  t.join();
  if (!error.empty()) {
    fds.CloseAll();
    throw std::runtime_error(error);
  }
  return fds;
}

}  // namespace

class DnsServer::Impl : public std::enable_shared_from_this<DnsServer::Impl> {
 public:
  Impl(asio::io_context& io, std::vector<Upstream> upstreams, DnsServerOptions options)
      : strand_(asio::make_strand(io)),
        upstreams_(std::move(upstreams)),
        options_(options),
        rng_(std::random_device{}()) {}

  void Add(const std::string& id, const std::string& netns) {
    ListenerFds fds = OpenInNamespace(netns);
    std::shared_ptr<Listener> l;
    try {
      l = std::make_shared<Listener>(strand_, id);
      l->datagrams.assign(udp::v4(), fds.datagram);
      fds.datagram = -1;
      l->acceptor.assign(tcp::v4(), fds.stream);
      fds.stream = -1;
    } catch (const std::exception& e) {
      fds.CloseAll();
      throw std::runtime_error("dns: cannot serve the sockets made in network namespace " + netns +
                               ": " + e.what());
    }
    asio::post(strand_, [self = shared_from_this(), l] { self->Install(l); });
  }

  void SetNames(const std::string& id, std::shared_ptr<const Names> names) {
    asio::post(strand_, [self = shared_from_this(), id, names = std::move(names)]() mutable {
      if (!self->stopped_) self->names_[id] = std::move(names);
    });
  }

  void Remove(const std::string& id) {
    asio::post(strand_, [self = shared_from_this(), id] {
      self->names_.erase(id);
      const auto it = self->listeners_.find(id);
      if (it == self->listeners_.end()) return;
      self->CloseListener(*it->second);
      self->listeners_.erase(it);
    });
  }

  void Stop() {
    asio::post(strand_, [self = shared_from_this()] {
      self->stopped_ = true;
      for (auto& [id, l] : self->listeners_)
        self->CloseListener(*l);
      self->listeners_.clear();
      self->names_.clear();
      for (const auto& f : self->forwards_) {
        f->done = true;
        self->CloseAttempt(*f);
        f->timer.cancel();
      }
      self->forwards_.clear();
    });
  }

 private:
  using Executor = asio::strand<asio::io_context::executor_type>;
  struct TcpClient;

  struct Listener {
    Listener(const Executor& strand, std::string id)
        : id(std::move(id)), datagrams(strand), acceptor(strand), accept_retry(strand) {}
    std::string id;
    udp::socket datagrams;
    tcp::acceptor acceptor;
    asio::steady_timer accept_retry;
    std::array<char, kUdpQueryBuffer> buffer{};
    udp::endpoint sender;
    std::set<std::shared_ptr<TcpClient>> clients;
    bool closed = false;
  };

  struct TcpClient {
    TcpClient(const Executor& strand, tcp::socket s, std::shared_ptr<Listener> l)
        : listener(std::move(l)), socket(std::move(s)), deadline(strand) {}
    std::shared_ptr<Listener> listener;
    tcp::socket socket;
    asio::steady_timer deadline;
    // Invariant: only the deadline armed with the current generation may close the client.
    uint64_t deadline_generation = 0;
    std::array<uint8_t, 2> length{};
    std::string in;
    std::string out;
    bool closed = false;
  };

  // A query on its way to the upstreams.
  struct Forward {
    explicit Forward(const Executor& strand) : timer(strand) {}
    std::shared_ptr<Listener> listener;
    Query query;
    std::string wire;                       // the client's message with our id
    uint16_t id = 0;                        // ours
    std::shared_ptr<TcpClient> tcp_client;  // null: a UDP client, at `client`
    udp::endpoint client;
    size_t next_upstream = 0;
    // Invariant: only handlers of the current attempt act, and none once `done`.
    uint64_t attempt = 0;
    bool done = false;
    std::optional<udp::socket> udp_socket;
    std::optional<tcp::socket> tcp_socket;
    asio::steady_timer timer;
    std::vector<char> buffer;
    std::array<uint8_t, 2> length{};
    std::string out;
    std::optional<std::string> fallback;  // a SERVFAIL or REFUSED, relayed if nothing better
  };

  void Install(const std::shared_ptr<Listener>& l) {
    if (stopped_) {
      CloseListener(*l);
      return;
    }
    auto& slot = listeners_[l->id];
    if (slot) CloseListener(*slot);
    slot = l;
    ReceiveUdp(l);
    Accept(l);
  }

  void CloseListener(Listener& l) {
    l.closed = true;
    error_code ec;
    l.datagrams.close(ec);
    l.acceptor.close(ec);
    l.accept_retry.cancel();
    const auto clients = l.clients;
    for (const auto& c : clients)
      CloseClient(c);
  }

  const Names& NamesOf(const std::string& id) const {
    static const Names kNone;
    const auto it = names_.find(id);
    return it == names_.end() || !it->second ? kNone : *it->second;
  }

  // --- UDP clients ---

  void ReceiveUdp(const std::shared_ptr<Listener>& l) {
    l->datagrams.async_receive_from(asio::buffer(l->buffer), l->sender,
                                    [self = shared_from_this(), l](const error_code& ec, size_t n) {
                                      if (l->closed || ec == asio::error::operation_aborted) return;
                                      if (!ec)
                                        self->OnUdpQuery(l, std::string_view(l->buffer.data(), n),
                                                         l->sender);
                                      self->ReceiveUdp(l);
                                    });
  }

  void OnUdpQuery(const std::shared_ptr<Listener>& l, std::string_view bytes,
                  const udp::endpoint& from) {
    auto parsed = ParseQuery(bytes);
    if (auto* rejected = std::get_if<Rejection>(&parsed)) {
      if (rejected->reply) SendUdp(l, from, std::move(*rejected->reply));
      return;
    }
    Query& q = std::get<Query>(parsed);
    Decision d = Resolve(q, NamesOf(l->id), q.UdpLimit(), rng_());
    if (auto* local = std::get_if<LocalReply>(&d)) {
      SendUdp(l, from, std::move(local->bytes));
      return;
    }
    StartForward(l, std::move(q), std::string(bytes), nullptr, from);
  }

  void SendUdp(const std::shared_ptr<Listener>& l, const udp::endpoint& to, std::string bytes) {
    auto message = std::make_shared<std::string>(std::move(bytes));
    l->datagrams.async_send_to(asio::buffer(*message), to,
                               [l, message](const error_code&, size_t) {});
  }

  // --- TCP clients ---

  void Accept(const std::shared_ptr<Listener>& l) {
    l->acceptor.async_accept(
        strand_, [self = shared_from_this(), l](const error_code& ec, tcp::socket s) {
          if (l->closed || ec == asio::error::operation_aborted) return;
          if (ec) {
            l->accept_retry.expires_after(kAcceptRetry);
            l->accept_retry.async_wait([self, l](const error_code& wait_ec) {
              if (!wait_ec && !l->closed) self->Accept(l);
            });
            return;
          }
          if (l->clients.size() >= self->options_.max_tcp_per_listener) {
            error_code ignored;
            s.close(ignored);
          } else {
            auto c = std::make_shared<TcpClient>(self->strand_, std::move(s), l);
            l->clients.insert(c);
            self->ReadTcpQuery(c);
          }
          self->Accept(l);
        });
  }

  void ArmDeadline(const std::shared_ptr<TcpClient>& c) {
    const uint64_t generation = ++c->deadline_generation;
    c->deadline.expires_after(options_.tcp_idle_timeout);
    c->deadline.async_wait([self = shared_from_this(), c, generation](const error_code& ec) {
      if (!ec && generation == c->deadline_generation) self->CloseClient(c);
    });
  }

  void DisarmDeadline(const std::shared_ptr<TcpClient>& c) {
    ++c->deadline_generation;
    c->deadline.cancel();
  }

  void CloseClient(const std::shared_ptr<TcpClient>& c) {
    if (c->closed) return;
    c->closed = true;
    error_code ec;
    c->socket.close(ec);
    c->deadline.cancel();
    c->listener->clients.erase(c);
  }

  void ReadTcpQuery(const std::shared_ptr<TcpClient>& c) {
    ArmDeadline(c);
    asio::async_read(c->socket, asio::buffer(c->length),
                     [self = shared_from_this(), c](const error_code& ec, size_t) {
                       if (c->closed) return;
                       const size_t n = FrameLength(c->length);
                       if (ec || n == 0) return self->CloseClient(c);
                       c->in.resize(n);
                       asio::async_read(c->socket, asio::buffer(c->in),
                                        [self, c](const error_code& body_ec, size_t) {
                                          if (c->closed) return;
                                          if (body_ec) return self->CloseClient(c);
                                          self->DisarmDeadline(c);
                                          self->OnTcpQuery(c);
                                        });
                     });
  }

  void OnTcpQuery(const std::shared_ptr<TcpClient>& c) {
    auto parsed = ParseQuery(c->in);
    if (auto* rejected = std::get_if<Rejection>(&parsed)) {
      if (!rejected->reply) return CloseClient(c);
      return WriteTcp(c, std::move(*rejected->reply));
    }
    Query& q = std::get<Query>(parsed);
    Decision d = Resolve(q, NamesOf(c->listener->id), kMaxTcpMessage, rng_());
    if (auto* local = std::get_if<LocalReply>(&d)) return WriteTcp(c, std::move(local->bytes));
    StartForward(c->listener, std::move(q), std::move(c->in), c, {});
  }

  void WriteTcp(const std::shared_ptr<TcpClient>& c, std::string reply) {
    if (c->closed) return;
    c->out = Frame(reply);
    ArmDeadline(c);
    asio::async_write(c->socket, asio::buffer(c->out),
                      [self = shared_from_this(), c](const error_code& ec, size_t) {
                        if (c->closed) return;
                        if (ec) return self->CloseClient(c);
                        self->ReadTcpQuery(c);
                      });
  }

  // --- forwarding ---

  void StartForward(const std::shared_ptr<Listener>& l, Query q, std::string wire,
                    std::shared_ptr<TcpClient> tcp_client, const udp::endpoint& client) {
    auto f = std::make_shared<Forward>(strand_);
    f->listener = l;
    f->query = std::move(q);
    f->wire = std::move(wire);
    f->id = static_cast<uint16_t>(rng_());
    SetMessageId(f->wire, f->id);
    f->tcp_client = std::move(tcp_client);
    f->client = client;
    if (forwards_.size() >= options_.max_in_flight) return Finish(f, ServFail(*f));
    forwards_.insert(f);
    TryNextUpstream(f);
  }

  size_t ClientLimit(const Forward& f) const {
    return f.tcp_client ? kMaxTcpMessage : f.query.UdpLimit();
  }

  std::string ServFail(const Forward& f) const {
    Response r;
    r.rcode = Rcode::kServFail;
    return EncodeResponse(f.query, r, ClientLimit(f));
  }

  bool Current(const Forward& f, uint64_t attempt) const { return !f.done && f.attempt == attempt; }

  void CloseAttempt(Forward& f) {
    error_code ec;
    if (f.udp_socket) f.udp_socket->close(ec);
    if (f.tcp_socket) f.tcp_socket->close(ec);
  }

  void TryNextUpstream(const std::shared_ptr<Forward>& f) {
    CloseAttempt(*f);
    if (f->next_upstream >= upstreams_.size())
      return Finish(f, f->fallback ? *f->fallback : ServFail(*f));
    const Upstream& u = upstreams_[f->next_upstream++];
    const uint64_t attempt = ++f->attempt;
    f->timer.expires_after(options_.upstream_timeout);
    f->timer.async_wait([self = shared_from_this(), f, attempt](const error_code& ec) {
      if (!ec && self->Current(*f, attempt)) self->TryNextUpstream(f);
    });
    if (f->tcp_client) {
      AskOverTcp(f, attempt, tcp::endpoint(u.address, u.port));
    } else {
      AskOverUdp(f, attempt, udp::endpoint(u.address, u.port));
    }
  }

  void AskOverUdp(const std::shared_ptr<Forward>& f, uint64_t attempt, const udp::endpoint& to) {
    f->udp_socket.emplace(strand_);
    error_code ec;
    f->udp_socket->open(to.protocol(), ec);
    // Connected, so that only datagrams from the upstream arrive and an ICMP port
    // unreachable ends the attempt at once.
    if (!ec) f->udp_socket->connect(to, ec);
    if (ec) return TryNextUpstream(f);
    f->udp_socket->async_send(asio::buffer(f->wire), [self = shared_from_this(), f, attempt](
                                                         const error_code& send_ec, size_t) {
      if (!self->Current(*f, attempt)) return;
      if (send_ec) return self->TryNextUpstream(f);
      self->ReceiveFromUpstream(f, attempt);
    });
  }

  void ReceiveFromUpstream(const std::shared_ptr<Forward>& f, uint64_t attempt) {
    // One byte more than the client takes, to tell a reply that is too long.
    f->buffer.resize(f->query.UdpLimit() + 1);
    f->udp_socket->async_receive(asio::buffer(f->buffer), [self = shared_from_this(), f, attempt](
                                                              const error_code& ec, size_t n) {
      if (!self->Current(*f, attempt)) return;
      if (ec) return self->TryNextUpstream(f);
      std::string reply(f->buffer.data(), n);
      // Not ours (a late reply to an earlier query that reused the port, or a forgery):
      // keep waiting for the real one until the attempt times out.
      if (!IsReplyTo(reply, f->id, f->query)) return self->ReceiveFromUpstream(f, attempt);
      self->OnUpstreamReply(f, std::move(reply));
    });
  }

  // Over TCP: connect, send the framed query, read the length, read the reply; any failure
  // moves on to the next upstream.
  void AskOverTcp(const std::shared_ptr<Forward>& f, uint64_t attempt, const tcp::endpoint& to) {
    f->tcp_socket.emplace(strand_);
    f->tcp_socket->async_connect(to, [self = shared_from_this(), f, attempt](const error_code& ec) {
      if (!self->Current(*f, attempt)) return;
      if (ec) return self->TryNextUpstream(f);
      self->SendOverTcp(f, attempt);
    });
  }

  void SendOverTcp(const std::shared_ptr<Forward>& f, uint64_t attempt) {
    f->out = Frame(f->wire);
    asio::async_write(*f->tcp_socket, asio::buffer(f->out),
                      [self = shared_from_this(), f, attempt](const error_code& ec, size_t) {
                        if (!self->Current(*f, attempt)) return;
                        if (ec) return self->TryNextUpstream(f);
                        self->ReadLengthOverTcp(f, attempt);
                      });
  }

  void ReadLengthOverTcp(const std::shared_ptr<Forward>& f, uint64_t attempt) {
    asio::async_read(*f->tcp_socket, asio::buffer(f->length),
                     [self = shared_from_this(), f, attempt](const error_code& ec, size_t) {
                       if (!self->Current(*f, attempt)) return;
                       if (ec) return self->TryNextUpstream(f);
                       self->ReadReplyOverTcp(f, attempt);
                     });
  }

  void ReadReplyOverTcp(const std::shared_ptr<Forward>& f, uint64_t attempt) {
    f->buffer.resize(FrameLength(f->length));
    asio::async_read(*f->tcp_socket, asio::buffer(f->buffer),
                     [self = shared_from_this(), f, attempt](const error_code& ec, size_t) {
                       if (!self->Current(*f, attempt)) return;
                       if (ec) return self->TryNextUpstream(f);
                       std::string reply(f->buffer.begin(), f->buffer.end());
                       if (!IsReplyTo(reply, f->id, f->query)) return self->TryNextUpstream(f);
                       self->OnUpstreamReply(f, std::move(reply));
                     });
  }

  void OnUpstreamReply(const std::shared_ptr<Forward>& f, std::string reply) {
    const Rcode rcode = HeaderRcode(reply);
    if ((rcode == Rcode::kServFail || rcode == Rcode::kRefused) &&
        f->next_upstream < upstreams_.size()) {
      f->fallback = std::move(reply);
      return TryNextUpstream(f);
    }
    Finish(f, std::move(reply));
  }

  void Finish(const std::shared_ptr<Forward>& f, std::string reply) {
    f->done = true;
    CloseAttempt(*f);
    f->timer.cancel();
    forwards_.erase(f);
    if (f->listener->closed) return;
    SetMessageId(reply, f->query.id);
    if (f->tcp_client) return WriteTcp(f->tcp_client, std::move(reply));
    if (reply.size() > f->query.UdpLimit()) {
      Response r;
      r.rcode = HeaderRcode(reply);
      r.truncated = true;
      reply = EncodeResponse(f->query, r, f->query.UdpLimit());
    }
    SendUdp(f->listener, f->client, std::move(reply));
  }

  Executor strand_;
  const std::vector<Upstream> upstreams_;
  const DnsServerOptions options_;
  // Everything below is touched only on strand_.
  std::mt19937_64 rng_;
  std::map<std::string, std::shared_ptr<Listener>> listeners_;
  std::map<std::string, std::shared_ptr<const Names>> names_;
  // Invariant: holds exactly the forwards not done; its size is what max_in_flight bounds.
  std::set<std::shared_ptr<Forward>> forwards_;
  bool stopped_ = false;
};

DnsServer::DnsServer(asio::io_context& io, std::vector<std::string> upstreams,
                     DnsServerOptions options) {
  std::vector<Upstream> parsed;
  for (const std::string& text : upstreams) {
    auto u = ParseUpstream(text);
    if (!u) {
      throw std::invalid_argument("dns: invalid upstream resolver \"" + text +
                                  "\": expected an IP address, ip:port or [v6]:port");
    }
    parsed.push_back(*u);
  }
  impl_ = std::make_shared<Impl>(io, std::move(parsed), options);
}

DnsServer::~DnsServer() {
  impl_->Stop();
}

std::vector<std::string> DnsServer::UpstreamsFromResolvConf(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string keyword, address;
    if (!(words >> keyword >> address) || keyword != "nameserver") continue;
    if (address == kListenAddress) continue;
    out.push_back(address);
  }
  return out;
}

void DnsServer::AddListener(const std::string& id, const std::string& netns_path) {
  impl_->Add(id, netns_path);
}

void DnsServer::SetNames(const std::string& id, std::shared_ptr<const Names> names) {
  impl_->SetNames(id, std::move(names));
}

void DnsServer::RemoveListener(const std::string& id) {
  impl_->Remove(id);
}

}  // namespace skep::dns
