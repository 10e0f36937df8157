#include <catch2/catch.hpp>

#include "tests/raft/harness.h"

using namespace skep::raft;
using namespace skep::raft::testing;

TEST_CASE("leadership moves to an up-to-date follower", "[transfer]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  const Term t = c.node(1).GetStatus().term;
  REQUIRE(c.node(1).TransferLeadership(2).ok());
  c.Stabilize();
  CHECK(c.Leader() == 2);
  CHECK(c.node(2).GetStatus().term == t + 1);
  CHECK(c.node(1).GetStatus().lead == 2);
}

TEST_CASE("leadership moves to a lagging follower once it catches up", "[transfer]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  c.Isolate(3);
  for (int i = 0; i < 10; ++i)
    c.Propose(1, "v");
  c.Heal();
  REQUIRE(c.node(1).TransferLeadership(3).ok());
  c.Stabilize();
  CHECK(c.Leader() == 3);
  CHECK(c.storage(3).LastIndex() >= c.storage(1).LastIndex());
}

TEST_CASE("proposals pause during a transfer, which gives up after a timeout", "[transfer]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  c.Isolate(3);
  c.Propose(1, "v");
  REQUIRE(c.node(1).TransferLeadership(3).ok());
  auto st = c.node(1).Propose("blocked");
  CHECK(st.code() == ErrorCode::kTransferInProgress);
  CHECK(st.message() == "leadership is moving to node 3");
  c.Tick(1, 12);
  CHECK(c.Leader() == 1);
  CHECK(c.node(1).Propose("after").ok());
}

TEST_CASE("transfers only go to voters", "[transfer]") {
  Cluster c(3);
  REQUIRE(c.Elect(1));
  CHECK(c.node(1).TransferLeadership(9).code() == ErrorCode::kInvalidArgument);
  CHECK(c.node(1).TransferLeadership(1).code() == ErrorCode::kInvalidArgument);
  CHECK(c.node(2).TransferLeadership(3).code() == ErrorCode::kNotLeader);
}
