// The scenarios of the Raft paper (Ongaro & Ousterhout, 2014), figures 7 and 8.
#include <catch2/catch.hpp>

#include "tests/raft/harness.h"

using namespace skep::raft;
using namespace skep::raft::testing;

// Figure 7: whatever a follower's log looks like, the leader for term 8 makes it match its own.
TEST_CASE("figure 7: the leader brings every follower's log in line with its own", "[paper]") {
  const std::vector<Term> leader_log = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
  const std::vector<std::pair<const char*, std::vector<Term>>> followers = {
      {"a", {1, 1, 1, 4, 4, 5, 5, 6, 6}},
      {"b", {1, 1, 1, 4}},
      {"c", {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6}},
      {"d", {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7}},
      {"e", {1, 1, 1, 4, 4, 4, 4}},
      {"f", {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3}},
  };
  for (const auto& [name, log] : followers) {
    DYNAMIC_SECTION("follower (" << name << ")") {
      Cluster c(3, [](Config& cfg) { cfg.check_quorum = false; });
      c.SetLog(1, 7, leader_log);
      c.SetLog(2, 7, log);
      c.SetLog(3, 7, {});  // a voter with an empty log, so that node 1 can win
      REQUIRE(c.Elect(1));
      c.TickAll(3);
      std::vector<Term> expect = leader_log;
      expect.push_back(8);  // the new leader's empty entry
      CHECK(Terms(c.storage(2)) == expect);
      CHECK(Terms(c.storage(1)) == expect);
    }
  }
}

namespace {

// Campaigns until elected: a candidate whose voters already voted in its next term needs a
// second round at the term after.
bool ElectEventually(Cluster& c, NodeId id) {
  for (int round = 0; round < 5; ++round) {
    if (c.Elect(id)) return true;
  }
  return false;
}

}  // namespace

// Figure 8: a leader may not commit an entry of an earlier term by counting replicas.
TEST_CASE("figure 8: an old-term entry on a majority is not committed", "[paper]") {
  Cluster c(5, [](Config& cfg) {
    cfg.pre_vote = false;
    cfg.check_quorum = false;
    cfg.max_size_per_msg = 1;  // one entry per append, so replication can be stopped between
  });
  REQUIRE(c.Elect(1));
  c.TickAll(2);
  const Index base = c.node(1).GetStatus().commit;  // everyone holds the term-1 empty entry

  // (a) S1 leads; its entry X reaches S2 only.
  for (NodeId id : {3, 4, 5}) c.Isolate(id);
  const Index x = c.Propose(1, "X");
  const Term tx = c.node(1).GetStatus().term;
  CHECK(c.storage(2).LastIndex() == x);

  // (b) S1 crashes; S5 wins with the votes of S3 and S4 and writes an entry of its own term at
  // the same index, which nobody else receives.
  c.Crash(1);
  c.Heal();
  c.SetDropFilter([](const raftpb::Message& m) {
    return m.from() == 5 && m.type() == raftpb::MSG_APPEND;
  });
  REQUIRE(ElectEventually(c, 5));
  REQUIRE(*c.storage(5).TermAt(x) == c.node(5).GetStatus().term);

  // (c) S5 crashes; S1 restarts and wins with S2, S3, S4. It replicates X (one entry per
  // append) while its own new empty entry never leaves: X sits on a majority.
  c.Crash(5);
  c.Heal();
  c.Restart(1);
  c.SetDropFilter([&](const raftpb::Message& m) {
    if (m.from() != 1 || m.type() != raftpb::MSG_APPEND) return false;
    bool beyond = false;
    for (const auto& e : m.entries()) beyond = beyond || e.index() > x;
    // Appends beyond X are let through only to nodes that lack X, which reject them and so
    // are sent X next.
    return beyond && c.storage(m.to()).LastIndex() >= x;
  });
  REQUIRE(ElectEventually(c, 1));
  c.TickAll(3);
  for (NodeId id : {2, 3, 4}) CHECK(*c.storage(id).TermAt(x) == tx);
  // X is on four of five nodes but is of an earlier term: counting replicas must not commit it.
  CHECK(c.node(1).GetStatus().commit == base);

  // (d) S1 crashes; S5 restarts and wins with S2, S3, S4 (its last term is higher) and
  // overwrites X everywhere. This is safe exactly because X was never committed.
  c.Crash(1);
  c.Heal();
  c.Restart(5);
  REQUIRE(ElectEventually(c, 5));
  c.TickAll(3);
  for (NodeId id : {2, 3, 4, 5}) {
    CHECK(*c.storage(id).TermAt(x) != tx);
    for (const auto& e : c.at(id).applied) CHECK(e.data() != "X");
  }
}
