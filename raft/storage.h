// The stable part of a node's raft state: log entries, hard state and the latest snapshot.
//
// The core reads through this interface and never writes; the driver writes after each Ready
// (Save), and the state machine's owner creates snapshots and compacts the log. Reads may run
// concurrently with writes from another thread, so implementations synchronise internally.
//
// Index space: the snapshot covers everything up to and including SnapshotMeta().index(); the
// entries held are [FirstIndex(), LastIndex()]. Compaction may keep a few entries the snapshot
// also covers (so that a follower slightly behind is sent entries, not the whole snapshot):
// FirstIndex() <= SnapshotMeta().index() + 1.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "raft/types.h"
#include "skep/proto/raft.pb.h"

namespace skep::raft {

class Storage {
 public:
  virtual ~Storage() = default;

  virtual raftpb::HardState HardState() const = 0;
  virtual raftpb::SnapshotMetadata SnapshotMeta() const = 0;
  // The latest snapshot, data included (null data for the empty snapshot at index 0).
  virtual std::shared_ptr<const raftpb::Snapshot> Snapshot() const = 0;
  virtual Index FirstIndex() const = 0;
  virtual Index LastIndex() const = 0;
  // The term of entry i, for FirstIndex()-1 <= i <= LastIndex() (the last compacted entry's
  // term is kept). nullopt when i is outside that range, e.g. compacted away meanwhile.
  virtual std::optional<Term> TermAt(Index i) const = 0;
  // Appends entries [lo, hi) to `out`: the first one always, then as many as fit in max_bytes.
  // False when lo has been compacted away meanwhile. Throws StorageError on a corrupt record.
  virtual bool Entries(Index lo, Index hi, uint64_t max_bytes,
                       std::vector<raftpb::Entry>* out) const = 0;

  // Makes one Ready durable, all or nothing: the snapshot (which replaces the log it covers),
  // then the entries (which replace any conflicting suffix), then the hard state. Any of the
  // three may be absent. Returns only once the data is on stable storage.
  virtual void Save(const raftpb::HardState* hard_state, const std::vector<raftpb::Entry>& entries,
                    const raftpb::Snapshot* snapshot) = 0;
  // Records a snapshot of the state machine as of `index` (<= the applied index), whose
  // configuration was `conf`, and drops the log entries up to `compact_to` (<= index). May run
  // on another thread while Save runs; does nothing if a snapshot at `index` or later exists.
  virtual void CreateSnapshot(Index index, const raftpb::ConfState& conf, std::string data,
                              Index compact_to) = 0;
};

// Approximate size of an entry for batching limits.
inline uint64_t EntrySize(const raftpb::Entry& e) {
  return e.data().size() + 24;
}

}  // namespace skep::raft
