// The embedded DNS server on a real network namespace (needs root). The fixture uses `ip` and
// busybox; the server itself only setns and sockets. Clients run on threads that entered the
// namespace; fake upstreams listen on 127.0.0.1 in the host's namespace, as the real ones do.
#include "overlay/dns/server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

#include "overlay/dns/message.h"

using namespace skep::dns;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace fs = std::filesystem;
using asio::ip::tcp;
using asio::ip::udp;

namespace {

int Sh(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str());
}

std::string Out(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  char buf[512];
  while (p && fgets(buf, sizeof(buf), p))
    out += buf;
  if (p) pclose(p);
  return out;
}

// Removes the namespace (and its /etc/netns files) however the test ends, even when creating
// it failed halfway.
struct NamespaceCleanup {
  std::string name;
  void Clean() const {
    Sh("ip netns del " + name);
    std::error_code ec;
    fs::remove_all("/etc/netns/" + name, ec);
  }
  ~NamespaceCleanup() { Clean(); }
};

// A network namespace with its loopback up, and a resolv.conf (for `ip netns exec`) that
// names only 127.0.0.11, so that busybox's nslookup appends no search domain.
struct TestNamespace {
  TestNamespace() : cleanup{"skepdnstest-" + std::to_string(getpid())} {
    cleanup.Clean();
    REQUIRE(Sh("ip netns add " + name()) == 0);
    REQUIRE(Sh("ip -n " + name() + " link set lo up") == 0);
    fs::create_directories("/etc/netns/" + name());
    std::ofstream("/etc/netns/" + name() + "/resolv.conf") << "nameserver 127.0.0.11\n";
  }
  const std::string& name() const { return cleanup.name; }
  std::string path() const { return "/run/netns/" + name(); }
  NamespaceCleanup cleanup;
};

struct IoThread {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  std::thread thread{[this] { io.run(); }};
  void Stop() {
    if (!thread.joinable()) return;
    work.reset();
    io.stop();
    thread.join();
  }
  ~IoThread() { Stop(); }
};

// Runs `f` on a thread inside the namespace at `netns`.
void InNamespace(const std::string& netns, const std::function<void()>& f) {
  std::exception_ptr error;
  std::thread t([&] {
    try {
      const int fd = open(netns.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) throw std::runtime_error("cannot enter " + netns);
      close(fd);
      f();
    } catch (...) {
      error = std::current_exception();
    }
  });
  t.join();
  if (error) std::rethrow_exception(error);
}

// A blocking socket connected to 127.0.0.11:53 whose reads give up after `wait`.
int Connect(int type, std::chrono::milliseconds wait) {
  const int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  timeval tv{};
  tv.tv_sec = wait.count() / 1000;
  tv.tv_usec = (wait.count() % 1000) * 1000;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(53);
  inet_pton(AF_INET, "127.0.0.11", &to.sin_addr);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Reads exactly n bytes; "" on EOF, error or timeout.
std::string ReadExactly(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = recv(fd, out.data() + got, n - got, 0);
    if (r <= 0) return "";
    got += static_cast<size_t>(r);
  }
  return out;
}

bool SendFramed(int fd, const std::string& message) {
  const std::string framed = std::string{static_cast<char>(message.size() >> 8),
                                         static_cast<char>(message.size() & 0xFF)} +
                             message;
  return send(fd, framed.data(), framed.size(), MSG_NOSIGNAL) ==
         static_cast<ssize_t>(framed.size());
}

std::string ReadFramed(int fd) {
  const std::string len = ReadExactly(fd, 2);
  if (len.empty()) return "";
  return ReadExactly(fd, static_cast<uint8_t>(len[0]) << 8 | static_cast<uint8_t>(len[1]));
}

// Sends the queries to 127.0.0.11 from inside `netns`, over UDP or over one TCP connection,
// one after the other; each reply, or "" where none came within `wait`.
std::vector<std::string> Ask(const std::string& netns, const std::vector<std::string>& queries,
                             bool over_tcp, std::chrono::milliseconds wait = 3s) {
  std::vector<std::string> replies(queries.size());
  InNamespace(netns, [&] {
    const int fd = Connect(over_tcp ? SOCK_STREAM : SOCK_DGRAM, wait);
    if (fd < 0) return;
    for (size_t i = 0; i < queries.size(); ++i) {
      if (over_tcp) {
        if (!SendFramed(fd, queries[i])) break;
        replies[i] = ReadFramed(fd);
      } else {
        if (send(fd, queries[i].data(), queries[i].size(), 0) < 0) break;
        std::string buf(65536, '\0');
        const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
        if (n > 0) replies[i] = buf.substr(0, static_cast<size_t>(n));
      }
    }
    close(fd);
  });
  return replies;
}

std::optional<Reply> AskOne(const std::string& netns, const std::string& name, bool over_tcp,
                            uint16_t qtype = kTypeA, std::chrono::milliseconds wait = 3s,
                            uint16_t id = 0x1234) {
  const std::string reply = Ask(netns, {EncodeQuery(id, name, qtype)}, over_tcp, wait)[0];
  if (reply.empty()) return std::nullopt;
  return DecodeReply(reply);
}

// Waits until `f` holds, for at most `limit`.
bool Eventually(const std::function<bool()>& f, std::chrono::seconds limit = 15s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return f();
}

bool Answers(const std::string& netns, const std::string& name,
             const std::vector<std::string>& expected, bool over_tcp = false) {
  const auto r = AskOne(netns, name, over_tcp);
  if (!r) return false;
  std::vector<std::string> got = r->a;
  std::vector<std::string> want = expected;
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  return r->rcode == Rcode::kNoError && got == want;
}

std::shared_ptr<const Names> WebNames() {
  auto n = std::make_shared<Names>();
  n->a["web"] = {"10.0.9.2"};
  n->a["tasks.web"] = {"10.0.9.3", "10.0.9.4"};
  return n;
}

// An upstream resolver on 127.0.0.1 (UDP and TCP, same port) that answers every query with
// one A record, or, silent, never answers.
class FakeUpstream {
 public:
  explicit FakeUpstream(std::optional<std::array<uint8_t, 4>> answer)
      : answer_(answer), udp_(io_.io), acceptor_(io_.io) {
    for (int tries = 0; tries < 50 && !acceptor_.is_open(); ++tries) {
      udp_.close();
      udp_.open(udp::v4());
      udp_.bind(udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
      port_ = udp_.local_endpoint().port();
      boost::system::error_code ec;
      acceptor_.open(tcp::v4());
      acceptor_.bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
      if (ec) {
        acceptor_.close();
        continue;
      }
      acceptor_.listen();
    }
    REQUIRE(acceptor_.is_open());
    if (answer_) {
      asio::post(io_.io, [this] {
        ReceiveUdp();
        Accept();
      });
    }
  }
  ~FakeUpstream() { io_.Stop(); }

  std::string Address() const { return "127.0.0.1:" + std::to_string(port_); }
  // The ids of the queries that came, and over which transport.
  std::vector<uint16_t> Ids() {
    std::lock_guard lock(mu_);
    return ids_;
  }
  int TcpQueries() {
    std::lock_guard lock(mu_);
    return tcp_queries_;
  }

 private:
  std::string Answer(std::string_view query, bool over_tcp) {
    auto parsed = ParseQuery(query);
    if (!std::holds_alternative<Query>(parsed)) return "";
    const Query& q = std::get<Query>(parsed);
    {
      std::lock_guard lock(mu_);
      ids_.push_back(q.id);
      if (over_tcp) ++tcp_queries_;
    }
    Response r;
    r.a = {*answer_};
    r.ttl = 30;
    return EncodeResponse(q, r, over_tcp ? kMaxTcpMessage : q.UdpLimit());
  }

  void ReceiveUdp() {
    udp_.async_receive_from(
        asio::buffer(buffer_), from_, [this](const boost::system::error_code& ec, size_t n) {
          if (ec) return;
          const std::string reply = Answer(std::string_view(buffer_.data(), n), false);
          boost::system::error_code ignored;
          if (!reply.empty()) udp_.send_to(asio::buffer(reply), from_, 0, ignored);
          ReceiveUdp();
        });
  }

  // One query per connection, answered synchronously: enough for a test.
  void Accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket s) {
      if (ec) return;
      boost::system::error_code io_ec;
      std::array<uint8_t, 2> len{};
      asio::read(s, asio::buffer(len), io_ec);
      std::string query(static_cast<size_t>(len[0]) << 8 | len[1], '\0');
      if (!io_ec) asio::read(s, asio::buffer(query), io_ec);
      if (!io_ec) {
        const std::string reply = Answer(query, true);
        const std::string framed = std::string{static_cast<char>(reply.size() >> 8),
                                               static_cast<char>(reply.size() & 0xFF)} +
                                   reply;
        asio::write(s, asio::buffer(framed), io_ec);
      }
      Accept();
    });
  }

  IoThread io_;
  std::optional<std::array<uint8_t, 4>> answer_;
  udp::socket udp_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::array<char, 65536> buffer_{};
  udp::endpoint from_;
  std::mutex mu_;
  std::vector<uint16_t> ids_;
  int tcp_queries_ = 0;
};

}  // namespace

TEST_CASE("service and task names answer inside the namespace, over UDP and TCP", "[dns][server]") {
  TestNamespace ns;
  IoThread io;
  DnsServer server(io.io, {});
  server.AddListener("task1", ns.path());
  server.SetNames("task1", WebNames());
  // SetNames takes effect on the server's strand, shortly after it returns.
  REQUIRE(Eventually([&] { return Answers(ns.path(), "web", {"10.0.9.2"}); }));
  CHECK(Answers(ns.path(), "tasks.web", {"10.0.9.3", "10.0.9.4"}));
  CHECK(Answers(ns.path(), "WEB.", {"10.0.9.2"}));
  CHECK(Answers(ns.path(), "web", {"10.0.9.2"}, true));
  CHECK(Answers(ns.path(), "tasks.web", {"10.0.9.3", "10.0.9.4"}, true));

  const auto aaaa = AskOne(ns.path(), "web", false, kTypeAaaa);
  REQUIRE(aaaa);
  CHECK(aaaa->rcode == Rcode::kNoError);
  CHECK(aaaa->answers == 0);
  CHECK(aaaa->authoritative);
  CHECK(aaaa->id == 0x1234);

  // Several queries on one TCP connection, answered in order.
  const auto replies = Ask(ns.path(),
                           {EncodeQuery(1, "web", kTypeA), EncodeQuery(2, "tasks.web", kTypeA),
                            EncodeQuery(3, "web", kTypeAaaa)},
                           true);
  for (uint16_t i = 0; i < 3; ++i) {
    const auto r = DecodeReply(replies[i]);
    REQUIRE(r);
    CHECK(r->id == i + 1);
  }

  // A malformed query gets FORMERR with its id.
  const std::string header_only = {0x0B, 0x0C, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0};
  const auto formerr = DecodeReply(Ask(ns.path(), {header_only}, false)[0]);
  REQUIRE(formerr);
  CHECK(formerr->id == 0x0B0C);
  CHECK(formerr->rcode == Rcode::kFormErr);

  // No upstream: what is not ours fails at once.
  const auto other = AskOne(ns.path(), "example.com", false);
  REQUIRE(other);
  CHECK(other->rcode == Rcode::kServFail);

  // What busybox (as in a task's image) makes of it.
  const std::string web = Out("ip netns exec " + ns.name() + " busybox nslookup web 127.0.0.11");
  INFO(web);
  CHECK(web.find("Address: 10.0.9.2") != std::string::npos);
  const std::string tasks =
      Out("ip netns exec " + ns.name() + " busybox nslookup tasks.web 127.0.0.11");
  INFO(tasks);
  CHECK(tasks.find("Address: 10.0.9.3") != std::string::npos);
  CHECK(tasks.find("Address: 10.0.9.4") != std::string::npos);
}

TEST_CASE("an answer too big for UDP is truncated, and whole over TCP", "[dns][server]") {
  TestNamespace ns;
  IoThread io;
  DnsServer server(io.io, {});
  server.AddListener("task1", ns.path());
  auto names = std::make_shared<Names>();
  for (int i = 0; i < 100; ++i)
    names->a["tasks.big"].push_back("10.0.1." + std::to_string(i));
  server.SetNames("task1", names);
  std::optional<Reply> udp_reply;
  REQUIRE(Eventually([&] {
    udp_reply = AskOne(ns.path(), "tasks.big", false);
    return udp_reply && udp_reply->rcode == Rcode::kNoError;
  }));
  CHECK(udp_reply->truncated);
  CHECK(udp_reply->a.size() < 100);
  const auto tcp_reply = AskOne(ns.path(), "tasks.big", true);
  REQUIRE(tcp_reply);
  CHECK_FALSE(tcp_reply->truncated);
  CHECK(tcp_reply->a.size() == 100);
}

TEST_CASE("names that are not ours are forwarded to the upstream and relayed with the client's id",
          "[dns][server]") {
  TestNamespace ns;
  FakeUpstream upstream(std::array<uint8_t, 4>{192, 0, 2, 7});
  IoThread io;
  DnsServer server(io.io, {upstream.Address()});
  server.AddListener("task1", ns.path());
  server.SetNames("task1", WebNames());
  REQUIRE(Eventually([&] { return Answers(ns.path(), "web", {"10.0.9.2"}); }));
  CHECK(upstream.Ids().empty());  // ours: not forwarded

  for (const bool over_tcp : {false, true}) {
    INFO((over_tcp ? "tcp" : "udp"));
    const auto r = AskOne(ns.path(), "Example.COM", over_tcp, kTypeA, 5s, 0x4242);
    REQUIRE(r);
    CHECK(r->id == 0x4242);
    CHECK(r->rcode == Rcode::kNoError);
    CHECK(r->name == "example.com");
    CHECK(r->a == std::vector<std::string>{"192.0.2.7"});
    CHECK_FALSE(r->authoritative);
  }
  CHECK(upstream.TcpQueries() == 1);  // the TCP client's query went over TCP
  const auto ids = upstream.Ids();
  REQUIRE(ids.size() == 2);
  // Fresh ids upstream (both equal to the client's by chance: probability 2^-32).
  CHECK((ids[0] != 0x4242 || ids[1] != 0x4242));

  const std::string out =
      Out("ip netns exec " + ns.name() + " busybox nslookup example.com 127.0.0.11");
  INFO(out);
  CHECK(out.find("Address: 192.0.2.7") != std::string::npos);
}

TEST_CASE("an upstream that never answers gives SERVFAIL after its timeout", "[dns][server]") {
  TestNamespace ns;
  FakeUpstream silent(std::nullopt);
  IoThread io;
  DnsServer server(io.io, {silent.Address()});
  server.AddListener("task1", ns.path());
  for (const bool over_tcp : {false, true}) {
    INFO((over_tcp ? "tcp" : "udp"));
    const auto r = AskOne(ns.path(), "example.com", over_tcp, kTypeA, 15s);
    REQUIRE(r);
    CHECK(r->rcode == Rcode::kServFail);
    CHECK(r->id == 0x1234);
    CHECK(r->name == "example.com");
  }
}

TEST_CASE("when an upstream times out the next one answers", "[dns][server]") {
  TestNamespace ns;
  FakeUpstream silent(std::nullopt);
  FakeUpstream good(std::array<uint8_t, 4>{192, 0, 2, 8});
  IoThread io;
  DnsServer server(io.io, {silent.Address(), good.Address()});
  server.AddListener("task1", ns.path());
  for (const bool over_tcp : {false, true}) {
    INFO((over_tcp ? "tcp" : "udp"));
    const auto r = AskOne(ns.path(), "example.com", over_tcp, kTypeA, 15s);
    REQUIRE(r);
    CHECK(r->rcode == Rcode::kNoError);
    CHECK(r->a == std::vector<std::string>{"192.0.2.8"});
  }
}

TEST_CASE("forwarded queries beyond the in-flight bound get SERVFAIL at once", "[dns][server]") {
  TestNamespace ns;
  FakeUpstream silent(std::nullopt);
  IoThread io;
  DnsServerOptions options;
  options.max_in_flight = 1;
  options.upstream_timeout = 10min;  // the first query stays in flight for the whole test
  DnsServer server(io.io, {silent.Address()}, options);
  server.AddListener("task1", ns.path());
  // The first never gets a reply while the test runs; the second is over the bound.
  const auto first = AskOne(ns.path(), "one.example", false, kTypeA, 500ms);
  CHECK_FALSE(first);
  const auto second = AskOne(ns.path(), "two.example", false, kTypeA, 15s);
  REQUIRE(second);
  CHECK(second->rcode == Rcode::kServFail);
}

TEST_CASE("a removed listener stops answering and the namespace can be served again",
          "[dns][server]") {
  TestNamespace ns;
  IoThread io;
  DnsServer server(io.io, {});
  server.AddListener("task1", ns.path());
  server.SetNames("task1", WebNames());
  REQUIRE(Eventually([&] { return Answers(ns.path(), "web", {"10.0.9.2"}); }));

  server.RemoveListener("task1");
  CHECK(Eventually([&] { return !AskOne(ns.path(), "web", false, kTypeA, 1s); }));
  CHECK(Eventually([&] { return !AskOne(ns.path(), "web", true, kTypeA, 1s); }));

  // Its sockets are closed, so a new listener binds; the old names went with the old one.
  server.AddListener("task1", ns.path());
  const auto forgotten = AskOne(ns.path(), "web", false, kTypeA, 5s);
  REQUIRE(forgotten);
  CHECK(forgotten->rcode == Rcode::kServFail);  // not ours any more: forwarded, no upstream
  server.SetNames("task1", WebNames());
  CHECK(Eventually([&] { return Answers(ns.path(), "web", {"10.0.9.2"}); }));
}

TEST_CASE("a listener that cannot be made says which namespace and why", "[dns][server]") {
  TestNamespace ns;
  IoThread io;
  DnsServer server(io.io, {});
  const std::string missing = "/run/netns/skepdnstest-missing-" + std::to_string(getpid());
  CHECK_THROWS_WITH(server.AddListener("x", missing),
                    Catch::Contains(missing) && Catch::Contains("No such file"));
  server.AddListener("a", ns.path());
  CHECK_THROWS_WITH(server.AddListener("b", ns.path()),
                    Catch::Contains(ns.path()) && Catch::Contains("Address already in use"));
  CHECK_THROWS_AS(DnsServer(io.io, {"not-an-address"}), std::invalid_argument);
  CHECK_THROWS_AS(DnsServer(io.io, {"10.0.0.1:99999"}), std::invalid_argument);
  DnsServer ok(io.io, {"10.0.0.1", "10.0.0.1:5353", "[2001:db8::1]:53", "2001:db8::2"});
}

TEST_CASE("a stalled TCP client is dropped, and connections over the bound are closed",
          "[dns][server]") {
  TestNamespace ns;
  IoThread io;
  DnsServerOptions options;
  options.tcp_idle_timeout = 3s;
  options.max_tcp_per_listener = 2;
  DnsServer server(io.io, {}, options);
  server.AddListener("task1", ns.path());
  server.SetNames("task1", WebNames());
  REQUIRE(Eventually([&] { return Answers(ns.path(), "web", {"10.0.9.2"}); }));

  InNamespace(ns.path(), [&] {
    // Two idle connections take the two places (one query each proves they are served).
    const int a = Connect(SOCK_STREAM, 15s);
    const int b = Connect(SOCK_STREAM, 15s);
    REQUIRE(a >= 0);
    REQUIRE(b >= 0);
    for (const int fd : {a, b}) {
      REQUIRE(SendFramed(fd, EncodeQuery(5, "web", kTypeA)));
      CHECK(DecodeReply(ReadFramed(fd)));
    }
    // A third is closed without an answer.
    const int c = Connect(SOCK_STREAM, 15s);
    REQUIRE(c >= 0);
    SendFramed(c, EncodeQuery(6, "web", kTypeA));
    CHECK(ReadFramed(c).empty());
    // The idle ones are dropped: their reads end (EOF) rather than time out.
    char byte;
    CHECK(recv(a, &byte, 1, 0) == 0);
    CHECK(recv(b, &byte, 1, 0) == 0);
    // Then there is room again.
    const int d = Connect(SOCK_STREAM, 15s);
    REQUIRE(d >= 0);
    REQUIRE(SendFramed(d, EncodeQuery(7, "web", kTypeA)));
    const auto r = DecodeReply(ReadFramed(d));
    REQUIRE(r);
    CHECK(r->a == std::vector<std::string>{"10.0.9.2"});
    for (const int fd : {a, b, c, d})
      close(fd);
  });
}
