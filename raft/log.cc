#include "raft/log.h"

#include <algorithm>
#include <string>

namespace skep::raft {
namespace {

[[noreturn]] void Broken(const std::string& what) {
  throw std::logic_error("raft log invariant broken: " + what);
}

}  // namespace

RaftLog::RaftLog(const Storage* storage, Index applied) : storage_(storage) {
  unstable_offset_ = storage_->LastIndex() + 1;
  const Index snap = storage_->SnapshotMeta().index();
  committed_ = std::max<Index>(storage_->HardState().commit(), snap);
  if (committed_ > storage_->LastIndex()) {
    Broken("commit index " + std::to_string(committed_) + " beyond last index " +
           std::to_string(storage_->LastIndex()));
  }
  applied_ = std::clamp(applied, snap, committed_);
}

Index RaftLog::FirstIndex() const {
  if (unstable_snapshot_) return unstable_snapshot_->metadata().index() + 1;
  return storage_->FirstIndex();
}

Index RaftLog::LastIndex() const {
  if (!unstable_.empty()) return unstable_offset_ + unstable_.size() - 1;
  if (unstable_snapshot_) return unstable_snapshot_->metadata().index();
  return storage_->LastIndex();
}

Term RaftLog::LastTerm() const {
  auto t = TermAt(LastIndex());
  if (!t) Broken("no term for the last index " + std::to_string(LastIndex()));
  return *t;
}

std::optional<Term> RaftLog::UnstableTerm(Index i) const {
  if (i >= unstable_offset_ && i < unstable_offset_ + unstable_.size()) {
    return unstable_[i - unstable_offset_].term();
  }
  if (unstable_snapshot_ && i == unstable_snapshot_->metadata().index()) {
    return unstable_snapshot_->metadata().term();
  }
  return std::nullopt;
}

std::optional<Term> RaftLog::TermAt(Index i) const {
  if (i + 1 < FirstIndex() || i > LastIndex()) return std::nullopt;
  if (auto t = UnstableTerm(i)) return t;
  if (unstable_snapshot_) return std::nullopt;  // storage predates the snapshot
  return storage_->TermAt(i);
}

bool RaftLog::MatchTerm(Index i, Term t) const {
  auto term = TermAt(i);
  return term && *term == t;
}

bool RaftLog::IsUpToDate(Index last, Term term) const {
  const Term our = LastTerm();
  return term > our || (term == our && last >= LastIndex());
}

bool RaftLog::Entries(Index lo, Index hi, uint64_t max_bytes,
                      std::vector<raftpb::Entry>* out) const {
  hi = std::min(hi, LastIndex() + 1);
  if (lo >= hi) return true;
  if (lo < FirstIndex()) return false;
  uint64_t bytes = 0;
  if (lo < unstable_offset_) {
    const size_t before = out->size();
    if (!storage_->Entries(lo, std::min(hi, unstable_offset_), max_bytes, out)) return false;
    for (size_t k = before; k < out->size(); ++k)
      bytes += EntrySize((*out)[k]);
    const Index next = lo + (out->size() - before);
    if (next < std::min(hi, unstable_offset_)) return true;  // size limit reached in storage
    lo = next;
  }
  for (Index i = std::max(lo, unstable_offset_); i < hi; ++i) {
    const auto& e = unstable_[i - unstable_offset_];
    bytes += EntrySize(e);
    if (!out->empty() && bytes > max_bytes) break;
    out->push_back(e);
  }
  return true;
}

Index RaftLog::FindConflict(
    const google::protobuf::RepeatedPtrField<raftpb::Entry>& entries) const {
  for (const auto& e : entries) {
    if (!MatchTerm(e.index(), e.term())) return e.index();
  }
  return 0;
}

Index RaftLog::FindConflictByTerm(Index index, Term term) const {
  for (; index > 0; --index) {
    auto t = TermAt(index);
    if (!t || *t <= term) break;
  }
  return index;
}

void RaftLog::Append(std::vector<raftpb::Entry> entries) {
  if (entries.empty()) return;
  const Index after = entries.front().index();
  if (after <= committed_) {
    Broken("append at " + std::to_string(after) + " would truncate committed entries up to " +
           std::to_string(committed_));
  }
  if (after > LastIndex() + 1) Broken("append at " + std::to_string(after) + " leaves a gap");
  if (after == unstable_offset_ + unstable_.size()) {
    // the common case: extend the tail
  } else if (after <= unstable_offset_) {
    // Replaces the tail and part of the stable log; storage truncates it when persisted.
    unstable_offset_ = after;
    unstable_.clear();
  } else {
    unstable_.resize(after - unstable_offset_);
  }
  for (auto& e : entries)
    unstable_.push_back(std::move(e));
}

void RaftLog::CommitTo(Index index) {
  if (index <= committed_) return;  // never decreases
  if (index > LastIndex()) {
    Broken("commit to " + std::to_string(index) + " beyond last index " +
           std::to_string(LastIndex()));
  }
  committed_ = index;
}

void RaftLog::AppliedTo(Index index) {
  if (index <= applied_) return;
  if (index > committed_) Broken("applied " + std::to_string(index) + " > committed");
  applied_ = index;
}

void RaftLog::Restore(std::shared_ptr<const raftpb::Snapshot> snapshot) {
  const Index idx = snapshot->metadata().index();
  committed_ = idx;
  applied_ = idx;  // the state machine is replaced by the snapshot, in this very Ready
  unstable_.clear();
  unstable_offset_ = idx + 1;
  unstable_snapshot_ = std::move(snapshot);
}

void RaftLog::StableTo(Index i, Term t) {
  auto term = UnstableTerm(i);
  // If the entry changed since the Ready was taken, it is persisted with the next Ready.
  if (!term || *term != t || i < unstable_offset_) return;
  unstable_.erase(unstable_.begin(), unstable_.begin() + (i + 1 - unstable_offset_));
  unstable_offset_ = i + 1;
}

void RaftLog::StableSnapTo(Index i) {
  if (unstable_snapshot_ && unstable_snapshot_->metadata().index() == i) unstable_snapshot_.reset();
}

Index RaftLog::StableLastIndex() const {
  // While a snapshot waits to be persisted, the stored tail may be a divergent log about to be
  // replaced: nothing is known to be durable and in agreement until the snapshot is.
  if (unstable_snapshot_) return 0;
  return unstable_offset_ - 1;
}

bool RaftLog::HasNextCommittedEntries() const {
  return committed_ > applied_ && applied_ + 1 >= FirstIndex();
}

std::vector<raftpb::Entry> RaftLog::NextCommittedEntries(uint64_t max_bytes) const {
  std::vector<raftpb::Entry> out;
  if (!HasNextCommittedEntries()) return out;
  if (!Entries(applied_ + 1, committed_ + 1, max_bytes, &out)) {
    Broken("committed entries after " + std::to_string(applied_) + " were compacted");
  }
  return out;
}

}  // namespace skep::raft
