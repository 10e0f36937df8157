// What the leader knows about each follower's log, and how much it may send it.
// The flow control follows the Raft thesis §10.2 (pipelining, batching) in the style of etcd's
// progress tracker: a follower is probed one message at a time until its log matches, then
// replicated to optimistically with a bounded window of appends in flight.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "raft/types.h"

namespace skep::raftpb {
class Snapshot;
}

namespace skep::raft {

// A ring of the last index of each append in flight to one follower.
// Invariant: the indices are increasing from oldest to newest.
class Inflights {
 public:
  explicit Inflights(size_t capacity) : buffer_(capacity) {}

  bool Full() const { return count_ == buffer_.size(); }
  size_t Count() const { return count_; }
  size_t Capacity() const { return buffer_.size(); }
  void Add(Index last);
  // Frees every append whose last index is <= `index` (they were acknowledged).
  void FreeLE(Index index);
  void FreeFirst();
  void Reset() { start_ = count_ = 0; }

 private:
  std::vector<Index> buffer_;
  size_t start_ = 0;
  size_t count_ = 0;
};

// A snapshot being streamed to a follower in chunks.
struct SnapshotTransfer {
  std::shared_ptr<const raftpb::Snapshot> snapshot;
  uint64_t sent = 0;   // bytes handed to the transport
  uint64_t acked = 0;  // bytes the follower says it holds
  int idle_ticks = 0;  // ticks since `acked` last moved; a stall triggers a resend
};

class Progress {
 public:
  enum class State { kProbe, kReplicate, kSnapshot };

  Progress(Index next, size_t max_inflight) : next(next), inflights(max_inflight) {}

  // Invariant: match < next.
  Index match = 0;
  Index next = 1;
  State state = State::kProbe;
  // kProbe: an append is out and we wait for its answer before sending another.
  bool probe_sent = false;
  // kSnapshot: the index of the snapshot being sent; appends wait until it is installed.
  Index pending_snapshot = 0;
  std::unique_ptr<SnapshotTransfer> transfer;
  // Heard from since the last check-quorum round.
  bool recent_active = false;
  // The newest read-index round this follower confirmed (see Raft::ReadIndex).
  uint64_t read_ack = 0;
  Inflights inflights;

  void BecomeProbe();
  void BecomeReplicate();
  void BecomeSnapshot(Index snapshot_index);

  // An ack of `index` arrived; false when it told us nothing new.
  bool MaybeUpdate(Index index);
  // A rejection of the append after `rejected`, with the follower's hint of where the logs may
  // match. False when the rejection is stale (it answers an append we already moved past).
  bool MaybeDecrTo(Index rejected, Index match_hint);
  // Records that entries up to `last` were sent (count == 0: an empty append).
  void OnEntriesSent(size_t count, Index last);
  // Whether the leader must hold further appends back.
  bool IsPaused() const;

  std::string ToString() const;
};

const char* ToString(Progress::State s);

}  // namespace skep::raft
