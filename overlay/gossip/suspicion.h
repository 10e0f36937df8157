// Suspicion timeouts of the SWIM failure detector with Lifeguard's dynamic suspicion
// (memberlist's suspicion.go and util.go): pure functions plus a small value that tracks the
// independent confirmations of one suspicion.
//
// A suspect is declared dead when its timer fires. The timer starts at `max` and shrinks
// logarithmically towards `min` as other members independently confirm the suspicion, so a
// truly failed node is declared dead quickly while a lone suspicion (often caused by our own
// slow processing or a lossy link) leaves the accused plenty of time to refute.
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

namespace skep::gossip {

// The minimum suspicion timeout for a cluster of `n` members: it grows with log10(n) because
// a refutation needs about log(n) gossip rounds to reach everyone. The node scale is at least
// 1 (as in memberlist) so that tiny clusters do not get a zero timeout.
int64_t SuspicionMinTimeoutMs(int suspicion_mult, size_t n, int64_t probe_interval_ms);

// The total timeout (from the start of the suspicion) after `confirmations` independent
// confirmations out of `expected`: max - (max-min) * log(k+1) / log(expected+1), never below
// `min`. With no confirmations expected the timeout is `min`.
int64_t SuspicionTimeoutMs(int64_t min_ms, int64_t max_ms, int confirmations, int expected);

// The number of independent confirmations a suspicion waits for: suspicion_mult - 2, or 0 when
// the cluster has too few other members to supply them (the accuser and the accused do not
// count).
int ExpectedConfirmations(int suspicion_mult, size_t n);

// One member's suspicion of another. Invariant: confirmations() <= expected, and the accuser
// never counts as a confirmer (its own suspicion may be gossiped back to us).
class Suspicion {
 public:
  Suspicion(std::string accuser, int expected, int64_t min_ms, int64_t max_ms, int64_t start_ms);

  // Records that `from` also suspects the member. Returns true when this is a new independent
  // confirmation that shortened the timeout (so it is worth re-gossiping).
  bool Confirm(const std::string& from);

  int64_t DeadlineMs() const;
  bool Fired(int64_t now_ms) const { return now_ms >= DeadlineMs(); }
  int confirmations() const { return confirmations_; }
  int64_t start_ms() const { return start_ms_; }

 private:
  int expected_;
  int64_t min_ms_;
  int64_t max_ms_;
  int64_t start_ms_;
  int confirmations_ = 0;
  std::set<std::string> seen_;  // the accuser and every confirmer
};

}  // namespace skep::gossip
