#include <catch2/catch.hpp>

#include "raft/quorum.h"

using namespace skep::raft;

TEST_CASE("quorum size is a strict majority", "[quorum]") {
  CHECK(QuorumSize(1) == 1);
  CHECK(QuorumSize(2) == 2);
  CHECK(QuorumSize(3) == 2);
  CHECK(QuorumSize(4) == 3);
  CHECK(QuorumSize(5) == 3);
  CHECK(QuorumSize(7) == 4);
}

TEST_CASE("majority index is the highest index held by a majority", "[quorum]") {
  CHECK(MajorityIndex({}) == 0);
  CHECK(MajorityIndex({5}) == 5);
  CHECK(MajorityIndex({5, 3}) == 3);
  CHECK(MajorityIndex({5, 3, 1}) == 3);
  CHECK(MajorityIndex({1, 5, 3}) == 3);
  CHECK(MajorityIndex({9, 9, 1, 1}) == 1);
  CHECK(MajorityIndex({9, 9, 9, 1}) == 9);
  CHECK(MajorityIndex({7, 2, 8, 4, 6}) == 6);
}

TEST_CASE("votes are won, lost or pending", "[quorum]") {
  CHECK(TallyVotes(3, 2, 0) == VoteResult::kWon);
  CHECK(TallyVotes(3, 1, 0) == VoteResult::kPending);
  CHECK(TallyVotes(3, 1, 1) == VoteResult::kPending);
  CHECK(TallyVotes(3, 1, 2) == VoteResult::kLost);
  CHECK(TallyVotes(4, 2, 1) == VoteResult::kPending);
  CHECK(TallyVotes(4, 2, 2) == VoteResult::kLost);
  CHECK(TallyVotes(1, 1, 0) == VoteResult::kWon);
  CHECK(TallyVotes(0, 0, 0) == VoteResult::kLost);
}
