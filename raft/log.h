// The log as the core sees it: the stable prefix held by Storage, followed by the unstable tail
// (entries and possibly a snapshot) that the driver has not persisted yet.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "raft/storage.h"

namespace skep::raft {

class RaftLog {
 public:
  // Restores committed and applied from storage; `applied` is what the state machine holds.
  RaftLog(const Storage* storage, Index applied);

  // Invariant: applied() <= committed() <= LastIndex(), and FirstIndex()-1 <= applied().
  Index committed() const { return committed_; }
  Index applied() const { return applied_; }
  Index FirstIndex() const;
  Index LastIndex() const;
  Term LastTerm() const;
  // The term of entry i; nullopt if i was compacted away or is beyond the log.
  std::optional<Term> TermAt(Index i) const;
  bool MatchTerm(Index i, Term t) const;
  // Whether a log ending at (last, term) is at least as up to date as this one (§5.4.1).
  bool IsUpToDate(Index last, Term term) const;

  // Entries [lo, min(hi, LastIndex()+1)): at least one if any, then as many as fit in
  // max_bytes. False when lo has been compacted away.
  bool Entries(Index lo, Index hi, uint64_t max_bytes, std::vector<raftpb::Entry>* out) const;
  // The first index among `entries` whose term differs from ours (or that we lack); 0 if none.
  Index FindConflict(const google::protobuf::RepeatedPtrField<raftpb::Entry>& entries) const;
  // The largest index <= `index` whose term is <= `term`: a guess at where two logs that
  // disagree at `index` could agree, used to skip a whole term at a time when back-tracking.
  Index FindConflictByTerm(Index index, Term term) const;

  // Appends after the entry before entries[0], truncating whatever follows it.
  // Entries at or below committed() are never truncated (asserted).
  void Append(std::vector<raftpb::Entry> entries);
  void CommitTo(Index index);
  void AppliedTo(Index index);
  // Replaces the log with a snapshot received from the leader.
  void Restore(std::shared_ptr<const raftpb::Snapshot> snapshot);

  const std::vector<raftpb::Entry>& UnstableEntries() const { return unstable_; }
  const std::shared_ptr<const raftpb::Snapshot>& UnstableSnapshot() const {
    return unstable_snapshot_;
  }
  // The driver persisted entries up to (i, t) / the snapshot at i.
  void StableTo(Index i, Term t);
  void StableSnapTo(Index i);
  // The last index known to be on stable storage.
  Index StableLastIndex() const;
  bool HasNextCommittedEntries() const;
  std::vector<raftpb::Entry> NextCommittedEntries(uint64_t max_bytes) const;

 private:
  std::optional<Term> UnstableTerm(Index i) const;

  const Storage* storage_;
  // Unstable tail: unstable_[k] has index unstable_offset_ + k. A pending snapshot, if any,
  // sits just before it (unstable_offset_ == snapshot index + 1).
  std::vector<raftpb::Entry> unstable_;
  Index unstable_offset_;
  std::shared_ptr<const raftpb::Snapshot> unstable_snapshot_;
  Index committed_;
  Index applied_;
};

}  // namespace skep::raft
