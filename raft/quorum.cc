#include "raft/quorum.h"

#include <algorithm>
#include <functional>

namespace skep::raft {

Index MajorityIndex(std::vector<Index> acked) {
  if (acked.empty()) return 0;
  // Sorted in descending order, the value at position quorum-1 is held by at least a quorum.
  const size_t q = QuorumSize(acked.size());
  std::nth_element(acked.begin(), acked.begin() + (q - 1), acked.end(), std::greater<>());
  return acked[q - 1];
}

VoteResult TallyVotes(size_t voters, size_t granted, size_t rejected) {
  if (voters == 0) return VoteResult::kLost;
  const size_t q = QuorumSize(voters);
  if (granted >= q) return VoteResult::kWon;
  if (voters - rejected < q) return VoteResult::kLost;
  return VoteResult::kPending;
}

}  // namespace skep::raft
