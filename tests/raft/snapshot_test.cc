#include <catch2/catch.hpp>

#include "tests/raft/harness.h"

using namespace skep::raft;
using namespace skep::raft::testing;

namespace {

// Leader 1 commits 30 entries while node 3 is away, then snapshots and compacts its log.
void LeaveNode3Behind(Cluster& c) {
  REQUIRE(c.Elect(1));
  c.Isolate(3);
  for (int i = 0; i < 30; ++i)
    c.Propose(1, "v" + std::to_string(i));
  const Index applied = c.node(1).GetStatus().applied;
  for (NodeId id : {1, 2}) {
    c.storage(id).CreateSnapshot(applied, c.node(id).GetStatus().conf,
                                 std::string(100, 's') + std::to_string(applied), applied);
  }
}

size_t CountSnapshotChunks(const Cluster& c, NodeId to) {
  size_t n = 0;
  for (const auto& m : c.sent)
    n += m.type() == raftpb::MSG_SNAPSHOT && m.to() == to;
  return n;
}

void Configure(Config& cfg) {
  cfg.snapshot_chunk_size = 16;
  cfg.snapshot_chunks_in_flight = 2;
}

}  // namespace

TEST_CASE("a follower behind the compacted log gets the snapshot in chunks", "[snapshot]") {
  Cluster c(3, Configure);
  LeaveNode3Behind(c);
  c.sent.clear();
  c.Heal();
  c.TickAll(3);
  CHECK(CountSnapshotChunks(c, 3) >= 7);  // 103 bytes in 16-byte chunks
  CHECK(c.storage(3).SnapshotMeta().index() == c.storage(1).SnapshotMeta().index());
  CHECK(c.storage(3).Snapshot()->data() == c.storage(1).Snapshot()->data());
  c.Propose(1, "after");
  c.TickAll(2);
  CHECK(c.storage(3).LastIndex() == c.storage(1).LastIndex());
  CHECK(c.at(3).applied.back().data() == "after");
}

TEST_CASE("a lost snapshot chunk is sent again", "[snapshot]") {
  Cluster c(3, Configure);
  LeaveNode3Behind(c);
  int chunks = 0;
  c.Heal();
  c.SetDropFilter([&](const raftpb::Message& m) {
    return m.type() == raftpb::MSG_SNAPSHOT && m.to() == 3 && ++chunks == 2;
  });
  c.TickAll(30);
  CHECK(c.storage(3).Snapshot()->data() == c.storage(1).Snapshot()->data());
  CHECK(c.storage(3).LastIndex() == c.storage(1).LastIndex());
}

TEST_CASE("a follower that restarts during a transfer gets the snapshot from the start",
          "[snapshot]") {
  Cluster c(3, Configure);
  LeaveNode3Behind(c);
  c.Heal();
  int chunks = 0;
  c.SetDropFilter([&](const raftpb::Message& m) {
    return m.type() == raftpb::MSG_SNAPSHOT && m.to() == 3 && ++chunks > 3;
  });
  c.TickAll(1);
  c.Restart(3);  // the chunks it held are gone
  c.Heal();
  c.TickAll(30);
  CHECK(c.storage(3).Snapshot()->data() == c.storage(1).Snapshot()->data());
  CHECK(c.storage(3).LastIndex() == c.storage(1).LastIndex());
}

TEST_CASE("a restarted node recovers from its snapshot and log", "[snapshot]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  for (int i = 0; i < 10; ++i)
    c.Propose(1, "v" + std::to_string(i));
  const auto st = c.node(2).GetStatus();
  c.storage(2).CreateSnapshot(st.applied - 3, st.conf, "snap", st.applied - 5);
  c.Restart(2);
  const auto after = c.node(2).GetStatus();
  CHECK(after.term == st.term);
  CHECK(after.last_index == st.last_index);
  CHECK(after.commit == st.commit);
  // The state machine restores from the snapshot and is handed the entries after it.
  CHECK(after.applied == st.applied - 3);
  c.TickAll(2);
  CHECK(c.at(2).applied.size() == 3);
}
