// Lifeguard's local health awareness (memberlist's awareness.go): a member that keeps missing
// acks or nacks, or finds itself suspected, is more likely slow itself than surrounded by
// failures, so it stretches its own probe intervals and timeouts instead of accusing others.
#pragma once

#include <cstdint>

namespace skep::gossip {

class Awareness {
 public:
  // Invariant: 0 <= score() < max_multiplier (at least 1).
  explicit Awareness(int max_multiplier);

  // Raises the score on bad signs (failed probe, missed nack, refuting a suspicion about us)
  // and lowers it on a successful probe, clamped to the range.
  void ApplyDelta(int delta);

  int score() const { return score_; }
  int64_t ScaleTimeout(int64_t ms) const { return ms * (score_ + 1); }

 private:
  int max_;
  int score_ = 0;
};

}  // namespace skep::gossip
