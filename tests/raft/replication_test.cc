#include <catch2/catch.hpp>

#include "tests/raft/harness.h"

using namespace skep::raft;
using namespace skep::raft::testing;

TEST_CASE("proposals commit and apply everywhere in order", "[replication]") {
  Cluster c(5);
  REQUIRE(c.Elect(1));
  for (int i = 0; i < 20; ++i)
    c.Propose(1, "cmd" + std::to_string(i));
  c.TickAll(2);  // heartbeats carry the final commit index
  for (NodeId id = 1; id <= 5; ++id) {
    const auto& applied = c.at(id).applied;
    // The bootstrap entry, the leader's empty entry, then the commands.
    REQUIRE(applied.size() == 22);
    for (int i = 0; i < 20; ++i)
      CHECK(applied[i + 2].data() == "cmd" + std::to_string(i));
  }
}

TEST_CASE("appends leave before the leader persists, acks only after", "[replication]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  REQUIRE(c.node(1).Propose("x").ok());
  auto rd = c.node(1).GetReady();
  CHECK(rd.entries.size() == 1);
  REQUIRE(rd.messages.size() == 2);
  for (auto& m : rd.messages)
    CHECK(m.type() == raftpb::MSG_APPEND);
  c.node(1).Advance(rd);
  REQUIRE(c.node(2).Step(rd.messages[0].to() == 2 ? rd.messages[0] : rd.messages[1]).ok());
  auto frd = c.node(2).GetReady();
  CHECK(frd.messages.empty());
  REQUIRE(frd.persisted_messages.size() == 1);
  CHECK(frd.persisted_messages[0].type() == raftpb::MSG_APPEND_RESP);
}

TEST_CASE("the leader's own copy counts only once persisted", "[replication]") {
  Cluster c(1);
  REQUIRE(c.Elect(1));
  Index idx = 0;
  REQUIRE(c.node(1).Propose("x", &idx).ok());
  auto rd = c.node(1).GetReady();
  CHECK(rd.committed_entries.empty());
  c.storage(1).Save(nullptr, rd.entries, nullptr);
  c.node(1).Advance(rd);
  CHECK(c.node(1).GetStatus().commit == idx);
}

TEST_CASE("a follower that was cut off catches up", "[replication]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  c.Isolate(3);
  for (int i = 0; i < 50; ++i)
    c.Propose(1, "v" + std::to_string(i));
  c.Heal();
  c.TickAll(3);
  CHECK(c.storage(3).LastIndex() == c.storage(1).LastIndex());
  CHECK(c.at(3).applied.size() == c.at(1).applied.size());
}

TEST_CASE("fast back-tracking fixes a long divergent log in few round trips", "[replication]") {
  Cluster c(3, [](Config& cfg) { cfg.check_quorum = false; });
  // Node 3 holds 100 entries of term 2 that nobody else has; node 1 leads at term 5 with a
  // log of term 1 and 4 entries.
  c.SetLog(1, 4, std::vector<Term>(50, 1));
  c.SetLog(2, 4, std::vector<Term>(50, 1));
  std::vector<Term> divergent(10, 1);
  divergent.resize(110, 2);
  c.SetLog(3, 2, divergent);
  REQUIRE(c.Elect(1));
  size_t rejections = 0;
  for (auto& m : c.sent)
    rejections += m.type() == raftpb::MSG_APPEND_RESP && m.reject();
  CHECK(rejections <= 2);
  c.TickAll(2);
  CHECK(Terms(c.storage(3)) == Terms(c.storage(1)));
}

TEST_CASE("at most max_inflight_msgs appends are outstanding to a silent follower",
          "[replication]") {
  Cluster c(3, [](Config& cfg) {
    cfg.max_inflight_msgs = 4;
    cfg.max_size_per_msg = 1;  // one entry per append
  });
  REQUIRE(c.Elect(1));
  c.SetDropFilter([](const raftpb::Message& m) { return m.from() == 3; });  // 3's acks vanish
  c.sent.clear();
  for (int i = 0; i < 20; ++i)
    c.Propose(1, "p");
  size_t to3 = 0;
  for (auto& m : c.sent) {
    to3 += m.type() == raftpb::MSG_APPEND && m.to() == 3 && m.entries_size() > 0;
  }
  CHECK(to3 == 4);
  // Node 2 keeps the leader committing meanwhile.
  CHECK(c.node(1).GetStatus().commit == c.node(1).GetStatus().last_index);
}

TEST_CASE("lost appends are recovered after a heartbeat", "[replication]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  bool drop = true;
  c.SetDropFilter([&](const raftpb::Message& m) {
    return drop && m.type() == raftpb::MSG_APPEND && m.to() == 3;
  });
  c.Propose(1, "a");
  c.Propose(1, "b");
  c.Propose(1, "c");
  drop = false;
  CHECK(c.storage(3).LastIndex() < c.storage(1).LastIndex());
  c.TickAll(3);
  CHECK(Terms(c.storage(3)) == Terms(c.storage(1)));
}

TEST_CASE("malformed messages are refused and change nothing", "[replication][validation]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  const auto before = c.node(2).GetStatus();
  raftpb::Message m;
  m.set_type(raftpb::MSG_APPEND);
  m.set_from(1);
  m.set_to(2);
  m.set_term(before.term + 5);
  m.set_index(before.last_index);
  m.set_log_term(before.term);
  auto* e = m.add_entries();
  e->set_index(before.last_index + 2);  // a gap
  e->set_term(before.term);
  auto st = c.node(2).Step(m);
  CHECK(st.code() == ErrorCode::kInvalidArgument);
  CHECK(st.message() == "malformed raft message from node 1: entries are not contiguous at " +
                            std::to_string(before.last_index + 1));

  e->set_index(before.last_index + 1);
  e->set_type(raftpb::ENTRY_CONF_CHANGE);
  e->set_data("\xff\xff\xff");
  CHECK(c.node(2).Step(m).message().find("does not parse") != std::string::npos);

  raftpb::Message wrong = m;
  wrong.clear_entries();
  wrong.set_to(7);
  CHECK(c.node(2).Step(wrong).message() ==
        "malformed raft message from node 1: addressed to node 7, not 2");
  raftpb::Message unknown;
  unknown.set_type(static_cast<raftpb::MessageType>(99));
  unknown.set_from(1);
  unknown.set_to(2);
  unknown.set_term(1);
  CHECK_FALSE(c.node(2).Step(unknown).ok());

  const auto after = c.node(2).GetStatus();
  CHECK(after.term == before.term);
  CHECK(after.last_index == before.last_index);
  CHECK(after.lead == before.lead);
}

// Each of these once threw out of Step (a broken log or progress invariant) or broke the
// node's invariants; the fuzz target fuzz/raft_message.cc found them.
TEST_CASE("messages no honest peer sends are refused, not trusted", "[replication][validation]") {
  Cluster c(3);
  c.AddEmptyNode(4);
  REQUIRE(c.Elect(1));
  c.Propose(1, "a");
  const auto follower = c.node(2).GetStatus();
  auto message = [&](raftpb::MessageType type, NodeId from, NodeId to) {
    raftpb::Message m;
    m.set_type(type);
    m.set_from(from);
    m.set_to(to);
    m.set_term(follower.term);
    return m;
  };
  auto refused = [&](NodeId id, const raftpb::Message& m) {
    const auto before = c.node(id).GetStatus();
    const Status st = c.node(id).Step(m);
    const auto after = c.node(id).GetStatus();
    CHECK(after.term == before.term);
    CHECK(after.commit == before.commit);
    CHECK(after.last_index == before.last_index);
    return st.code() == ErrorCode::kInvalidArgument ? st.message() : "accepted";
  };

  auto heartbeat = message(raftpb::MSG_HEARTBEAT, 1, 2);
  heartbeat.set_commit(follower.last_index + 1);
  CHECK(refused(2, heartbeat) == "malformed raft message from node 1: heartbeat commits index " +
                                     std::to_string(follower.last_index + 1) +
                                     " beyond our last, " + std::to_string(follower.last_index));

  // An acknowledgement of more than the leader has (node 2 was told of entries by someone
  // claiming to lead) would send the leader looking for entries it never had.
  auto ack = message(raftpb::MSG_APPEND_RESP, 2, 1);
  ack.set_index(follower.last_index + 2);
  CHECK(refused(1, ack).find("acknowledges index") != std::string::npos);

  auto snapshot = message(raftpb::MSG_SNAPSHOT, 1, 4);
  snapshot.mutable_snapshot()->set_index(follower.last_index);
  snapshot.mutable_snapshot()->set_term(follower.term + 1);
  *snapshot.mutable_snapshot()->mutable_conf_state() = MakeConfState({1, 2, 3});
  snapshot.set_snapshot_size(1);
  snapshot.set_snapshot_chunk("x");
  CHECK(refused(4, snapshot).find("snapshot of term") != std::string::npos);
  snapshot.mutable_snapshot()->set_term(follower.term);
  snapshot.mutable_snapshot()->mutable_conf_state()->add_learners(1);
  CHECK(refused(4, snapshot) ==
        "malformed raft message from node 1: snapshot configuration: "
        "node 1 is both voter and learner");

  raftpb::ConfChange cc;
  cc.mutable_result()->add_voters(3);
  cc.mutable_result()->add_voters(1);
  auto append = message(raftpb::MSG_APPEND, 1, 2);
  append.set_index(follower.last_index);
  append.set_log_term(follower.term);
  auto* e = append.add_entries();
  e->set_index(follower.last_index + 1);
  e->set_term(follower.term);
  e->set_type(raftpb::ENTRY_CONF_CHANGE);
  e->set_data(cc.SerializeAsString());
  CHECK(refused(2, append).find("members not sorted or repeated") != std::string::npos);
}
