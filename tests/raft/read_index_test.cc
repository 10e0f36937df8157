#include <catch2/catch.hpp>

#include "tests/raft/harness.h"

using namespace skep::raft;
using namespace skep::raft::testing;

TEST_CASE("the leader serves a read after a heartbeat round", "[readindex]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  const Index idx = c.Propose(1, "x");
  REQUIRE(c.node(1).ReadIndex("r1").ok());
  c.Stabilize();
  REQUIRE(c.at(1).reads.size() == 1);
  CHECK(c.at(1).reads[0].index == idx);
  CHECK(c.at(1).reads[0].context == "r1");
}

TEST_CASE("a follower's read is confirmed by the leader", "[readindex]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  const Index idx = c.Propose(1, "x");
  REQUIRE(c.node(3).ReadIndex("r3").ok());
  c.Stabilize();
  REQUIRE(c.at(3).reads.size() == 1);
  CHECK(c.at(3).reads[0].index == idx);
  CHECK(c.at(3).reads[0].context == "r3");
}

TEST_CASE("a leader cut off from the quorum never confirms a read", "[readindex]") {
  Cluster c(3, [](Config& cfg) { cfg.check_quorum = false; });
  REQUIRE(c.Elect(1));
  c.Isolate(1);
  REQUIRE(c.node(1).ReadIndex("stale?").ok());
  c.Tick(1, 30);
  CHECK(c.at(1).reads.empty());
  // Meanwhile the majority moves on.
  REQUIRE(c.Elect(2));
  c.Propose(2, "newer");
}

TEST_CASE("a new leader defers reads until it commits in its term", "[readindex]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  c.Propose(1, "x");
  c.SetDropFilter(
      [](const raftpb::Message& m) { return m.from() == 2 && m.type() == raftpb::MSG_APPEND; });
  REQUIRE(c.Elect(2));
  REQUIRE(c.node(2).ReadIndex("r").ok());
  c.TickAll(2);
  CHECK(c.at(2).reads.empty());
  c.Heal();
  c.TickAll(2);
  REQUIRE(c.at(2).reads.size() == 1);
  // The read index covers the new leader's first entry.
  CHECK(c.at(2).reads[0].index >= c.storage(2).LastIndex());
}

TEST_CASE("a read without a known leader is refused", "[readindex]") {
  Cluster c(3);
  auto st = c.node(2).ReadIndex("r");
  CHECK(st.code() == ErrorCode::kNotLeader);
}
