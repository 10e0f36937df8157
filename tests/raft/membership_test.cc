#include <catch2/catch.hpp>

#include "tests/raft/harness.h"

using namespace skep::raft;
using namespace skep::raft::testing;

TEST_CASE("a learner receives the log but does not vote or count", "[membership]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  c.AddEmptyNode(4);
  REQUIRE(c.node(1).ProposeConfChange(raftpb::CONF_ADD_LEARNER, 4, "addr-4").ok());
  c.Stabilize();
  c.TickAll(2);
  CHECK(Terms(c.storage(4)) == Terms(c.storage(1)));
  CHECK(Describe(c.node(4).GetStatus().conf) == "voters=[1,2,3] learners=[4]");
  // The applied configuration entry carries the change and its context.
  raftpb::ConfChange cc;
  bool found = false;
  for (const auto& e : c.at(4).applied) {
    if (e.type() == raftpb::ENTRY_CONF_CHANGE) found = cc.ParseFromString(e.data());
  }
  REQUIRE(found);
  CHECK(cc.context() == "addr-4");

  // Without the learner the three voters still commit; the learner never campaigns.
  c.Isolate(4);
  const Index idx = c.Propose(1, "x");
  CHECK(c.node(1).GetStatus().commit == idx);
  const Term t = c.node(4).GetStatus().term;
  c.Tick(4, 100);
  CHECK(c.node(4).GetStatus().term == t);
  CHECK(c.node(4).GetStatus().role == Role::kFollower);
}

TEST_CASE("a learner is promoted only once caught up", "[membership]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  c.AddEmptyNode(4);
  c.Isolate(4);
  REQUIRE(c.node(1).ProposeConfChange(raftpb::CONF_ADD_LEARNER, 4).ok());
  c.Stabilize();
  for (int i = 0; i < 5; ++i)
    c.Propose(1, "v");
  auto st = c.node(1).ProposeConfChange(raftpb::CONF_PROMOTE, 4);
  CHECK(st.code() == ErrorCode::kNotCaughtUp);
  CHECK(st.message().rfind("learner 4 holds the log up to 0 of", 0) == 0);
  c.Heal();
  c.TickAll(2);
  REQUIRE(c.node(1).ProposeConfChange(raftpb::CONF_PROMOTE, 4).ok());
  c.Stabilize();
  c.TickAll(1);
  CHECK(Describe(c.node(4).GetStatus().conf) == "voters=[1,2,3,4]");
  // Four voters need three acks: with two of them cut, nothing commits.
  c.Isolate(3);
  c.Isolate(4);
  const Index before = c.node(1).GetStatus().commit;
  REQUIRE(c.node(1).Propose("y").ok());
  c.Stabilize();
  CHECK(c.node(1).GetStatus().commit == before);
}

TEST_CASE("one configuration change at a time", "[membership]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  c.Isolate(2);
  c.Isolate(3);
  REQUIRE(c.node(1).ProposeConfChange(raftpb::CONF_ADD_LEARNER, 4).ok());
  c.Stabilize();
  auto st = c.node(1).ProposeConfChange(raftpb::CONF_ADD_LEARNER, 5);
  CHECK(st.code() == ErrorCode::kConfChangePending);
  CHECK(st.message().find("is not committed yet") != std::string::npos);
}

TEST_CASE("a new leader changes the configuration only after committing in its term",
          "[membership]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  c.Isolate(1);
  c.SetDropFilter(
      [](const raftpb::Message& m) { return m.from() == 2 && m.type() == raftpb::MSG_APPEND; });
  REQUIRE(c.Elect(2));
  auto st = c.node(2).ProposeConfChange(raftpb::CONF_REMOVE, 1);
  CHECK(st.code() == ErrorCode::kConfChangePending);
  CHECK(st.message() == "the new leader has not committed an entry of its term yet");
  c.Heal();
  c.Isolate(1);
  c.TickAll(2);
  CHECK(c.node(2).ProposeConfChange(raftpb::CONF_REMOVE, 1).ok());
}

TEST_CASE("removing a follower shrinks the quorum", "[membership]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  REQUIRE(c.node(1).ProposeConfChange(raftpb::CONF_REMOVE, 3).ok());
  c.Stabilize();
  c.TickAll(1);
  CHECK(Describe(c.node(2).GetStatus().conf) == "voters=[1,2]");
  c.Isolate(3);
  const Index idx = c.Propose(1, "x");
  CHECK(c.node(1).GetStatus().commit == idx);
}

TEST_CASE("a removed leader steps down once its removal commits", "[membership]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  REQUIRE(c.node(1).ProposeConfChange(raftpb::CONF_REMOVE, 1).ok());
  c.Stabilize();
  CHECK(c.node(1).GetStatus().role == Role::kFollower);
  c.TickAll(40);
  const NodeId lead = c.Leader();
  CHECK((lead == 2 || lead == 3));
  CHECK(Describe(c.node(lead).GetStatus().conf) == "voters=[2,3]");
  const Index idx = c.Propose(lead, "after");
  CHECK(c.node(lead).GetStatus().commit == idx);
  c.Tick(1, 100);  // not a voter any more: it never campaigns
  CHECK(c.node(1).GetStatus().role == Role::kFollower);
}

TEST_CASE("a truncated configuration entry is undone", "[membership]") {
  Cluster c(5, [](Config& cfg) { cfg.check_quorum = false; });
  REQUIRE(c.Elect(1));
  for (NodeId id : {3, 4, 5})
    c.Isolate(id);
  REQUIRE(c.node(1).ProposeConfChange(raftpb::CONF_ADD_LEARNER, 6).ok());
  c.Stabilize();
  CHECK(Describe(c.node(2).GetStatus().conf) == "voters=[1,2,3,4,5] learners=[6]");
  c.Crash(1);
  c.Heal();
  c.Cut(2, 3);
  c.Cut(2, 4);
  c.Cut(2, 5);
  REQUIRE(c.Elect(3));
  c.Heal();
  c.TickAll(3);
  CHECK(Describe(c.node(2).GetStatus().conf) == "voters=[1,2,3,4,5]");
}
