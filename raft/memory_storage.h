// Storage held in memory: for the simulator, unit tests and the in-memory benchmark.
#pragma once

#include <mutex>

#include "raft/storage.h"

namespace skep::raft {

class MemoryStorage final : public Storage {
 public:
  MemoryStorage();
  // A founding member's storage: the bootstrap entry (see BootstrapEntry), committed.
  explicit MemoryStorage(const raftpb::ConfState& conf);

  raftpb::HardState HardState() const override;
  raftpb::SnapshotMetadata SnapshotMeta() const override;
  std::shared_ptr<const raftpb::Snapshot> Snapshot() const override;
  Index FirstIndex() const override;
  Index LastIndex() const override;
  std::optional<Term> TermAt(Index i) const override;
  bool Entries(Index lo, Index hi, uint64_t max_bytes,
               std::vector<raftpb::Entry>* out) const override;
  void Save(const raftpb::HardState* hard_state, const std::vector<raftpb::Entry>& entries,
            const raftpb::Snapshot* snapshot) override;
  void CreateSnapshot(Index index, const raftpb::ConfState& conf, std::string data,
                      Index compact_to) override;

 private:
  void AppendLocked(const std::vector<raftpb::Entry>& entries);
  Index FirstLocked() const { return compacted_index_ + 1; }
  Index LastLocked() const { return compacted_index_ + entries_.size(); }

  mutable std::mutex mu_;
  raftpb::HardState hard_state_;
  std::shared_ptr<const raftpb::Snapshot> snapshot_;
  // The last entry dropped from the log. Invariant: compacted_index_ <= snapshot index.
  Index compacted_index_ = 0;
  Term compacted_term_ = 0;
  // entries_[k] has index compacted_index_ + 1 + k.
  std::vector<raftpb::Entry> entries_;
};

}  // namespace skep::raft
