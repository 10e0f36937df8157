#include <catch2/catch.hpp>

#include "tests/raft/harness.h"

using namespace skep::raft;
using namespace skep::raft::testing;

TEST_CASE("a single node elects itself and commits alone", "[election]") {
  Cluster c(1);
  c.TickAll(25);
  REQUIRE(c.Leader() == 1);
  c.Propose(1, "x");
  CHECK(c.node(1).GetStatus().commit == 3);  // the bootstrap entry, the leader's empty entry, x
  CHECK(c.at(1).applied.back().data() == "x");
}

TEST_CASE("three nodes elect exactly one leader by ticking", "[election]") {
  Cluster c(3);
  c.TickAll(40);
  const NodeId lead = c.Leader();
  REQUIRE(lead != kNoNode);
  for (NodeId id = 1; id <= 3; ++id) {
    auto s = c.node(id).GetStatus();
    CHECK(s.lead == lead);
    CHECK((s.role == Role::kLeader) == (id == lead));
  }
}

TEST_CASE("a node votes once per term", "[election]") {
  Cluster c(3, [](Config& cfg) { cfg.pre_vote = false; });
  c.Isolate(2);
  REQUIRE_FALSE(c.Elect(2));  // 2 is cut from everyone: its requests vanish
  c.Heal();
  // Node 3 has not voted in term 2; node 2's request arrives first and wins.
  raftpb::Message vote;
  vote.set_type(raftpb::MSG_VOTE);
  vote.set_from(2);
  vote.set_to(3);
  vote.set_term(2);
  vote.set_index(1);
  vote.set_log_term(1);
  REQUIRE(c.node(3).Step(vote).ok());
  raftpb::Message other = vote;
  other.set_from(1);
  REQUIRE(c.node(3).Step(other).ok());
  auto rd = c.node(3).GetReady();
  REQUIRE(rd.persisted_messages.size() == 2);
  CHECK_FALSE(rd.persisted_messages[0].reject());
  CHECK(rd.persisted_messages[1].reject());
  REQUIRE(rd.hard_state);
  CHECK(rd.hard_state->vote() == 2);
  // Votes leave only after the vote is durable.
  CHECK(rd.messages.empty());
}

TEST_CASE("a candidate with a shorter log loses", "[election]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  c.Isolate(3);
  c.Propose(1, "a");
  c.Heal();
  c.Crash(1);
  // Node 3 misses entry "a": node 2 refuses it, so it cannot win.
  CHECK_FALSE(c.Elect(3));
  CHECK(c.Elect(2));
}

TEST_CASE("pre-vote keeps a partitioned node from disrupting the cluster", "[election][prevote]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  c.Isolate(3);
  c.Tick(3, 100);
  // Without pre-vote node 3's term would have grown with every timeout.
  CHECK(c.node(3).GetStatus().term == c.node(1).GetStatus().term);
  c.Heal();
  c.TickAll(5);
  CHECK(c.Leader() == 1);
  CHECK(c.node(3).GetStatus().lead == 1);
}

TEST_CASE("without pre-vote a partitioned node raises its term", "[election][prevote]") {
  Cluster c(3, [](Config& cfg) {
    cfg.pre_vote = false;
    cfg.check_quorum = false;
  });
  REQUIRE(c.Elect(1));
  const Term t = c.node(1).GetStatus().term;
  c.Isolate(3);
  c.Tick(3, 100);
  CHECK(c.node(3).GetStatus().term > t + 2);
}

TEST_CASE("two followers that time out together do not split the vote", "[election][prevote]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  const Term t = c.node(1).GetStatus().term;
  c.Crash(1);
  // Both time out before either hears from the other (two election timeouts of ticks, no
  // message delivered): both are pre-candidates when their pre-votes cross.
  for (int i = 0; i < 2 * Config{}.election_tick; ++i) {
    c.node(2).Tick();
    c.node(3).Tick();
  }
  REQUIRE(c.node(2).GetStatus().role == Role::kPreCandidate);
  REQUIRE(c.node(3).GetStatus().role == Role::kPreCandidate);
  c.Stabilize();
  // The higher ID stood down: one round, one leader, no term lost to a split vote.
  CHECK(c.Leader() == 2);
  CHECK(c.node(2).GetStatus().term == t + 1);
  CHECK(c.node(3).GetStatus().term == t + 1);
}

TEST_CASE("check-quorum makes a cut-off leader step down", "[election][checkquorum]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  c.Isolate(1);
  c.Tick(1, 25);
  CHECK(c.node(1).GetStatus().role == Role::kFollower);
  // Meanwhile the others elect a new leader.
  c.TickAll(40);
  const NodeId lead = c.Leader();
  CHECK((lead == 2 || lead == 3));
}

TEST_CASE("a leader given several election timeouts to hear a quorum waits for all of them",
          "[election][checkquorum]") {
  Cluster c(3, [](Config& cfg) { cfg.check_quorum_timeouts = 3; });
  REQUIRE(c.Elect(1));
  c.Isolate(1);
  c.Tick(1, 25);  // two and a half election timeouts: one would have stepped it down
  CHECK(c.node(1).GetStatus().role == Role::kLeader);
  c.Tick(1, 40);
  CHECK(c.node(1).GetStatus().role == Role::kFollower);
  // The others did not wait for it: they elected after one timeout of their own.
  c.TickAll(40);
  const NodeId lead = c.Leader();
  CHECK((lead == 2 || lead == 3));
}

TEST_CASE("followers in touch with a leader ignore vote requests", "[election][checkquorum]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  const Term t = c.node(1).GetStatus().term;
  raftpb::Message vote;
  vote.set_type(raftpb::MSG_VOTE);
  vote.set_from(3);
  vote.set_to(2);
  vote.set_term(t + 1);
  vote.set_index(100);
  vote.set_log_term(t);
  REQUIRE(c.node(2).Step(vote).ok());
  CHECK(c.node(2).GetStatus().term == t);
  CHECK(c.node(2).GetStatus().lead == 1);
}

TEST_CASE("a stale leader learns the new term and steps down", "[election]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  c.Isolate(1);
  REQUIRE(c.Elect(2));
  c.Heal();
  c.Tick(1, 1);  // its heartbeat is answered with the higher term
  CHECK(c.node(1).GetStatus().role == Role::kFollower);
  CHECK(c.node(1).GetStatus().term == c.node(2).GetStatus().term);
}
