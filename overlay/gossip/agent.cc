#include "overlay/gossip/agent.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <chrono>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "overlay/gossip/keyring.h"

namespace skep::gossip {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using boost::system::error_code;

namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
constexpr size_t kMaxDatagram = 65536;

struct HostPort {
  asio::ip::address ip;
  uint16_t port = 0;
};

// "ip:port", or "[ipv6]:port".
std::optional<HostPort> ParseHostPort(std::string_view s) {
  size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == s.size()) return std::nullopt;
  std::string_view host = s.substr(0, colon), port = s.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  HostPort out;
  auto [end, err] = std::from_chars(port.data(), port.data() + port.size(), out.port);
  if (err != std::errc() || end != port.data() + port.size() || out.port == 0) return std::nullopt;
  error_code ec;
  out.ip = asio::ip::make_address(std::string(host), ec);
  if (ec) return std::nullopt;
  return out;
}

std::string FormatHostPort(const asio::ip::address& ip, uint16_t port) {
  std::string host = ip.to_string();
  if (ip.is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(port);
}

asio::ip::address ParseIp(const std::string& ip, const char* what) {
  error_code ec;
  auto addr = asio::ip::make_address(ip, ec);
  if (ec) {
    throw std::invalid_argument(std::string("gossip: ") + what + " \"" + ip +
                                "\" is not an IP address");
  }
  return addr;
}

// Broadcast keys: a newer broadcast replaces a queued older one with the same key. Length
// prefixed, so that no (network, key) pair can collide with another.
std::string BroadcastKey(const TableMessage& m) {
  if (const auto* e = std::get_if<TableEntry>(&m)) {
    return "t" + std::to_string(e->network_id.size()) + ":" + e->network_id + e->key;
  }
  const auto& n = std::get<NetworkEvent>(m);
  return "n" + std::to_string(n.network_id.size()) + ":" + n.network_id + n.node;
}

uint64_t Lamport(const TableMessage& m) {
  return std::visit([](const auto& x) { return x.lamport; }, m);
}

const std::string& NetworkOf(const TableMessage& m) {
  return std::visit([](const auto& x) -> const std::string& { return x.network_id; }, m);
}

}  // namespace

class Agent::Impl : public std::enable_shared_from_this<Agent::Impl>, private StateDelegate {
 public:
  Impl(asio::io_context& io, AgentConfig config, const asio::ip::address& bind_ip, std::string addr)
      : config_(std::move(config)),
        bind_ip_(bind_ip),
        addr_(std::move(addr)),
        strand_(asio::make_strand(io)),
        epoch_(std::chrono::steady_clock::now()),
        udp_(strand_),
        acceptor_(strand_),
        timer_(strand_),
        rng_(config_.seed != 0 ? config_.seed : std::random_device{}()),
        member_(config_.memberlist, config_.name, addr_, rng_()),
        table_(TableConfig{config_.name, config_.table.reap_interval_ms}) {
    member_.SetStateDelegate(this);
    last_incarnation_ = member_.incarnation();
    if (config_.wall_clock_floor) {
      // Merging an entry of a network we are not in only advances the clock (table.h:
      // the clock stays above every Lamport time seen). Empty network names are refused
      // by the API, so this entry can never land in a table.
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
      TableEntry floor;
      floor.lamport = static_cast<uint64_t>(std::max<int64_t>(us, 0));
      table_.Merge(floor, 0);
    }
  }

  const std::string& addr() const { return addr_; }

  // Runs `f` on the strand, unless the agent has stopped by then (or even so).
  template <class F>
  void Post(F f, bool even_if_stopped = false) {
    asio::post(strand_, [self = shared_from_this(), f = std::move(f), even_if_stopped]() mutable {
      if (!self->stopped_ || even_if_stopped) f(*self);
    });
  }

  // On the caller's thread: nothing on the strand touches the sockets before Begin, which
  // this posts.
  void Start() {
    if (start_called_.exchange(true)) throw std::logic_error("gossip: an agent starts only once");
    uint16_t port = config_.port;
    error_code ec;
    udp::endpoint uep(bind_ip_, port);
    if (udp_.open(uep.protocol(), ec); !ec) udp_.bind(uep, ec);
    if (ec) {
      throw std::runtime_error("gossip: cannot bind UDP " + FormatHostPort(bind_ip_, port) + ": " +
                               ec.message());
    }
    udp_.non_blocking(true, ec);  // datagrams that would block are lost, as UDP may lose them
    tcp::endpoint tep(bind_ip_, port);
    if (acceptor_.open(tep.protocol(), ec); !ec) {
      acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) acceptor_.bind(tep, ec);
      if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
      error_code ignored;
      udp_.close(ignored);
      throw std::runtime_error("gossip: cannot listen on TCP " + FormatHostPort(bind_ip_, port) +
                               ": " + ec.message());
    }
    asio::post(strand_, [self = shared_from_this()] { self->Begin(); });
  }

  void Shutdown(std::function<void()> done) {
    if (!stopped_) {
      stopped_ = true;
      error_code ec;
      udp_.close(ec);
      acceptor_.close(ec);
      timer_.cancel();
      for (const auto& s : std::exchange(streams_, {})) {
        s->socket.close(ec);
        s->deadline.cancel();
      }
      on_table_ = nullptr;
      on_member_ = nullptr;
    }
    if (done) done();
  }

  void SetKeys(Keyring keys) {
    keyring_ = std::move(keys);
    // A node that could not reach anyone without the key tries again at once.
    if (joining_ && started_ && !keyring_.empty()) {
      join_backoff_ms_ = config_.join_retry_min_ms;
      int64_t now = Now();
      AttemptJoin(now);
      AfterStep(now);
    }
  }

  void Join(std::vector<std::string> seeds) {
    std::erase(seeds, addr_);
    if (seeds.empty() || left_) return;  // the first node of a cluster has nobody to join
    seeds_ = std::move(seeds);
    joining_ = true;
    join_backoff_ms_ = config_.join_retry_min_ms;
    if (!started_) return;  // Begin attempts it
    int64_t now = Now();
    AttemptJoin(now);
    AfterStep(now);
  }

  void Leave() {
    left_ = true;
    joining_ = false;
    int64_t now = Now();
    Send(member_.Leave(now));
    AfterStep(now);
  }

  void JoinNetwork(const std::string& network) {
    if (table_.Participates(network)) return;
    int64_t now = Now();
    own_[network];
    Broadcast(table_.Joined(network));
    dirty_.insert(network);
    BulkSync(network, now);
    AfterStep(now);
  }

  void LeaveNetwork(const std::string& network) {
    if (!table_.Participates(network)) return;
    int64_t now = Now();
    auto [event, tombstones] = table_.Left(network, now);
    for (const TableEntry& t : tombstones)
      Broadcast(t);
    Broadcast(event);
    own_.erase(network);
    dirty_.insert(network);
    AfterStep(now);
  }

  void Put(const std::string& network, const std::string& key, std::string value) {
    auto own = own_.find(network);
    if (own == own_.end()) return;
    int64_t now = Now();
    own->second[key] = value;
    if (auto e = table_.Put(network, key, std::move(value), now)) Broadcast(*e);
    dirty_.insert(network);
    AfterStep(now);
  }

  void Delete(const std::string& network, const std::string& key) {
    auto own = own_.find(network);
    if (own == own_.end()) return;
    int64_t now = Now();
    own->second.erase(key);
    if (auto e = table_.Delete(network, key, now)) {
      Broadcast(*e);
      dirty_.insert(network);
    }
    AfterStep(now);
  }

  void SetOnTable(TableFn f) { on_table_ = std::move(f); }
  void SetOnMember(MemberFn f) { on_member_ = std::move(f); }

  void Inspect(const InspectFn& f) {
    Stats s = stats_;
    for (const Member& m : member_.Members()) {
      switch (m.state) {
        case MemberState::kAlive:
          ++s.members_alive;
          break;
        case MemberState::kSuspect:
          ++s.members_suspect;
          break;
        case MemberState::kDead:
          ++s.members_failed;
          break;
        case MemberState::kLeft:
          ++s.members_left;
          break;
      }
    }
    f(member_, table_, s);
  }

 private:
  // A TCP connection, either way.
  struct Stream {
    explicit Stream(const asio::any_io_executor& ex) : socket(ex), deadline(ex) {}
    explicit Stream(tcp::socket s) : socket(std::move(s)), deadline(socket.get_executor()) {}
    tcp::socket socket;
    asio::steady_timer deadline;
    std::array<unsigned char, 4> header{};
    std::string frame;
  };
  // The newest Lamport time relayed per broadcast key (Serf's recent-event buffer), so news
  // is relayed once; forgotten after the table's reap interval.
  struct Relayed {
    uint64_t lamport = 0;
    int64_t at_ms = 0;
  };

  int64_t Now() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 epoch_)
        .count();
  }

  void Begin() {
    if (stopped_) return;  // stopped before it began
    started_ = true;
    ReceiveDatagram();
    Accept();
    int64_t now = Now();
    next_reap_ms_ = now + config_.reap_period_ms;
    if (joining_) AttemptJoin(now);
    AfterStep(now);
  }

  // --- The clock ---------------------------------------------------------------------------

  void Arm() {
    if (!started_ || stopped_) return;
    int64_t next = std::min(member_.NextTickMs(), next_reap_ms_);
    if (joining_) next = std::min(next, next_join_ms_);
    // Never twice in one millisecond, whatever NextTickMs says.
    next = std::max(next, last_tick_ms_ + 1);
    if (next == armed_ms_) return;
    armed_ms_ = next;
    uint64_t generation = ++timer_generation_;
    timer_.expires_at(epoch_ + std::chrono::milliseconds(next));
    timer_.async_wait([self = shared_from_this(), generation](error_code ec) {
      // A wait that completed just before it was re-armed is stale: the generation tells.
      if (ec || self->stopped_ || generation != self->timer_generation_) return;
      self->OnTimer();
    });
  }

  void OnTimer() {
    int64_t now = Now();
    last_tick_ms_ = now;
    armed_ms_ = kNever;
    if (now >= next_reap_ms_) {
      next_reap_ms_ = now + config_.reap_period_ms;
      table_.Reap(now);
      std::erase_if(relayed_, [&](const auto& kv) {
        return now - kv.second.at_ms > config_.table.reap_interval_ms;
      });
    }
    if (joining_ && now >= next_join_ms_) AttemptJoin(now);
    Send(member_.Tick(now));
    AfterStep(now);
  }

  void AttemptJoin(int64_t now) {
    for (const std::string& seed : seeds_)
      Send(member_.Join(seed, now));
    next_join_ms_ = now + join_backoff_ms_;
    join_backoff_ms_ = std::min(2 * join_backoff_ms_, config_.join_retry_max_ms);
  }

  // --- After every step of Memberlist ------------------------------------------------------

  void AfterStep(int64_t now) {
    for (MemberEvent& e : member_.TakeEvents()) {
      if (e.type == MemberEventType::kFail || e.type == MemberEventType::kLeave) {
        RemoveNode(e.member.name, now);
      }
      if (on_member_) on_member_(e);
    }
    member_.TakeUserData();  // nobody sends user data; do not let it pile up
    for (UserBroadcast& u : member_.TakeUserBroadcasts()) {
      auto msgs = DecodeTableMessages(u.bytes);
      if (!msgs || msgs->empty()) {
        ++stats_.dropped_malformed;
        continue;
      }
      bool news = false;
      uint64_t lamport = 0;
      for (const TableMessage& m : *msgs) {
        news = Merge(m, now) || news;
        lamport = std::max(lamport, Lamport(m));
      }
      // Members outside the network relay its news too, so it reaches however few
      // participants there are.
      Relayed& r = relayed_[u.key];
      if (lamport > r.lamport) {
        r = Relayed{lamport, now};
        news = true;
      }
      // Only news is gossiped on, so an epidemic dies out once everyone has it.
      if (news) member_.QueueUserBroadcast(std::move(u.key), std::move(u.bytes));
    }
    AnswerStale(now);
    if (member_.incarnation() > last_incarnation_) {
      // We were suspected or declared dead: whoever removed our entries gets them back.
      last_incarnation_ = member_.incarnation();
      for (auto& [network, entries] : own_) {
        Broadcast(table_.Joined(network));
        for (const auto& [key, value] : entries) {
          if (auto e = table_.Put(network, key, value, now)) Broadcast(*e);
        }
      }
    }
    if (sync_networks_) {
      sync_networks_ = false;
      for (const auto& [network, entries] : own_)
        BulkSync(network, now);
    }
    for (const std::string& network : std::exchange(dirty_, {})) {
      if (!on_table_) continue;
      on_table_(network,
                table_.Participates(network) ? table_.Entries(network) : std::vector<TableEntry>{});
    }
    Arm();
  }

  // Merges one table message; returns whether it changed our table.
  bool Merge(const TableMessage& m, int64_t now) {
    const std::string& network = NetworkOf(m);
    const auto* event = std::get_if<NetworkEvent>(&m);
    if (!table_.Merge(m, now)) {
      // A previous life of ours may have written another value at the very Lamport time of
      // one of our writes: the tie hides the difference from the merge order, so nobody
      // would ever take ours. That too is stale.
      const auto* entry = std::get_if<TableEntry>(&m);
      if (entry != nullptr && entry->owner == config_.name && !entry->deleted) {
        const TableEntry* mine = table_.Get(network, entry->key);
        if (mine != nullptr && mine->lamport == entry->lamport && mine->value != entry->value) {
          stale_.push_back(m);
        }
      }
      return false;
    }
    // A participation event only changes a table when it is a departure.
    if (table_.Participates(network) && (event == nullptr || event->leaving)) {
      dirty_.insert(network);
    }
    const std::string& subject = event != nullptr ? event->node : std::get<TableEntry>(m).owner;
    if (subject == config_.name) stale_.push_back(m);
    return true;
  }

  // Answers what merges brought about ourselves that is not what this process holds (a
  // previous life's entries, or tombstones others made when they thought we failed), with a
  // write that outranks it: the merge advanced our clock past it.
  void AnswerStale(int64_t now) {
    std::set<std::pair<std::string, std::string>> answered;
    for (const TableMessage& m : std::exchange(stale_, {})) {
      const std::string& network = NetworkOf(m);
      auto own = own_.find(network);
      if (const auto* event = std::get_if<NetworkEvent>(&m)) {
        if (own == own_.end() && !event->leaving) {
          Broadcast(table_.Left(network, now).first);
        } else if (own != own_.end() && event->leaving) {
          // The stale departure also turned our entries there into tombstones.
          Broadcast(table_.Joined(network));
          for (const auto& [key, value] : own->second) {
            if (auto e = table_.Put(network, key, value, now)) Broadcast(*e);
          }
          dirty_.insert(network);
        }
        continue;
      }
      const auto& entry = std::get<TableEntry>(m);
      if (own == own_.end() || !answered.emplace(network, entry.key).second) continue;
      std::optional<TableEntry> answer;
      if (auto mine = own->second.find(entry.key); mine != own->second.end()) {
        answer = table_.Put(network, entry.key, mine->second, now);
      } else if (table_.Get(network, entry.key) != nullptr) {
        answer = table_.Delete(network, entry.key, now);
      }
      if (answer) {
        Broadcast(*answer);
        dirty_.insert(network);
      }
    }
  }

  void RemoveNode(const std::string& name, int64_t now) {
    for (const auto& [network, entries] : own_) {
      for (const TableEntry& e : table_.Entries(network)) {
        if (e.owner == name) {
          dirty_.insert(network);
          break;
        }
      }
    }
    table_.RemoveNode(name, now);
  }

  void Broadcast(const TableMessage& m) {
    std::string key = BroadcastKey(m);
    // Our own news coming back is not news.
    Relayed& r = relayed_[key];
    r = Relayed{std::max(r.lamport, Lamport(m)), Now()};
    member_.QueueUserBroadcast(std::move(key), EncodeTableMessages({m}));
  }

  // A push-pull with one live member of the network, for its table.
  void BulkSync(const std::string& network, int64_t now) {
    std::vector<std::string> addrs;
    for (const std::string& node : table_.Nodes(network)) {
      const Member* m = member_.Find(node);
      if (node != config_.name && m != nullptr && m->state == MemberState::kAlive) {
        addrs.push_back(m->addr);
      }
    }
    if (addrs.empty()) return;
    std::uniform_int_distribution<size_t> pick(0, addrs.size() - 1);
    Send(member_.Join(addrs[pick(rng_)], now));
  }

  // StateDelegate: push-pull carries the whole table, as NetworkDB's bulk sync does. Called
  // from inside Memberlist; what merges bring is acted on in AfterStep.
  std::string LocalState(bool) override { return EncodeTableMessages(table_.FullState()); }
  void MergeRemoteState(std::string_view state, bool) override {
    auto msgs = DecodeTableMessages(state);
    if (!msgs) {
      ++stats_.dropped_malformed;
      return;
    }
    int64_t now = Now();
    for (const TableMessage& m : *msgs)
      Merge(m, now);
  }

  // --- Sending -----------------------------------------------------------------------------

  void Send(std::vector<Message> msgs) {
    for (const Message& m : msgs) {
      auto to = ParseHostPort(m.to);
      if (!started_ || stopped_ || keyring_.empty() || !to) {
        ++stats_.unsent;
        continue;
      }
      std::string bytes = Encode(m);
      bool stream = std::holds_alternative<PushPull>(m.body) ||
                    bytes.size() > config_.memberlist.max_packet_bytes;
      std::string sealed = keyring_.Seal(bytes);
      if (stream) {
        SendStream(tcp::endpoint(to->ip, to->port), std::move(sealed));
        continue;
      }
      error_code ec;
      udp_.send_to(asio::buffer(sealed), udp::endpoint(to->ip, to->port), 0, ec);
      ++(ec ? stats_.unsent : stats_.sent);
    }
  }

  void SendStream(const tcp::endpoint& to, std::string sealed) {
    if (sealed.size() > kMaxFrameBytes || streams_.size() >= config_.max_streams) {
      ++stats_.unsent;
      return;
    }
    auto s = std::make_shared<Stream>(strand_);
    uint32_t n = static_cast<uint32_t>(sealed.size());
    s->frame.reserve(4 + sealed.size());
    for (int shift = 24; shift >= 0; shift -= 8)
      s->frame.push_back(static_cast<char>(n >> shift));
    s->frame += sealed;
    streams_.insert(s);
    ArmDeadline(s);
    s->socket.async_connect(to, [self = shared_from_this(), s](error_code ec) {
      if (ec) {
        if (!self->stopped_) ++self->stats_.unsent;
        return self->Close(s);
      }
      asio::async_write(s->socket, asio::buffer(s->frame), [self, s](error_code ec, size_t) {
        if (!self->stopped_) ++(ec ? self->stats_.unsent : self->stats_.sent);
        self->Close(s);
      });
    });
  }

  void ArmDeadline(const std::shared_ptr<Stream>& s) {
    s->deadline.expires_after(std::chrono::milliseconds(config_.stream_timeout_ms));
    s->deadline.async_wait([self = shared_from_this(), s](error_code ec) {
      // Re-armed meanwhile (a stale completion) or cancelled: not due.
      if (ec || s->deadline.expiry() > std::chrono::steady_clock::now()) return;
      self->Close(s);
    });
  }

  void Close(const std::shared_ptr<Stream>& s) {
    error_code ec;
    s->socket.shutdown(tcp::socket::shutdown_both, ec);
    s->socket.close(ec);
    s->deadline.cancel();
    streams_.erase(s);
  }

  // --- Receiving ---------------------------------------------------------------------------

  void ReceiveDatagram() {
    udp_.async_receive_from(asio::buffer(udp_buf_), udp_from_,
                            [self = shared_from_this()](error_code ec, size_t n) {
                              if (self->stopped_ || ec == asio::error::operation_aborted) return;
                              if (!ec) self->Deliver(std::string_view(self->udp_buf_.data(), n));
                              self->ReceiveDatagram();
                            });
  }

  void Accept() {
    // The accepted socket takes the acceptor's executor: the strand.
    acceptor_.async_accept([self = shared_from_this()](error_code ec, tcp::socket socket) {
      if (self->stopped_ || ec == asio::error::operation_aborted) return;
      if (!ec && self->streams_.size() < self->config_.max_streams) {
        auto s = std::make_shared<Stream>(std::move(socket));
        self->streams_.insert(s);
        self->ReadFrame(s);
      }
      self->Accept();
    });
  }

  void ReadFrame(const std::shared_ptr<Stream>& s) {
    ArmDeadline(s);
    asio::async_read(s->socket, asio::buffer(s->header),
                     [self = shared_from_this(), s](error_code ec, size_t n) {
                       if (self->stopped_) return;
                       if (ec) {
                         // EOF between frames is the normal end; anything else cut a frame short.
                         if (n > 0) ++self->stats_.dropped_malformed;
                         return self->Close(s);
                       }
                       uint32_t len = 0;
                       for (unsigned char b : s->header)
                         len = len << 8 | b;
                       if (len < kSealOverhead || len > kMaxFrameBytes) {
                         ++self->stats_.dropped_malformed;
                         return self->Close(s);
                       }
                       s->frame.resize(len);
                       asio::async_read(s->socket, asio::buffer(s->frame),
                                        [self, s](error_code ec, size_t) {
                                          if (self->stopped_) return;
                                          if (ec) {
                                            ++self->stats_.dropped_malformed;
                                            return self->Close(s);
                                          }
                                          self->Deliver(s->frame);
                                          if (!self->stopped_) self->ReadFrame(s);
                                        });
                     });
  }

  void Deliver(std::string_view sealed) {
    std::optional<std::string> plain = keyring_.Open(sealed);
    if (!plain) {
      ++stats_.dropped_unauthenticated;
      return;
    }
    std::optional<Message> m = Decode(*plain);
    if (!m) {
      ++stats_.dropped_malformed;
      return;
    }
    ++stats_.received;
    if (const auto* p = std::get_if<PushPull>(&m->body); p != nullptr && p->reply && joining_) {
      // A seed answered: we are in. Fetch the tables of our networks once the merge taught
      // us who is in them.
      joining_ = false;
      sync_networks_ = true;
    }
    int64_t now = Now();
    Send(member_.Receive(*m, now));
    AfterStep(now);
  }

  AgentConfig config_;
  asio::ip::address bind_ip_;
  std::string addr_;
  asio::strand<asio::io_context::executor_type> strand_;
  std::chrono::steady_clock::time_point epoch_;
  udp::socket udp_;
  tcp::acceptor acceptor_;
  asio::steady_timer timer_;
  std::mt19937_64 rng_;
  Memberlist member_;
  EndpointTable table_;
  Keyring keyring_;
  Stats stats_;  // the counters; member counts are filled in by Inspect
  TableFn on_table_;
  MemberFn on_member_;

  std::atomic<bool> start_called_{false};  // Start is not on the strand
  bool started_ = false;                   // Begin ran: the sockets are ours
  bool stopped_ = false;
  bool left_ = false;
  // Invariant: joining_ implies !seeds_.empty().
  bool joining_ = false;
  bool sync_networks_ = false;
  std::vector<std::string> seeds_;
  int64_t join_backoff_ms_ = 0;
  int64_t next_join_ms_ = kNever;
  int64_t next_reap_ms_ = kNever;
  int64_t armed_ms_ = kNever;  // when the pending wait fires, or kNever
  uint64_t timer_generation_ = 0;
  int64_t last_tick_ms_ = -1;
  uint64_t last_incarnation_ = 0;

  // The networks we participate in (Invariant: exactly table_'s), each with the entries this
  // process wrote there and has not deleted.
  std::map<std::string, std::map<std::string, std::string>> own_;
  std::unordered_map<std::string, Relayed> relayed_;
  std::set<std::string> dirty_;      // networks whose table changed in this step
  std::vector<TableMessage> stale_;  // merged messages about ourselves, to answer
  std::set<std::shared_ptr<Stream>> streams_;
  std::array<char, kMaxDatagram> udp_buf_{};
  udp::endpoint udp_from_;
};

Agent::Agent(asio::io_context& io, AgentConfig config) {
  if (config.name.empty()) throw std::invalid_argument("gossip: the node name must not be empty");
  asio::ip::address bind_ip = ParseIp(config.bind_ip, "bind address");
  asio::ip::address advertise = bind_ip;
  if (!config.advertise_ip.empty()) {
    advertise = ParseIp(config.advertise_ip, "advertise address");
  } else if (bind_ip.is_unspecified()) {
    throw std::invalid_argument("gossip: binding " + config.bind_ip +
                                " needs an advertise address that others can reach");
  }
  if (config.port == 0) throw std::invalid_argument("gossip: the port must not be 0");
  std::string addr = FormatHostPort(advertise, config.port);
  impl_ = std::make_shared<Impl>(io, std::move(config), bind_ip, std::move(addr));
}

Agent::~Agent() {
  Stop();
}

void Agent::Start() {
  impl_->Start();
}

void Agent::Stop(std::function<void()> done) {
  impl_->Post([done = std::move(done)](Impl& a) mutable { a.Shutdown(std::move(done)); },
              /*even_if_stopped=*/true);
}

void Agent::SetKeys(std::vector<std::string> keys) {
  impl_->Post([ring = Keyring(std::move(keys))](Impl& a) mutable { a.SetKeys(std::move(ring)); });
}

void Agent::Join(std::vector<std::string> seeds) {
  for (const std::string& s : seeds) {
    if (!ParseHostPort(s)) {
      throw std::invalid_argument("gossip: seed \"" + s + "\" is not ip:port");
    }
  }
  impl_->Post([seeds = std::move(seeds)](Impl& a) mutable { a.Join(std::move(seeds)); });
}

void Agent::Leave() {
  impl_->Post([](Impl& a) { a.Leave(); });
}

void Agent::JoinNetwork(std::string network) {
  if (network.empty()) throw std::invalid_argument("gossip: a network name must not be empty");
  impl_->Post([network = std::move(network)](Impl& a) { a.JoinNetwork(network); });
}

void Agent::LeaveNetwork(std::string network) {
  impl_->Post([network = std::move(network)](Impl& a) { a.LeaveNetwork(network); });
}

void Agent::Put(std::string network, std::string key, std::string value) {
  impl_->Post([network = std::move(network), key = std::move(key), value = std::move(value)](
                  Impl& a) mutable { a.Put(network, key, std::move(value)); });
}

void Agent::Delete(std::string network, std::string key) {
  impl_->Post(
      [network = std::move(network), key = std::move(key)](Impl& a) { a.Delete(network, key); });
}

void Agent::OnTable(TableFn f) {
  impl_->Post([f = std::move(f)](Impl& a) mutable { a.SetOnTable(std::move(f)); });
}

void Agent::OnMember(MemberFn f) {
  impl_->Post([f = std::move(f)](Impl& a) mutable { a.SetOnMember(std::move(f)); });
}

void Agent::Inspect(InspectFn f) {
  impl_->Post([f = std::move(f)](Impl& a) { a.Inspect(f); }, /*even_if_stopped=*/true);
}

const std::string& Agent::address() const {
  return impl_->addr();
}

}  // namespace skep::gossip
