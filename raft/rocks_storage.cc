#include "raft/rocks_storage.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_checksum.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>

#include "raft/conf.h"

namespace skep::raft {
namespace {

// Version 1 kept the whole snapshot under "s"; version 2 keeps its data in a file of its own.
constexpr uint32_t kFormatVersion = 2;
const char kVersionKey[] = "v";
const char kHardStateKey[] = "h";
const char kCompactedKey[] = "c";
const char kSnapshotKey[] = "s";

// CRC-32C (Castagnoli), by RocksDB's implementation: about three times boost's byte table here
// (a start checks every entry and the snapshot).
uint32_t Crc32c(const char* data, size_t n) {
  static const std::shared_ptr<rocksdb::FileChecksumGenFactory> factory =
      rocksdb::GetFileChecksumGenCrc32cFactory();
  auto gen = factory->CreateFileChecksumGenerator(rocksdb::FileChecksumGenContext());
  gen->Update(data, n);
  gen->Finalize();
  const std::string sum = gen->GetChecksum();  // 4 bytes, most significant first
  uint32_t crc = 0;
  for (unsigned char c : sum)
    crc = (crc << 8) | c;
  return crc;
}

std::string EntryKey(Index i) {
  std::string k(9, '\0');
  k[0] = 'e';
  for (int b = 0; b < 8; ++b)
    k[1 + b] = static_cast<char>((i >> (56 - 8 * b)) & 0xff);
  return k;
}

bool IsEntryKey(const rocksdb::Slice& k) {
  return k.size() == 9 && k[0] == 'e';
}

Index KeyIndex(const rocksdb::Slice& k) {
  Index i = 0;
  for (int b = 0; b < 8; ++b)
    i = (i << 8) | static_cast<unsigned char>(k[1 + b]);
  return i;
}

std::string Record(const google::protobuf::MessageLite& m) {
  std::string payload = m.SerializeAsString();
  const uint32_t crc = Crc32c(payload.data(), payload.size());
  std::string out(4, '\0');
  for (int b = 0; b < 4; ++b)
    out[b] = static_cast<char>((crc >> (8 * b)) & 0xff);
  return out + payload;
}

// False when the record is torn or damaged.
bool ParseRecord(const rocksdb::Slice& v, google::protobuf::MessageLite* m) {
  if (v.size() < 4) return false;
  uint32_t crc = 0;
  for (int b = 0; b < 4; ++b)
    crc |= static_cast<uint32_t>(static_cast<unsigned char>(v[b])) << (8 * b);
  if (Crc32c(v.data() + 4, v.size() - 4) != crc) return false;
  return m->ParseFromArray(v.data() + 4, static_cast<int>(v.size() - 4));
}

std::string VersionValue(uint32_t version) {
  std::string v(4, '\0');
  for (int b = 0; b < 4; ++b)
    v[b] = static_cast<char>((version >> (8 * b)) & 0xff);
  return v;
}

// Opening failed on damage: opens a read-only view that stops at the damage to say which
// entries are still intact.
std::string LocateDamage(rocksdb::Options o, const std::string& dir) {
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  rocksdb::DB* db = nullptr;
  if (!rocksdb::DB::OpenForReadOnly(o, dir, &db).ok()) return "the database is damaged";
  std::unique_ptr<rocksdb::DB> owner(db);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  it->SeekForPrev(EntryKey(~Index{0}));
  if (!it->Valid() || !IsEntryKey(it->key())) return "the write-ahead log is damaged";
  return "the write-ahead log is damaged after entry " + std::to_string(KeyIndex(it->key()));
}

}  // namespace

class RocksStorage::Impl {
 public:
  [[noreturn]] void Fail(const std::string& what) const {
    throw StorageError("raft log in " + dir + ": " + what);
  }
  void Check(const rocksdb::Status& s, const std::string& doing) const {
    if (!s.ok()) Fail(doing + ": " + s.ToString());
  }

  void Load();
  // Reads the snapshot the metadata under "s" names, from its file.
  std::shared_ptr<raftpb::Snapshot> LoadSnapshot(const raftpb::SnapshotMetadata& meta);
  // A version 1 database kept the snapshot's data under "s": moves it to its file.
  void Upgrade();
  // Makes the snapshot's file durable (written, synced, renamed into place, directory synced).
  // The database refers to it afterwards.
  void WriteSnapshotFile(const raftpb::Snapshot& snap);
  // Deletes the files of snapshots older than `below`, once a newer one is recorded; with
  // `all_but_below` (at open), every file but the snapshot at `below`, leftovers of writes a
  // crash interrupted included. Best effort: what stays is deleted at the next open.
  void RemoveSnapshotFiles(Index below, bool all_but_below = false);
  std::string SnapDir() const { return dir + "/snap"; }
  std::string SnapPath(Index index) const {
    char name[32];
    std::snprintf(name, sizeof name, "%016" PRIx64 ".snap", index);
    return SnapDir() + "/" + name;
  }
  rocksdb::Env* env() const { return options.env ? options.env.get() : rocksdb::Env::Default(); }
  // Reads a record; false if absent.
  bool Read(const char* key, google::protobuf::MessageLite* m, const char* what);
  void Write(rocksdb::WriteBatch* batch);

  Index FirstLocked() const { return compacted.index() + 1; }
  Index LastLocked() const { return compacted.index() + terms.size(); }
  void CacheLocked(raftpb::Entry e);
  void TruncateLocked(Index from);          // drops entries >= from
  void CompactLocked(Index to, Term term);  // drops entries <= to

  std::string dir;
  RocksStorageOptions options;
  std::unique_ptr<rocksdb::DB> db;

  std::mutex write_mu;  // one writer at a time; held across the synced write
  std::mutex file_mu;   // one snapshot file written at a time
  std::atomic<uint64_t> tmp_seq{0};
  mutable std::mutex mu;  // guards everything below
  raftpb::HardState hard_state;
  std::shared_ptr<const raftpb::Snapshot> snapshot;
  raftpb::SnapshotMetadata compacted;    // index and term of the last dropped entry
  std::deque<Term> terms;                // terms of [FirstLocked(), LastLocked()]
  std::map<Index, raftpb::Entry> cache;  // the most recent entries
  size_t cache_bytes = 0;
  // Entries below this are being deleted by a write in progress: reads of them answer
  // "compacted" rather than racing the deletion.
  Index read_floor = 0;
};

void RocksStorage::Impl::Write(rocksdb::WriteBatch* batch) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  Check(db->Write(wo, batch), "write failed");
}

bool RocksStorage::Impl::Read(const char* key, google::protobuf::MessageLite* m, const char* what) {
  std::string v;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), key, &v);
  if (s.IsNotFound()) return false;
  Check(s, std::string("cannot read the ") + what);
  if (!ParseRecord(v, m)) Fail(std::string("the ") + what + " record fails its checksum");
  return true;
}

void RocksStorage::Impl::Load() {
  Check(env()->CreateDirIfMissing(SnapDir()), "cannot create " + SnapDir());
  std::string version;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), kVersionKey, &version);
  if (s.IsNotFound()) {
    rocksdb::WriteBatch batch;
    batch.Put(kVersionKey, VersionValue(kFormatVersion));
    Write(&batch);
  } else {
    Check(s, "cannot read the format version");
    uint32_t got = 0;
    for (size_t b = 0; b < 4 && b < version.size(); ++b) {
      got |= static_cast<uint32_t>(static_cast<unsigned char>(version[b])) << (8 * b);
    }
    if (version.size() == 4 && got == 1) {
      Upgrade();
    } else if (version.size() != 4 || got != kFormatVersion) {
      Fail("unknown format version " + std::to_string(got) + " (this build reads versions 1 and " +
           std::to_string(kFormatVersion) + ")");
    }
  }
  Read(kHardStateKey, &hard_state, "hard state");
  Read(kCompactedKey, &compacted, "compaction point");
  raftpb::SnapshotMetadata meta;
  Read(kSnapshotKey, &meta, "snapshot metadata");
  snapshot = LoadSnapshot(meta);
  RemoveSnapshotFiles(meta.index(), true);
  if (snapshot->metadata().index() < compacted.index()) {
    Fail("the snapshot at index " + std::to_string(snapshot->metadata().index()) +
         " does not cover the compacted log up to " + std::to_string(compacted.index()));
  }

  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  Index expect = compacted.index() + 1;
  Term prev_term = compacted.term();
  for (it->Seek(EntryKey(0)); it->Valid() && IsEntryKey(it->key()); it->Next()) {
    const Index idx = KeyIndex(it->key());
    if (idx != expect) {
      Fail("entry " + std::to_string(expect) + " is missing (found " + std::to_string(idx) +
           " instead)");
    }
    raftpb::Entry e;
    if (!ParseRecord(it->value(), &e)) Fail("entry " + std::to_string(idx) + " fails its checksum");
    if (e.index() != idx) {
      Fail("entry " + std::to_string(idx) + " claims index " + std::to_string(e.index()));
    }
    if (e.term() < prev_term) {
      Fail("entry " + std::to_string(idx) + " has term " + std::to_string(e.term()) +
           ", lower than the term " + std::to_string(prev_term) + " before it");
    }
    prev_term = e.term();
    terms.push_back(e.term());
    // The entries after the snapshot are read again at once, to be applied: the newest stay.
    CacheLocked(std::move(e));
    ++expect;
  }
  if (!it->status().ok()) {
    Fail("cannot read past entry " + std::to_string(expect - 1) + ": " + it->status().ToString());
  }
  if (hard_state.commit() > std::max(LastLocked(), snapshot->metadata().index())) {
    Fail("the commit index " + std::to_string(hard_state.commit()) +
         " lies beyond the last entry " + std::to_string(LastLocked()));
  }
}

std::shared_ptr<raftpb::Snapshot> RocksStorage::Impl::LoadSnapshot(
    const raftpb::SnapshotMetadata& meta) {
  auto snap = std::make_shared<raftpb::Snapshot>();
  if (meta.index() == 0) return snap;
  const std::string path = SnapPath(meta.index());
  std::string data;
  rocksdb::Status s = rocksdb::ReadFileToString(env(), path, &data);
  if (s.IsNotFound() || s.IsPathNotFound()) {
    Fail("the snapshot at index " + std::to_string(meta.index()) + " is missing its file " + path);
  }
  Check(s, "cannot read the snapshot file " + path);
  if (!ParseRecord(data, snap.get())) {
    Fail("the snapshot file " + path + " fails its checksum");
  }
  if (snap->metadata().index() != meta.index() || snap->metadata().term() != meta.term()) {
    Fail("the snapshot file " + path + " holds index " + std::to_string(snap->metadata().index()) +
         " term " + std::to_string(snap->metadata().term()) + ", not the index " +
         std::to_string(meta.index()) + " term " + std::to_string(meta.term()) + " recorded");
  }
  return snap;
}

void RocksStorage::Impl::Upgrade() {
  raftpb::Snapshot old;
  Read(kSnapshotKey, &old, "snapshot");
  if (old.metadata().index() > 0) WriteSnapshotFile(old);
  rocksdb::WriteBatch batch;
  batch.Put(kSnapshotKey, Record(old.metadata()));
  batch.Put(kVersionKey, VersionValue(kFormatVersion));
  Write(&batch);
}

void RocksStorage::Impl::WriteSnapshotFile(const raftpb::Snapshot& snap) {
  std::lock_guard lock(file_mu);
  const std::string path = SnapPath(snap.metadata().index());
  const std::string tmp = path + ".tmp" + std::to_string(++tmp_seq);
  const std::string record = Record(snap);
  std::unique_ptr<rocksdb::WritableFile> f;
  Check(env()->NewWritableFile(tmp, &f, rocksdb::EnvOptions()), "cannot create " + tmp);
  Check(f->Append(record), "cannot write " + tmp);
  Check(f->Sync(), "cannot sync " + tmp);
  Check(f->Close(), "cannot close " + tmp);
  Check(env()->RenameFile(tmp, path), "cannot rename " + tmp + " to " + path);
  std::unique_ptr<rocksdb::Directory> d;
  Check(env()->NewDirectory(SnapDir(), &d), "cannot open " + SnapDir());
  Check(d->Fsync(), "cannot sync " + SnapDir());
}

void RocksStorage::Impl::RemoveSnapshotFiles(Index below, bool all_but_below) {
  std::lock_guard lock(file_mu);
  std::vector<std::string> names;
  if (!env()->GetChildren(SnapDir(), &names).ok()) return;
  for (const auto& name : names) {
    if (name == "." || name == "..") continue;
    const std::string path = SnapDir() + "/" + name;
    unsigned long long index = 0;
    char rest[8] = {};
    const bool snap_file = name.size() == 21 &&
                           std::sscanf(name.c_str(), "%16llx%7s", &index, rest) == 2 &&
                           std::string(rest) == ".snap";
    const bool remove = all_but_below ? path != SnapPath(below) : snap_file && index < below;
    if (remove) (void)env()->DeleteFile(path);
  }
}

void RocksStorage::Impl::CacheLocked(raftpb::Entry e) {
  cache_bytes += EntrySize(e);
  const Index i = e.index();
  cache[i] = std::move(e);
  while (cache_bytes > options.entry_cache_bytes && !cache.empty()) {
    cache_bytes -= EntrySize(cache.begin()->second);
    cache.erase(cache.begin());
  }
}

void RocksStorage::Impl::TruncateLocked(Index from) {
  if (from > LastLocked()) return;
  terms.resize(from - FirstLocked());
  for (auto it = cache.lower_bound(from); it != cache.end();) {
    cache_bytes -= EntrySize(it->second);
    it = cache.erase(it);
  }
}

void RocksStorage::Impl::CompactLocked(Index to, Term term) {
  while (!terms.empty() && FirstLocked() <= to) {
    terms.pop_front();
    compacted.set_index(compacted.index() + 1);
  }
  compacted.set_index(std::max<Index>(compacted.index(), to));
  compacted.set_term(term);
  while (!cache.empty() && cache.begin()->first <= to) {
    cache_bytes -= EntrySize(cache.begin()->second);
    cache.erase(cache.begin());
  }
}

// ---------------------------------------------------------------------------------------------

std::unique_ptr<RocksStorage> RocksStorage::Open(const std::string& dir,
                                                 const RocksStorageOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->options = options;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    throw StorageError("raft log in " + dir + ": cannot create the directory: " + ec.message());
  rocksdb::Options o;
  o.create_if_missing = true;
  o.paranoid_checks = true;
  // A torn record at the end of the log is a write that never returned; one anywhere else is
  // damage, and the open must fail rather than drop what follows it.
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  o.compression = rocksdb::kNoCompression;
  o.max_open_files = 256;
  o.keep_log_file_num = 4;
  if (options.env) o.env = options.env.get();
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, dir, &db);
  if (s.IsCorruption()) {
    throw StorageError("raft log in " + dir + ": cannot open: " + LocateDamage(o, dir) + " (" +
                       s.ToString() + ")");
  }
  if (!s.ok()) throw StorageError("raft log in " + dir + ": cannot open: " + s.ToString());
  impl->db.reset(db);
  impl->Load();
  return std::unique_ptr<RocksStorage>(new RocksStorage(std::move(impl)));
}

RocksStorage::RocksStorage(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RocksStorage::~RocksStorage() = default;

const std::string& RocksStorage::dir() const {
  return impl_->dir;
}

bool RocksStorage::Empty() const {
  std::lock_guard lock(impl_->mu);
  return impl_->hard_state.term() == 0 && impl_->LastLocked() == 0 &&
         impl_->snapshot->metadata().index() == 0;
}

void RocksStorage::Bootstrap(const raftpb::ConfState& conf) {
  if (!Empty()) impl_->Fail("cannot bootstrap a log that already holds state");
  raftpb::HardState hs;
  hs.set_term(1);
  hs.set_commit(1);
  Save(&hs, {BootstrapEntry(conf)}, nullptr);
}

raftpb::HardState RocksStorage::HardState() const {
  std::lock_guard lock(impl_->mu);
  return impl_->hard_state;
}

raftpb::SnapshotMetadata RocksStorage::SnapshotMeta() const {
  std::lock_guard lock(impl_->mu);
  return impl_->snapshot->metadata();
}

std::shared_ptr<const raftpb::Snapshot> RocksStorage::Snapshot() const {
  std::lock_guard lock(impl_->mu);
  return impl_->snapshot;
}

Index RocksStorage::FirstIndex() const {
  std::lock_guard lock(impl_->mu);
  return impl_->FirstLocked();
}

Index RocksStorage::LastIndex() const {
  std::lock_guard lock(impl_->mu);
  return impl_->LastLocked();
}

std::optional<Term> RocksStorage::TermAt(Index i) const {
  std::lock_guard lock(impl_->mu);
  if (i == impl_->compacted.index()) return impl_->compacted.term();
  if (i < impl_->FirstLocked() || i > impl_->LastLocked()) return std::nullopt;
  return impl_->terms[i - impl_->FirstLocked()];
}

bool RocksStorage::Entries(Index lo, Index hi, uint64_t max_bytes,
                           std::vector<raftpb::Entry>* out) const {
  std::lock_guard lock(impl_->mu);
  if (lo < std::max(impl_->FirstLocked(), impl_->read_floor)) return false;
  hi = std::min(hi, impl_->LastLocked() + 1);
  uint64_t bytes = 0;
  Index next = lo;
  auto take = [&](raftpb::Entry e) {
    bytes += EntrySize(e);
    if (next > lo && bytes > max_bytes) return false;
    out->push_back(std::move(e));
    ++next;
    return true;
  };
  // The recent tail is usually cached; older entries come from disk.
  if (next < hi && (impl_->cache.empty() || impl_->cache.begin()->first > next)) {
    const std::string upper =
        EntryKey(impl_->cache.empty() ? hi : std::min(hi, impl_->cache.begin()->first));
    rocksdb::ReadOptions ro;
    rocksdb::Slice upper_slice(upper);
    ro.iterate_upper_bound = &upper_slice;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro));
    for (it->Seek(EntryKey(next)); it->Valid(); it->Next()) {
      const Index idx = KeyIndex(it->key());
      if (idx != next) impl_->Fail("entry " + std::to_string(next) + " is missing");
      raftpb::Entry e;
      if (!ParseRecord(it->value(), &e)) {
        impl_->Fail("entry " + std::to_string(idx) + " fails its checksum");
      }
      if (!take(std::move(e))) return true;
    }
    if (!it->status().ok()) {
      impl_->Fail("cannot read entry " + std::to_string(next) + ": " + it->status().ToString());
    }
  }
  for (auto c = impl_->cache.find(next); next < hi && c != impl_->cache.end() && c->first == next;
       ++c) {
    if (!take(c->second)) return true;
  }
  if (next < hi && next == lo) impl_->Fail("entry " + std::to_string(next) + " is missing");
  return true;
}

void RocksStorage::Save(const raftpb::HardState* hard_state,
                        const std::vector<raftpb::Entry>& entries,
                        const raftpb::Snapshot* snapshot) {
  std::lock_guard writer(impl_->write_mu);
  rocksdb::WriteBatch batch;
  Index first, last;
  Term compacted_term;
  Index compacted_index;
  {
    std::lock_guard lock(impl_->mu);
    first = impl_->FirstLocked();
    last = impl_->LastLocked();
    compacted_index = impl_->compacted.index();
    compacted_term = impl_->compacted.term();
  }
  // What the log looks like after the snapshot, to place the entries.
  bool keep_after_snapshot = false;
  const bool new_snapshot =
      snapshot != nullptr && snapshot->metadata().index() > SnapshotMeta().index();
  if (new_snapshot) {
    const auto& meta = snapshot->metadata();
    keep_after_snapshot =
        meta.index() >= first && meta.index() <= last && TermAt(meta.index()) == meta.term();
    impl_->WriteSnapshotFile(*snapshot);
    batch.Put(kSnapshotKey, Record(meta));
    raftpb::SnapshotMetadata point;
    point.set_index(meta.index());
    point.set_term(meta.term());
    batch.Put(kCompactedKey, Record(point));
    const Index drop_to = keep_after_snapshot ? meta.index() : std::max(last, meta.index());
    batch.DeleteRange(EntryKey(0), EntryKey(drop_to + 1));
    compacted_index = meta.index();
    compacted_term = meta.term();
    first = compacted_index + 1;
    last = keep_after_snapshot ? last : compacted_index;
  }
  std::vector<const raftpb::Entry*> fresh;
  for (const auto& e : entries) {
    if (e.index() > compacted_index) fresh.push_back(&e);
  }
  if (!fresh.empty()) {
    const Index from = fresh.front()->index();
    if (from > last + 1) {
      throw std::logic_error("raft: append at " + std::to_string(from) + " leaves a gap after " +
                             std::to_string(last));
    }
    if (from <= last) batch.DeleteRange(EntryKey(from), EntryKey(last + 1));
    for (const auto* e : fresh)
      batch.Put(EntryKey(e->index()), Record(*e));
  }
  if (hard_state != nullptr) batch.Put(kHardStateKey, Record(*hard_state));
  if (batch.Count() == 0) return;
  if (new_snapshot) {
    std::lock_guard lock(impl_->mu);
    impl_->read_floor = std::max(impl_->read_floor, compacted_index + 1);
  }
  impl_->Write(&batch);

  std::unique_lock lock(impl_->mu);
  if (new_snapshot) {
    impl_->snapshot = std::make_shared<raftpb::Snapshot>(*snapshot);
    if (keep_after_snapshot) {
      impl_->CompactLocked(compacted_index, compacted_term);
    } else {
      impl_->terms.clear();
      impl_->cache.clear();
      impl_->cache_bytes = 0;
      impl_->compacted.set_index(compacted_index);
      impl_->compacted.set_term(compacted_term);
    }
  }
  if (!fresh.empty()) {
    impl_->TruncateLocked(fresh.front()->index());
    for (const auto* e : fresh) {
      impl_->terms.push_back(e->term());
      impl_->CacheLocked(*e);
    }
  }
  if (hard_state != nullptr) impl_->hard_state = *hard_state;
  lock.unlock();
  if (new_snapshot) impl_->RemoveSnapshotFiles(snapshot->metadata().index());
}

void RocksStorage::CreateSnapshot(Index index, const raftpb::ConfState& conf, std::string data,
                                  Index compact_to) {
  if (index <= SnapshotMeta().index()) return;  // not newer than the one we have
  const std::optional<Term> term = TermAt(index);
  if (!term) {
    if (index <= SnapshotMeta().index()) return;  // a snapshot was installed meanwhile
    throw std::logic_error("raft: snapshot at " + std::to_string(index) + " outside the log");
  }
  auto snap = std::make_shared<raftpb::Snapshot>();
  snap->mutable_metadata()->set_index(index);
  snap->mutable_metadata()->set_term(*term);
  *snap->mutable_metadata()->mutable_conf_state() = conf;
  snap->set_data(std::move(data));
  // The data, which may be large, is written without holding up Save.
  impl_->WriteSnapshotFile(*snap);

  std::unique_lock writer(impl_->write_mu);
  if (index <= SnapshotMeta().index()) {
    // A snapshot from the leader was installed meanwhile.
    writer.unlock();
    impl_->RemoveSnapshotFiles(SnapshotMeta().index());
    return;
  }
  rocksdb::WriteBatch batch;
  batch.Put(kSnapshotKey, Record(snap->metadata()));
  compact_to = std::min(compact_to, index);
  const Index old_compacted = FirstIndex() - 1;
  std::optional<Term> compact_term;
  if (compact_to > old_compacted) {
    compact_term = TermAt(compact_to);
    raftpb::SnapshotMetadata point;
    point.set_index(compact_to);
    point.set_term(*compact_term);
    batch.Put(kCompactedKey, Record(point));
    batch.DeleteRange(EntryKey(0), EntryKey(compact_to + 1));
  }
  {
    // Reads of the entries being deleted answer "compacted" from now on, and whoever then
    // sends a snapshot instead must find this one (its file is on disk already).
    std::lock_guard lock(impl_->mu);
    if (compact_term) impl_->read_floor = std::max(impl_->read_floor, compact_to + 1);
    impl_->snapshot = snap;
  }
  impl_->Write(&batch);
  if (compact_term) {
    std::lock_guard lock(impl_->mu);
    impl_->CompactLocked(compact_to, *compact_term);
  }
  writer.unlock();
  impl_->RemoveSnapshotFiles(index);
}

}  // namespace skep::raft
