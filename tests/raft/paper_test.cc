// The scenarios of the Raft paper (Ongaro & Ousterhout, 2014), figures 7 and 8.
#include <catch2/catch.hpp>

#include "tests/raft/figure8.h"
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
      std::vector<Term> expect = {1};  // the bootstrap entry
      expect.insert(expect.end(), leader_log.begin(), leader_log.end());
      expect.push_back(8);  // the new leader's empty entry
      CHECK(Terms(c.storage(2)) == expect);
      CHECK(Terms(c.storage(1)) == expect);
    }
  }
}

// Figure 8: a leader may not commit an entry of an earlier term by counting replicas.
TEST_CASE("figure 8: an old-term entry on a majority is not committed", "[paper]") {
  const Figure8Outcome out = RunFigure8();
  CHECK(out.violations.empty());
  CHECK(out.replicated_to_majority);
  // X is on four of five nodes but is of an earlier term: counting replicas must not commit it.
  CHECK(out.commit_in_c == out.commit_before_x);
  // S5 then overwrote X everywhere, which is safe exactly because X was never committed.
  CHECK(out.x_overwritten);
  CHECK_FALSE(out.x_applied);
}
