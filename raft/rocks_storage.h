// The raft log, hard state and latest snapshot on disk, in RocksDB.
//
// On-disk format: one RocksDB database in the directory given to Open, and the latest snapshot
// in a file of its own beside it. Keys:
//   "v"                          format version (fixed32 little-endian, currently 2)
//   "h"                          record: HardState
//   "c"                          record: the compaction point, a SnapshotMetadata whose index
//                                and term are those of the last entry dropped from the log
//   "s"                          record: SnapshotMetadata of the latest snapshot
//   "e" + index (8 bytes, big-endian so that keys sort by index)
//                                record: Entry
// The snapshot itself (metadata and state machine data) is the file snap/<index>.snap, the
// index as 16 lower-case hex digits, holding one record: Snapshot. Every record is a 4-byte
// CRC-32C (little-endian) of the payload, then the payload, a serialized protobuf message from
// proto/raft.proto. A version 1 database (the snapshot's data under "s") is converted at open.
//
// Writes and crashes:
//  - A snapshot's file is written under a temporary name, synced, renamed into place and its
//    directory synced before the database refers to it; files of older snapshots are deleted
//    after. Open deletes every file in snap/ but the recorded snapshot's (what a crash left).
//  - Save() is one WriteBatch written with sync: the snapshot's metadata and the compaction
//    point it implies, the deletion of any log suffix the new entries replace, the entries, and
//    the hard state. RocksDB's write-ahead log makes the batch atomic: after a crash either all
//    of it is on disk or none of it, and once Save() returns all of it survives.
//  - CreateSnapshot() writes the file without holding up Save() (it may run on another thread
//    at the same time), then one synced batch: the metadata, the new compaction point and the
//    deletion of the compacted entries.
//  - The database is opened with WALRecoveryMode::kTolerateCorruptedTailRecords: a record torn
//    by a crash at the very end of the write-ahead log (a write that never returned) is dropped;
//    a damaged record anywhere else refuses the open instead of silently losing what follows.
//
// Open() reads back and verifies every record: checksums, contiguous indices, terms that never
// decrease, a hard state whose commit index lies within the log, and a snapshot file that is
// present, intact and the one recorded. Anything wrong is a
// StorageError naming the directory and the index; nothing is repaired or skipped. Reads that
// later find a damaged record throw the same way. The class is safe for concurrent use.
#pragma once

#include <memory>
#include <string>

#include "raft/storage.h"

namespace rocksdb {
class Env;
}

namespace skep::raft {

struct RocksStorageOptions {
  // For tests: a RocksDB environment that can lose unsynced writes. Null: the default one.
  std::shared_ptr<rocksdb::Env> env;
  // Entries kept in memory after a write, so that a leader sending recent entries to a
  // follower that is slightly behind does not read them back from disk.
  size_t entry_cache_bytes = 8 << 20;
};

class RocksStorage final : public Storage {
 public:
  // Opens (creating if needed) the log in `dir`. Throws StorageError.
  static std::unique_ptr<RocksStorage> Open(const std::string& dir,
                                            const RocksStorageOptions& options = {});
  ~RocksStorage() override;

  // A founding member's first write: the bootstrap entry, committed (see BootstrapEntry).
  // Only valid on an empty log.
  void Bootstrap(const raftpb::ConfState& conf);
  // True when nothing was ever written.
  bool Empty() const;
  const std::string& dir() const;

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

  class Impl;

 private:
  explicit RocksStorage(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace skep::raft
