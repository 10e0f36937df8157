// The gossip agent on real sockets: small clusters on 127.0.0.1, each agent on its own port,
// with fast memberlist timings. Every wait is for a condition, with a deadline; nothing
// asserts on timing.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "overlay/gossip/agent.h"
#include "overlay/gossip/keyring.h"

using namespace skep::gossip;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

std::string Key(char fill) {
  return std::string(kKeyBytes, fill);
}

// A port free for both UDP and TCP on loopback, below the ephemeral range so that outgoing
// connections do not take it meanwhile. Each process (ctest runs test cases in parallel
// processes) starts at its own offset, 10 ports apart; no test uses more than 8.
uint16_t FreePort() {
  static uint16_t next = static_cast<uint16_t>(20000 + (getpid() % 1200) * 10);
  asio::io_context io;
  for (int tries = 0; tries < 5000; ++tries) {
    uint16_t port = next++;
    if (next >= 32000) next = 20000;
    boost::system::error_code ec;
    asio::ip::udp::socket u(io);
    asio::ip::tcp::acceptor t(io);
    auto ip = asio::ip::make_address("127.0.0.1");
    u.open(asio::ip::udp::v4(), ec);
    if (!ec) u.bind({ip, port}, ec);
    if (!ec) t.open(asio::ip::tcp::v4(), ec);
    if (!ec) t.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
    if (!ec) t.bind({ip, port}, ec);
    if (!ec) return port;
  }
  FAIL("no free port");
  return 0;
}

Config FastMemberlist() {
  Config c;
  c.probe_interval_ms = 200;
  c.probe_timeout_ms = 100;
  c.gossip_interval_ms = 50;
  c.push_pull_interval_ms = 2000;
  c.reconnect_interval_ms = 2000;
  return c;
}

// Waits until `done` holds, checking every 20 ms, for at most `limit`.
bool Eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 60s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// A 150-byte value, about the size of a real endpoint record.
std::string Value(const std::string& tag) {
  std::string v = tag + ":";
  v.resize(150, '.');
  return v;
}

// Agents on one io_context run by two threads, with what each agent's OnTable last said.
class Lab {
 public:
  Lab() : guard_(asio::make_work_guard(io_)) {
    for (int i = 0; i < 2; ++i)
      threads_.emplace_back([this] { io_.run(); });
  }
  ~Lab() {
    agents_.clear();  // each posts its Stop
    guard_.reset();
    for (std::thread& t : threads_)
      t.join();
  }

  // Starts agent "a<i>" (or `name`) with `keys`; returns its index.
  size_t Add(std::vector<std::string> keys, Config memberlist = FastMemberlist(),
             bool wall_clock_floor = true) {
    size_t i = agents_.size();
    agents_.emplace_back();
    names_.push_back("a" + std::to_string(i));
    ports_.push_back(FreePort());
    configs_.push_back({memberlist, wall_clock_floor});
    Boot(i, std::move(keys));
    return i;
  }

  // A new process under the same name and port (after Stop).
  void Restart(size_t i, std::vector<std::string> keys) { Boot(i, std::move(keys)); }

  void Stop(size_t i) {
    std::promise<void> stopped;
    agents_[i]->Stop([&] { stopped.set_value(); });
    REQUIRE(stopped.get_future().wait_for(10s) == std::future_status::ready);
  }

  Agent& operator[](size_t i) { return *agents_[i]; }
  std::string addr(size_t i) const { return "127.0.0.1:" + std::to_string(ports_[i]); }
  uint16_t port(size_t i) const { return ports_[i]; }
  const std::string& name(size_t i) const { return names_[i]; }

  // Runs `f` on agent i's strand and returns what it returns.
  template <class F>
  auto Query(size_t i, F f) {
    using R = decltype(f(std::declval<const Memberlist&>(), std::declval<const EndpointTable&>(),
                         std::declval<const Agent::Stats&>()));
    auto result = std::make_shared<std::promise<R>>();
    std::future<R> future = result->get_future();
    agents_[i]->Inspect([result, f](const Memberlist& m, const EndpointTable& t,
                                    const Agent::Stats& s) { result->set_value(f(m, t, s)); });
    if (future.wait_for(10s) != std::future_status::ready) FAIL("agent " << i << " is stuck");
    return future.get();
  }
  Agent::Stats Stats(size_t i) {
    return Query(i,
                 [](const Memberlist&, const EndpointTable&, const Agent::Stats& s) { return s; });
  }
  // agent i's view of agent j.
  std::optional<MemberState> View(size_t i, size_t j) {
    return Query(i,
                 [name = names_[j]](const Memberlist& m, const EndpointTable&,
                                    const Agent::Stats&) -> std::optional<MemberState> {
                   const Member* member = m.Find(name);
                   if (member == nullptr) return std::nullopt;
                   return member->state;
                 });
  }

  // "key=value" of what agent i's OnTable last reported for `network`; nullopt if never.
  std::optional<std::set<std::string>> Table(size_t i, const std::string& network) {
    std::lock_guard lock(mu_);
    auto it = tables_[names_[i] + "/" + std::to_string(generation_[i])].find(network);
    if (it == tables_[names_[i] + "/" + std::to_string(generation_[i])].end()) return std::nullopt;
    return it->second;
  }
  bool TableIs(size_t i, const std::string& network, const std::set<std::string>& want) {
    auto t = Table(i, network);
    return t && *t == want;
  }

 private:
  struct AgentSetup {
    Config memberlist;
    bool wall_clock_floor;
  };

  void Boot(size_t i, std::vector<std::string> keys) {
    AgentConfig c;
    c.name = names_[i];
    c.bind_ip = "127.0.0.1";
    c.port = ports_[i];
    c.memberlist = configs_[i].memberlist;
    c.join_retry_min_ms = 100;
    c.join_retry_max_ms = 1000;
    c.stream_timeout_ms = 2000;
    c.wall_clock_floor = configs_[i].wall_clock_floor;
    agents_[i] = std::make_unique<Agent>(io_, c);
    std::string tag;
    {
      std::lock_guard lock(mu_);
      tag = names_[i] + "/" + std::to_string(++generation_[i]);
    }
    agents_[i]->OnTable(
        [this, tag](const std::string& network, const std::vector<TableEntry>& entries) {
          std::set<std::string> kv;
          for (const TableEntry& e : entries)
            kv.insert(e.key + "=" + e.value);
          std::lock_guard lock(mu_);
          tables_[tag][network] = std::move(kv);
        });
    if (!keys.empty()) agents_[i]->SetKeys(std::move(keys));
    agents_[i]->Start();
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<Agent>> agents_;
  std::vector<std::string> names_;
  std::vector<uint16_t> ports_;
  std::vector<AgentSetup> configs_;
  std::mutex mu_;
  std::map<size_t, int> generation_;  // per agent: one per process (Restart)
  std::map<std::string, std::map<std::string, std::set<std::string>>> tables_;
};

// n agents with `key`, all joined through agent 0, every one seeing all alive.
void Cluster(Lab& lab, size_t n, const std::string& key, Config memberlist = FastMemberlist(),
             bool wall_clock_floor = true) {
  for (size_t i = 0; i < n; ++i) {
    lab.Add({key}, memberlist, wall_clock_floor);
    if (i > 0) lab[i].Join({lab.addr(0)});
  }
  for (size_t i = 0; i < n; ++i) {
    INFO("agent " << i);
    REQUIRE(Eventually([&] { return lab.Stats(i).members_alive == n; }));
  }
}

// What OnTable should say when agents `in` each put "ep-<i>" = Value("<i>").
std::set<std::string> Endpoints(const std::vector<size_t>& in) {
  std::set<std::string> out;
  for (size_t i : in)
    out.insert("ep-" + std::to_string(i) + "=" + Value(std::to_string(i)));
  return out;
}

void PutEndpoints(Lab& lab, const std::vector<size_t>& in, const std::string& network) {
  for (size_t i : in) {
    lab[i].JoinNetwork(network);
    lab[i].Put(network, "ep-" + std::to_string(i), Value(std::to_string(i)));
  }
}

// What the agents' OnTable last said, for failure messages.
std::string Describe(Lab& lab, const std::vector<size_t>& agents, const std::string& network) {
  std::string out;
  for (size_t i : agents) {
    out += "\n  " + lab.name(i) + ":";
    auto t = lab.Table(i, network);
    if (!t) {
      out += " (no table)";
      continue;
    }
    for (const std::string& kv : *t)
      out += " " + kv.substr(0, kv.find_first_of('.'));
  }
  return out;
}

bool AllTablesAre(Lab& lab, const std::vector<size_t>& agents, const std::string& network,
                  const std::set<std::string>& want) {
  for (size_t i : agents) {
    if (!lab.TableIs(i, network, want)) return false;
  }
  return true;
}

// Waits for every agent in `agents` to report `want` for `network`.
void RequireTables(Lab& lab, const std::vector<size_t>& agents, const std::string& network,
                   const std::set<std::string>& want) {
  bool converged = Eventually([&] { return AllTablesAre(lab, agents, network, want); });
  INFO("tables of " << network << ":" << Describe(lab, agents, network));
  REQUIRE(converged);
}

}  // namespace

TEST_CASE("five agents with the same key join through one seed and see each other alive",
          "[agent]") {
  Lab lab;
  Cluster(lab, 5, Key('k'));
  for (size_t i = 0; i < 5; ++i) {
    Agent::Stats s = lab.Stats(i);
    CHECK(s.received > 0);
    CHECK(s.sent > 0);
    CHECK(s.dropped_unauthenticated == 0);
    CHECK(s.dropped_malformed == 0);
  }
}

TEST_CASE("endpoint tables converge, deletes and departures propagate, outsiders hold none",
          "[agent]") {
  Lab lab;
  Cluster(lab, 6, Key('k'));  // agent 5 stays out of n1
  std::vector<size_t> in = {0, 1, 2, 3, 4};
  PutEndpoints(lab, in, "n1");
  RequireTables(lab, in, "n1", Endpoints(in));

  lab[0].Delete("n1", "ep-0");
  std::vector<size_t> rest = {1, 2, 3, 4};
  RequireTables(lab, in, "n1", Endpoints(rest));

  // A departure from the network takes the leaver's entries with it, and its own table.
  lab[1].LeaveNetwork("n1");
  std::vector<size_t> staying = {0, 2, 3, 4};
  std::vector<size_t> left_entries = {2, 3, 4};
  RequireTables(lab, staying, "n1", Endpoints(left_entries));
  CHECK(lab.TableIs(1, "n1", {}));

  // The outsider relayed the gossip but keeps no table, and was never told about one.
  CHECK_FALSE(lab.Table(5, "n1").has_value());
  CHECK(lab.Query(5, [](const Memberlist&, const EndpointTable& t, const Agent::Stats&) {
    return !t.Participates("n1") && t.Entries("n1").empty();
  }));
}

TEST_CASE("an agent joining a network late gets its table from a participant", "[agent]") {
  Lab lab;
  Config no_periodic_sync = FastMemberlist();
  no_periodic_sync.push_pull_interval_ms = 3'600'000;
  no_periodic_sync.reconnect_interval_ms = 0;
  Cluster(lab, 4, Key('k'), no_periodic_sync);
  std::vector<size_t> early = {0, 1, 2};
  PutEndpoints(lab, early, "n1");
  RequireTables(lab, early, "n1", Endpoints(early));
  // Once the broadcasts are spent, only the push-pull that joining the network starts can
  // bring agent 3 what it missed.
  REQUIRE(Eventually([&] {
    for (size_t i = 0; i < 4; ++i) {
      auto pending = lab.Query(i, [](const Memberlist& m, const EndpointTable&,
                                     const Agent::Stats&) { return m.pending_broadcasts(); });
      if (pending != 0) return false;
    }
    return true;
  }));
  PutEndpoints(lab, {3}, "n1");
  std::vector<size_t> all = {0, 1, 2, 3};
  RequireTables(lab, all, "n1", Endpoints(all));
}

TEST_CASE("an agent with another key does not join and its packets are dropped", "[agent]") {
  Lab lab;
  Cluster(lab, 3, Key('k'));
  size_t stranger = lab.Add({Key('x')});
  lab[stranger].Join({lab.addr(0)});
  // It keeps retrying; the seed drops each attempt.
  REQUIRE(Eventually([&] { return lab.Stats(0).dropped_unauthenticated >= 2; }));
  CHECK(lab.Stats(stranger).members_alive == 1);
  CHECK(lab.Stats(stranger).received == 0);
  for (size_t i = 0; i < 3; ++i) {
    CHECK_FALSE(lab.View(i, stranger).has_value());
    CHECK(lab.Stats(i).members_alive == 3);
  }
  CHECK(lab.Stats(stranger).dropped_unauthenticated == 0);  // nobody could even answer it

  SECTION("an agent without any key sends nothing, and joins once it gets the key") {
    size_t late = lab.Add({});
    lab[late].Join({lab.addr(0)});
    REQUIRE(Eventually([&] { return lab.Stats(late).unsent >= 2; }));
    CHECK(lab.Stats(late).sent == 0);
    lab[late].SetKeys({Key('k')});
    REQUIRE(Eventually([&] { return lab.Stats(late).members_alive == 4; }));
    REQUIRE(Eventually([&] { return lab.View(0, late) == MemberState::kAlive; }));
  }
}

TEST_CASE("key rotation keeps the cluster gossiping", "[agent]") {
  Lab lab;
  const size_t n = 4;
  Cluster(lab, n, Key('o'));
  std::vector<size_t> all = {0, 1, 2, 3};
  PutEndpoints(lab, all, "n1");
  RequireTables(lab, all, "n1", Endpoints(all));
  auto all_alive = [&] {
    for (size_t i = 0; i < n; ++i) {
      if (lab.Stats(i).members_alive != n) return false;
    }
    return true;
  };

  // Step 1: the new key becomes primary everywhere, the old one still accepted.
  for (size_t i = 0; i < n; ++i)
    lab[i].SetKeys({Key('n'), Key('o')});
  lab[0].Put("n1", "after-step-1", "v1");
  auto with = [&](std::set<std::string> extra) {
    std::set<std::string> want = Endpoints(all);
    want.insert(extra.begin(), extra.end());
    return want;
  };
  RequireTables(lab, all, "n1", with({"after-step-1=v1"}));

  // Step 2: the old key is removed.
  for (size_t i = 0; i < n; ++i)
    lab[i].SetKeys({Key('n')});
  lab[1].Put("n1", "after-step-2", "v2");
  RequireTables(lab, all, "n1", with({"after-step-1=v1", "after-step-2=v2"}));
  REQUIRE(Eventually(all_alive));

  // An agent that only has the old key is now a stranger.
  uint64_t dropped = lab.Stats(0).dropped_unauthenticated;
  size_t old = lab.Add({Key('o')});
  lab[old].Join({lab.addr(0)});
  REQUIRE(Eventually([&] { return lab.Stats(0).dropped_unauthenticated > dropped; }));
  CHECK(lab.Stats(old).members_alive == 1);
  CHECK_FALSE(lab.View(0, old).has_value());
}

TEST_CASE("a stopped agent is marked failed and loses its entries, and its restart writes win",
          "[agent]") {
  // With the wall clock floor the restarted node's writes outrank its old ones at once;
  // without it they lose at first and win once the bulk sync shows it the stale state.
  bool floor = GENERATE(true, false);
  INFO("wall clock floor: " << floor);
  Lab lab;
  const size_t n = 4;
  Cluster(lab, n, Key('k'), FastMemberlist(), floor);
  std::vector<size_t> all = {0, 1, 2, 3};
  std::vector<size_t> others = {0, 1, 2};
  PutEndpoints(lab, all, "n1");
  RequireTables(lab, all, "n1", Endpoints(all));

  lab.Stop(3);  // no Leave: a crash, as far as the others can tell
  for (size_t i : others) {
    INFO("observer " << i);
    REQUIRE(Eventually([&] { return lab.View(i, 3) == MemberState::kDead; }));
  }
  RequireTables(lab, others, "n1", Endpoints(others));

  lab.Restart(3, {Key('k')});
  lab[3].Join({lab.addr(0)});
  lab[3].JoinNetwork("n1");
  lab[3].Put("n1", "ep-3", "fresh");
  std::set<std::string> want = Endpoints(others);
  want.insert("ep-3=fresh");
  RequireTables(lab, all, "n1", want);
  for (size_t i : others) {
    INFO("observer " << i);
    REQUIRE(Eventually([&] { return lab.View(i, 3) == MemberState::kAlive; }));
  }
}

TEST_CASE("an agent restarted before anyone noticed replaces its previous life's entries",
          "[agent]") {
  bool floor = GENERATE(true, false);
  INFO("wall clock floor: " << floor);
  Lab lab;
  Config slow_suspicion = FastMemberlist();
  slow_suspicion.suspicion_mult = 20;  // seconds before a silent member is declared dead
  const size_t n = 4;
  Cluster(lab, n, Key('k'), slow_suspicion, floor);
  std::vector<size_t> all = {0, 1, 2, 3};
  PutEndpoints(lab, all, "n1");
  lab[3].Put("n1", "old-3", "from the previous life");
  std::set<std::string> before = Endpoints(all);
  before.insert("old-3=from the previous life");
  RequireTables(lab, all, "n1", before);

  lab.Stop(3);
  lab.Restart(3, {Key('k')});
  lab[3].Join({lab.addr(0)});
  lab[3].JoinNetwork("n1");
  lab[3].Put("n1", "ep-3", "fresh");
  std::set<std::string> want = Endpoints({0, 1, 2});
  want.insert("ep-3=fresh");
  RequireTables(lab, all, "n1", want);
}

TEST_CASE("malformed packets are dropped and counted, and the agent keeps working", "[agent]") {
  Lab lab;
  Cluster(lab, 2, Key('k'));
  asio::io_context io;
  auto target_ip = asio::ip::make_address("127.0.0.1");
  asio::ip::udp::endpoint target(target_ip, lab.port(0));
  asio::ip::udp::socket udp(io, asio::ip::udp::v4());
  std::mt19937_64 rng(7);

  // Random bytes of many lengths, including nothing at all: they do not authenticate.
  const int kRandom = 50;
  for (int i = 0; i < kRandom; ++i) {
    std::string junk(static_cast<size_t>(i * 13), '\0');
    for (char& c : junk)
      c = static_cast<char>(rng());
    udp.send_to(asio::buffer(junk), target);
  }
  // Sealed with the right key, but not messages: they authenticate and fail to decode.
  Keyring ring({Key('k')});
  const int kGarbage = 10;
  for (int i = 0; i < kGarbage; ++i) {
    std::string garbage(static_cast<size_t>(i * 7), static_cast<char>(i));
    udp.send_to(asio::buffer(ring.Seal(garbage)), target);
  }
  REQUIRE(Eventually([&] {
    Agent::Stats s = lab.Stats(0);
    return s.dropped_unauthenticated >= kRandom && s.dropped_malformed >= kGarbage;
  }));

  // Over TCP: a frame claiming more than the cap, and a sealed frame of garbage.
  auto frame = [](const std::string& body, uint32_t claimed) {
    std::string f;
    for (int shift = 24; shift >= 0; shift -= 8)
      f.push_back(static_cast<char>(claimed >> shift));
    return f + body;
  };
  asio::ip::tcp::endpoint tcp_target(target_ip, lab.port(0));
  uint64_t malformed = lab.Stats(0).dropped_malformed;
  {
    asio::ip::tcp::socket s(io);
    s.connect(tcp_target);
    asio::write(s, asio::buffer(frame("", 1u << 30)));
    // The agent hangs up on it.
    char byte;
    boost::system::error_code ec;
    asio::read(s, asio::buffer(&byte, 1), ec);
    CHECK(ec == asio::error::eof);
  }
  {
    asio::ip::tcp::socket s(io);
    s.connect(tcp_target);
    std::string sealed = ring.Seal("not a message");
    asio::write(s, asio::buffer(frame(sealed, static_cast<uint32_t>(sealed.size()))));
  }
  REQUIRE(Eventually([&] { return lab.Stats(0).dropped_malformed >= malformed + 2; }));
  {
    // A peer that connects and says nothing is cut off after the read timeout.
    asio::ip::tcp::socket s(io);
    s.connect(tcp_target);
    char byte;
    boost::system::error_code ec;
    asio::read(s, asio::buffer(&byte, 1), ec);
    CHECK(ec == asio::error::eof);
  }

  // Still gossiping.
  lab[0].JoinNetwork("n1");
  lab[1].JoinNetwork("n1");
  lab[0].Put("n1", "k", "v");
  REQUIRE(Eventually([&] { return lab.TableIs(1, "n1", {"k=v"}); }));
  CHECK(lab.View(1, 0) == MemberState::kAlive);
  CHECK(lab.View(0, 1) == MemberState::kAlive);
}
