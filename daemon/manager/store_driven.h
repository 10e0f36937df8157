// A leader-only component that works in passes: each pass reads the store and returns the
// changes to make, which go out in one asynchronous proposal. A pass runs when the component
// starts, after every applied batch of changes (the store is the truth: a pass looks at what
// is, not at what happened), and at the time a pass asked to be woken (a restart delay).
// Passes never overlap a proposal in flight (a large pass's changes go out in parts, in order);
// one that failed is made again from the store.
// Everything runs on the component's strand; nothing blocks.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "daemon/manager/context.h"

namespace skep::manager {

struct PassResult {
  api::StoreBatch batch;
  int64_t wake_at = 0;  // unix nanoseconds when a pass should run again by time alone; 0: never
};

// A pass's changes go out at most this many to a proposal: a service of 100,000 replicas is not
// one raft entry of tens of megabytes that stalls the followers' heartbeats while it is sent,
// written and applied.
constexpr int kMaxActionsPerProposal = 2000;

// Writes `batch` in proposals of at most kMaxActionsPerProposal actions, each proposed once the
// one before it is applied (a plan made from one read of the store, written in order as one
// batch would be, each part checked against the versions it was made from), in `term`. `done`
// gets the first failure, and the parts after it are dropped; or the last part's success. Once
// `*live` is false (the component stopped: a new term plans afresh) no further part goes out.
void ProposeInParts(Context& ctx, api::StoreBatch batch, uint64_t term,
                    std::shared_ptr<const std::atomic<bool>> live, Done done);

// Keeps a component's passes at least twice the last one's duration apart: under a stream of
// changes (a hundred thousand tasks reporting) passes over a large store cover many batches
// each instead of taking every CPU, and a small store's passes are not delayed noticeably. On
// the component's strand.
class Pacer {
 public:
  Pacer(Strand strand, Clock& clock);
  ~Pacer();
  // Whether a pass may start now; if not, `then` runs on the strand once one may (one wait,
  // however often this is asked meanwhile).
  bool Clear(std::function<void()> then);
  // A pass that started at `start` has just ended.
  void Ran(Clock::Steady start);
  // The component stopped: no wait is left pending.
  void Reset();

 private:
  Strand strand_;
  Clock& clock_;
  Clock::Steady until_{};  // no pass before this
  std::unique_ptr<Timer> timer_;
};

// `pass(now)` runs on the component's strand with the wall-clock time in unix nanoseconds.
std::unique_ptr<LeaderComponent> MakeStoreDriven(Context& ctx, std::string name,
                                                 std::function<PassResult(int64_t now)> pass);

}  // namespace skep::manager
