#include "raft/memory_storage.h"

#include <algorithm>

#include "raft/conf.h"

namespace skep::raft {

MemoryStorage::MemoryStorage() : snapshot_(std::make_shared<raftpb::Snapshot>()) {}

MemoryStorage::MemoryStorage(const raftpb::ConfState& conf) : MemoryStorage() {
  raftpb::HardState hs;
  hs.set_term(1);
  hs.set_commit(1);
  Save(&hs, {BootstrapEntry(conf)}, nullptr);
}

raftpb::HardState MemoryStorage::HardState() const {
  std::lock_guard lock(mu_);
  return hard_state_;
}

raftpb::SnapshotMetadata MemoryStorage::SnapshotMeta() const {
  std::lock_guard lock(mu_);
  return snapshot_->metadata();
}

std::shared_ptr<const raftpb::Snapshot> MemoryStorage::Snapshot() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

Index MemoryStorage::FirstIndex() const {
  std::lock_guard lock(mu_);
  return FirstLocked();
}

Index MemoryStorage::LastIndex() const {
  std::lock_guard lock(mu_);
  return LastLocked();
}

std::optional<Term> MemoryStorage::TermAt(Index i) const {
  std::lock_guard lock(mu_);
  if (i == compacted_index_) return compacted_term_;
  if (i < compacted_index_ || i > LastLocked()) return std::nullopt;
  return entries_[i - FirstLocked()].term();
}

bool MemoryStorage::Entries(Index lo, Index hi, uint64_t max_bytes,
                            std::vector<raftpb::Entry>* out) const {
  std::lock_guard lock(mu_);
  if (lo < FirstLocked()) return false;
  hi = std::min(hi, LastLocked() + 1);
  uint64_t bytes = 0;
  for (Index i = lo; i < hi; ++i) {
    const auto& e = entries_[i - FirstLocked()];
    bytes += EntrySize(e);
    if (i > lo && bytes > max_bytes) break;
    out->push_back(e);
  }
  return true;
}

void MemoryStorage::AppendLocked(const std::vector<raftpb::Entry>& entries) {
  for (const auto& e : entries) {
    if (e.index() <= compacted_index_) continue;  // already covered by the snapshot
    if (e.index() > LastLocked() + 1) {
      throw std::logic_error("raft: append leaves a gap before index " + std::to_string(e.index()));
    }
    entries_.resize(e.index() - FirstLocked());  // truncate any conflicting suffix
    entries_.push_back(e);
  }
}

void MemoryStorage::Save(const raftpb::HardState* hard_state,
                         const std::vector<raftpb::Entry>& entries,
                         const raftpb::Snapshot* snapshot) {
  std::lock_guard lock(mu_);
  if (snapshot != nullptr && snapshot->metadata().index() > snapshot_->metadata().index()) {
    const Index idx = snapshot->metadata().index();
    const Term term = snapshot->metadata().term();
    // Keep the entries after the snapshot if the log agrees with it there (Raft §7).
    std::vector<raftpb::Entry> keep;
    if (idx >= FirstLocked() && idx <= LastLocked() &&
        entries_[idx - FirstLocked()].term() == term) {
      keep.assign(entries_.begin() + (idx + 1 - FirstLocked()), entries_.end());
    }
    snapshot_ = std::make_shared<raftpb::Snapshot>(*snapshot);
    compacted_index_ = idx;
    compacted_term_ = term;
    entries_ = std::move(keep);
  }
  AppendLocked(entries);
  if (hard_state != nullptr) hard_state_ = *hard_state;
}

void MemoryStorage::CreateSnapshot(Index index, const raftpb::ConfState& conf, std::string data,
                                   Index compact_to) {
  std::lock_guard lock(mu_);
  if (index <= snapshot_->metadata().index()) return;  // not newer than the one we have
  if (index < FirstLocked() || index > LastLocked()) {
    throw std::logic_error("raft: snapshot at " + std::to_string(index) + " outside the log");
  }
  auto snap = std::make_shared<raftpb::Snapshot>();
  snap->mutable_metadata()->set_index(index);
  snap->mutable_metadata()->set_term(entries_[index - FirstLocked()].term());
  *snap->mutable_metadata()->mutable_conf_state() = conf;
  snap->set_data(std::move(data));
  snapshot_ = std::move(snap);

  compact_to = std::min(compact_to, index);
  if (compact_to <= compacted_index_) return;
  const size_t drop = compact_to - compacted_index_;
  compacted_term_ = entries_[drop - 1].term();
  compacted_index_ = compact_to;
  entries_.erase(entries_.begin(), entries_.begin() + drop);
}

}  // namespace skep::raft
