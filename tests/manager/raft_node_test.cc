#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "daemon/manager/raft_node.h"
#include "raft/conf.h"
#include "raft/memory_storage.h"

using namespace skep;
namespace asio = boost::asio;

namespace {

class Net : public RaftTransport {
 public:
  void Send(raftpb::Message m) override {
    RaftNode* to = nullptr;
    {
      std::lock_guard lock(mu);
      if (down.count(m.to()) || down.count(m.from())) return;
      auto it = nodes.find(m.to());
      if (it != nodes.end()) to = it->second;
    }
    // Outside the lock: Step may run the receiving node's work right here.
    if (to) to->Step(std::move(m));
  }
  std::mutex mu;
  std::map<raft::NodeId, RaftNode*> nodes;
  std::set<raft::NodeId> down;
};

class Log : public RaftStateMachine {
 public:
  void Apply(const raftpb::Entry& e) override {
    if (e.type() == raftpb::ENTRY_NORMAL && !e.data().empty()) {
      std::lock_guard lock(mu);
      values.push_back(e.data());
    }
  }
  std::function<std::string()> Snapshot() override {
    std::lock_guard lock(mu);
    return [values = values] {
      std::string out;
      for (auto& v : values)
        out += v + "\n";
      return out;
    };
  }
  void Restore(const raftpb::Snapshot& s) override {
    std::lock_guard lock(mu);
    values.clear();
    std::string cur;
    for (char c : s.data()) {
      if (c == '\n') {
        values.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
  }
  size_t size() {
    std::lock_guard lock(mu);
    return values.size();
  }
  std::mutex mu;
  std::vector<std::string> values;
};

struct Cluster {
  // `apply_thread`: the manager's way, entries applied on a thread of their own.
  explicit Cluster(bool apply_thread = false, uint64_t snapshot_every = 20,
                   uint64_t snapshot_bytes = 0, uint64_t keep_bytes = 0)
      : guard(asio::make_work_guard(io)) {
    for (int i = 0; i < 2; ++i)
      threads.emplace_back([this] { io.run(); });
    const auto conf = raft::MakeConfState({1, 2, 3});
    for (raft::NodeId id = 1; id <= 3; ++id) {
      storages[id] = std::make_unique<raft::MemoryStorage>(conf);
      RaftNodeOptions o;
      o.raft.id = id;
      o.raft.seed = id;
      o.tick = std::chrono::milliseconds(5);
      o.snapshot_every = snapshot_every;
      o.snapshot_bytes = snapshot_bytes;
      o.snapshot_keep_bytes = keep_bytes;
      o.snapshot_keep = 5;
      o.apply_thread = apply_thread;
      nodes[id] = std::make_unique<RaftNode>(io, o, storages[id].get(), &net, &logs[id]);
      net.nodes[id] = nodes[id].get();
    }
    for (auto& [id, n] : nodes)
      n->Start();
  }
  ~Cluster() {
    for (auto& [id, n] : nodes)
      n->Stop();
    guard.reset();
    io.stop();
    for (auto& t : threads)
      t.join();
  }
  raft::NodeId WaitLeader(raft::NodeId except = raft::kNoNode) {
    for (int i = 0; i < 2000; ++i) {
      for (auto& [id, n] : nodes) {
        if (id != except && !net.down.count(id) && n->GetStatus().role == raft::Role::kLeader) {
          return id;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return raft::kNoNode;
  }
  raft::Status Propose(raft::NodeId id, const std::string& v) {
    std::promise<raft::Status> p;
    nodes[id]->Propose(v, [&](const raft::Status& st) { p.set_value(st); });
    return p.get_future().get();
  }
  // Snapshots are written on a thread of their own: waits for one at `index` or later.
  bool WaitSnapshot(raft::NodeId id, raft::Index index) {
    for (int i = 0; i < 2000 && storages[id]->SnapshotMeta().index() < index; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return storages[id]->SnapshotMeta().index() >= index;
  }
  bool WaitApplied(raft::NodeId id, size_t n) {
    for (int i = 0; i < 2000 && logs[id].size() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return logs[id].size() >= n;
  }

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard;
  std::vector<std::thread> threads;
  Net net;
  std::map<raft::NodeId, std::unique_ptr<raft::MemoryStorage>> storages;
  std::map<raft::NodeId, Log> logs;
  std::map<raft::NodeId, std::unique_ptr<RaftNode>> nodes;
};

}  // namespace

TEST_CASE("the driver elects, replicates and applies on every node", "[raftnode]") {
  const bool apply_thread = GENERATE(false, true);
  CAPTURE(apply_thread);
  Cluster c(apply_thread);
  const raft::NodeId lead = c.WaitLeader();
  REQUIRE(lead != raft::kNoNode);
  for (int i = 0; i < 50; ++i) {
    REQUIRE(c.Propose(lead, "v" + std::to_string(i)).ok());
    // A proposal is answered once its entry is in the state machine.
    REQUIRE(c.logs[lead].size() == static_cast<size_t>(i + 1));
  }
  for (raft::NodeId id = 1; id <= 3; ++id) {
    REQUIRE(c.WaitApplied(id, 50));
    CHECK(c.logs[id].values[49] == "v49");
  }
  // Snapshots were taken along the way and the log compacted behind them.
  CHECK(c.WaitSnapshot(lead, 1));
  CHECK(c.storages[lead]->FirstIndex() > 1);
}

TEST_CASE("the driver refuses proposals on a follower and serves reads", "[raftnode]") {
  const bool apply_thread = GENERATE(false, true);
  CAPTURE(apply_thread);
  Cluster c(apply_thread);
  const raft::NodeId lead = c.WaitLeader();
  REQUIRE(lead != raft::kNoNode);
  const raft::NodeId follower = lead == 1 ? 2 : 1;
  auto st = c.Propose(follower, "x");
  CHECK(st.code() == raft::ErrorCode::kNotLeader);
  REQUIRE(c.Propose(lead, "y").ok());
  std::promise<raft::Status> p;
  c.nodes[follower]->ReadIndex([&](const raft::Status& s) { p.set_value(s); });
  REQUIRE(p.get_future().get().ok());
  // The read point covers "y": the follower has applied it by the time the read is served.
  CHECK(c.logs[follower].size() >= 1);
}

TEST_CASE("the driver fails over when the leader is cut off", "[raftnode]") {
  const bool apply_thread = GENERATE(false, true);
  CAPTURE(apply_thread);
  Cluster c(apply_thread);
  const raft::NodeId lead = c.WaitLeader();
  REQUIRE(lead != raft::kNoNode);
  REQUIRE(c.Propose(lead, "before").ok());
  {
    std::lock_guard lock(c.net.mu);
    c.net.down.insert(lead);
  }
  const raft::NodeId next = c.WaitLeader(lead);
  REQUIRE(next != raft::kNoNode);
  REQUIRE(c.Propose(next, "after").ok());
  REQUIRE(c.WaitApplied(next, 2));
  CHECK(c.logs[next].values.back() == "after");
}

TEST_CASE("a follower cut off while the log is compacted catches up from a snapshot",
          "[raftnode]") {
  const bool apply_thread = GENERATE(false, true);
  CAPTURE(apply_thread);
  Cluster c(apply_thread);
  const raft::NodeId lead = c.WaitLeader();
  REQUIRE(lead != raft::kNoNode);
  const raft::NodeId behind = lead == 3 ? 2 : 3;
  REQUIRE(c.Propose(lead, "first").ok());
  REQUIRE(c.WaitApplied(behind, 1));
  {
    std::lock_guard lock(c.net.mu);
    c.net.down.insert(behind);
  }
  for (int i = 0; i < 60; ++i)
    REQUIRE(c.Propose(lead, "v" + std::to_string(i)).ok());
  // Snapshots are written on a thread of their own: wait until "first" has left the log.
  for (int i = 0; i < 400 && c.storages[lead]->FirstIndex() <= 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE(c.storages[lead]->FirstIndex() > 3);
  {
    std::lock_guard lock(c.net.mu);
    c.net.down.erase(behind);
  }
  REQUIRE(c.WaitApplied(behind, 61));
  std::lock_guard lock(c.logs[behind].mu);
  CHECK(c.logs[behind].values.front() == "first");
  CHECK(c.logs[behind].values.back() == "v59");
}

TEST_CASE("the driver also takes a snapshot by the bytes applied since the last", "[raftnode]") {
  // By count never (every 1,000,000 entries); by size after 64 bytes: each value is 3 bytes.
  // Without a bound in bytes on what is kept, 5 entries stay behind a snapshot; with 10 bytes,
  // 3 (the rest of the log is compacted).
  const uint64_t keep_bytes = GENERATE(0, 10);
  CAPTURE(keep_bytes);
  Cluster c(true, 1'000'000, 64, keep_bytes);
  const raft::NodeId lead = c.WaitLeader();
  REQUIRE(lead != raft::kNoNode);
  for (int i = 100; i < 150; ++i)
    REQUIRE(c.Propose(lead, "v" + std::to_string(i).substr(1)).ok());
  REQUIRE(c.WaitApplied(lead, 50));
  // The last one due (after the 44th value) is waited for.
  c.WaitSnapshot(lead, 40);
  const raft::Index snap = c.storages[lead]->SnapshotMeta().index();
  REQUIRE(snap > 0);
  CHECK(c.storages[lead]->FirstIndex() == snap + 1 - (keep_bytes == 0 ? 5 : 3));
}
