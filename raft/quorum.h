// Majority quorum math (Raft thesis §3.4 and §3.6): pure functions with their own tests.
#pragma once

#include <cstddef>
#include <vector>

#include "raft/types.h"

namespace skep::raft {

// The number of voters that make a majority of `voters`.
inline size_t QuorumSize(size_t voters) {
  return voters / 2 + 1;
}

// The largest index acknowledged by a majority, given each voter's acknowledged index.
// With no voters nothing can be committed, so the answer is 0.
Index MajorityIndex(std::vector<Index> acked);

enum class VoteResult { kPending, kWon, kLost };

// The outcome of an election among `voters` once `granted` voted yes and `rejected` voted no.
VoteResult TallyVotes(size_t voters, size_t granted, size_t rejected);

}  // namespace skep::raft
