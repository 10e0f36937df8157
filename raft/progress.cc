#include "raft/progress.h"

#include <algorithm>
#include <sstream>

namespace skep::raft {

void Inflights::Add(Index last) {
  // Callers check Full() first; adding to a full window is a logic error.
  if (Full()) throw std::logic_error("raft: inflights window overflow");
  buffer_[(start_ + count_) % buffer_.size()] = last;
  ++count_;
}

void Inflights::FreeLE(Index index) {
  while (count_ > 0 && buffer_[start_] <= index)
    FreeFirst();
}

void Inflights::FreeFirst() {
  if (count_ == 0) return;
  start_ = (start_ + 1) % buffer_.size();
  --count_;
  if (count_ == 0) start_ = 0;
}

void Progress::BecomeProbe() {
  // Coming back from a snapshot, the follower holds at least the snapshot.
  if (state == State::kSnapshot) {
    next = std::max(match + 1, pending_snapshot + 1);
  } else {
    next = match + 1;
  }
  state = State::kProbe;
  probe_sent = false;
  pending_snapshot = 0;
  transfer.reset();
  inflights.Reset();
}

void Progress::BecomeReplicate() {
  state = State::kReplicate;
  next = match + 1;
  probe_sent = false;
  pending_snapshot = 0;
  transfer.reset();
  inflights.Reset();
}

void Progress::BecomeSnapshot(Index snapshot_index) {
  state = State::kSnapshot;
  probe_sent = false;
  pending_snapshot = snapshot_index;
  inflights.Reset();
}

bool Progress::MaybeUpdate(Index index) {
  bool updated = false;
  if (match < index) {
    match = index;
    updated = true;
    probe_sent = false;
  }
  next = std::max(next, index + 1);
  return updated;
}

bool Progress::MaybeDecrTo(Index rejected, Index match_hint) {
  if (state == State::kReplicate) {
    // Appends are pipelined: a rejection of something at or below match is an old answer.
    if (rejected <= match) return false;
    next = match + 1;
    return true;
  }
  // Probing sends one append at a time, so only the answer to the latest one counts.
  if (next - 1 != rejected) return false;
  next = std::max(std::min(rejected, match_hint + 1), match + 1);
  probe_sent = false;
  return true;
}

void Progress::OnEntriesSent(size_t count, Index last) {
  switch (state) {
    case State::kReplicate:
      if (count > 0) {
        next = last + 1;
        inflights.Add(last);
      }
      break;
    case State::kProbe:
      probe_sent = true;
      break;
    case State::kSnapshot:
      throw std::logic_error("raft: sending entries to a follower that waits for a snapshot");
  }
}

bool Progress::IsPaused() const {
  switch (state) {
    case State::kProbe:
      return probe_sent;
    case State::kReplicate:
      return inflights.Full();
    case State::kSnapshot:
      return true;
  }
  return true;
}

const char* ToString(Progress::State s) {
  switch (s) {
    case Progress::State::kProbe:
      return "probe";
    case Progress::State::kReplicate:
      return "replicate";
    case Progress::State::kSnapshot:
      return "snapshot";
  }
  return "?";
}

std::string Progress::ToString() const {
  std::ostringstream os;
  os << raft::ToString(state) << " match=" << match << " next=" << next;
  if (state == State::kSnapshot) os << " snapshot=" << pending_snapshot;
  if (inflights.Count() > 0) os << " inflight=" << inflights.Count();
  return os.str();
}

}  // namespace skep::raft
