#include "overlay/gossip/suspicion.h"

#include <algorithm>
#include <cmath>

namespace skep::gossip {

int64_t SuspicionMinTimeoutMs(int suspicion_mult, size_t n, int64_t probe_interval_ms) {
  double node_scale = std::max(1.0, std::log10(std::max<double>(1.0, static_cast<double>(n))));
  // Computed in milliseconds and floored, like memberlist's Duration arithmetic.
  return static_cast<int64_t>(std::floor(suspicion_mult * node_scale * probe_interval_ms));
}

int64_t SuspicionTimeoutMs(int64_t min_ms, int64_t max_ms, int confirmations, int expected) {
  if (expected < 1) return min_ms;
  double frac = std::log(confirmations + 1.0) / std::log(expected + 1.0);
  double raw = static_cast<double>(max_ms) - frac * static_cast<double>(max_ms - min_ms);
  return std::max(min_ms, static_cast<int64_t>(std::floor(raw)));
}

int ExpectedConfirmations(int suspicion_mult, size_t n) {
  int k = suspicion_mult - 2;
  if (n < 2 || static_cast<int64_t>(n) - 2 < k) return 0;
  return std::max(0, k);
}

Suspicion::Suspicion(std::string accuser, int expected, int64_t min_ms, int64_t max_ms,
                     int64_t start_ms)
    : expected_(expected), min_ms_(min_ms), max_ms_(max_ms), start_ms_(start_ms) {
  seen_.insert(std::move(accuser));
}

bool Suspicion::Confirm(const std::string& from) {
  if (confirmations_ >= expected_) return false;
  if (!seen_.insert(from).second) return false;
  ++confirmations_;
  return true;
}

int64_t Suspicion::DeadlineMs() const {
  return start_ms_ + SuspicionTimeoutMs(min_ms_, max_ms_, confirmations_, expected_);
}

}  // namespace skep::gossip
