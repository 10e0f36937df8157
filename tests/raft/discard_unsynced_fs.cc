#include "tests/raft/discard_unsynced_fs.h"

#include <filesystem>

namespace skep::raft::testing {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

IOStatus Dead() {
  return IOStatus::IOError("simulated crash: the process is gone");
}

class TrackedFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  TrackedFile(std::unique_ptr<rocksdb::FSWritableFile> f, DiscardUnsyncedFs* fs, std::string name)
      : FSWritableFileOwnerWrapper(std::move(f)), fs_(fs), name_(std::move(name)) {}

  IOStatus Append(const Slice& data, const IOOptions& o, IODebugContext* dbg) override {
    if (!fs_->Allow()) return Dead();
    IOStatus s = target()->Append(data, o, dbg);
    if (s.ok()) fs_->Appended(name_, data.size());
    return s;
  }
  IOStatus Append(const Slice& data, const IOOptions& o, const rocksdb::DataVerificationInfo& info,
                  IODebugContext* dbg) override {
    if (!fs_->Allow()) return Dead();
    IOStatus s = target()->Append(data, o, info, dbg);
    if (s.ok()) fs_->Appended(name_, data.size());
    return s;
  }
  IOStatus PositionedAppend(const Slice&, uint64_t, const IOOptions&, IODebugContext*) override {
    return IOStatus::NotSupported("positioned appends are not tracked");
  }
  IOStatus PositionedAppend(const Slice&, uint64_t, const IOOptions&,
                            const rocksdb::DataVerificationInfo&, IODebugContext*) override {
    return IOStatus::NotSupported("positioned appends are not tracked");
  }
  IOStatus Truncate(uint64_t size, const IOOptions& o, IODebugContext* dbg) override {
    if (!fs_->Allow()) return Dead();
    IOStatus s = target()->Truncate(size, o, dbg);
    if (s.ok()) fs_->Truncated(name_, size);
    return s;
  }
  IOStatus Sync(const IOOptions& o, IODebugContext* dbg) override {
    if (!fs_->Allow()) return Dead();
    IOStatus s = target()->Sync(o, dbg);
    if (s.ok()) fs_->Synced(name_);
    return s;
  }
  IOStatus Fsync(const IOOptions& o, IODebugContext* dbg) override {
    if (!fs_->Allow()) return Dead();
    IOStatus s = target()->Fsync(o, dbg);
    if (s.ok()) fs_->Synced(name_);
    return s;
  }
  // A range sync makes no promise about what a crash keeps; count it as nothing.
  IOStatus RangeSync(uint64_t, uint64_t, const IOOptions&, IODebugContext*) override {
    return fs_->Allow() ? IOStatus::OK() : Dead();
  }

 private:
  DiscardUnsyncedFs* fs_;
  std::string name_;
};

}  // namespace

DiscardUnsyncedFs::DiscardUnsyncedFs() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}

void DiscardUnsyncedFs::CrashAfter(int64_t n) {
  std::lock_guard lock(mu_);
  budget_ = n;
}

bool DiscardUnsyncedFs::crashed() const {
  std::lock_guard lock(mu_);
  return crashed_;
}

bool DiscardUnsyncedFs::Allow() {
  std::lock_guard lock(mu_);
  if (crashed_) return false;
  if (budget_ == 0) {
    crashed_ = true;
    return false;
  }
  if (budget_ > 0) --budget_;
  return true;
}

void DiscardUnsyncedFs::Appended(const std::string& f, uint64_t n) {
  std::lock_guard lock(mu_);
  files_[f].size += n;
}

void DiscardUnsyncedFs::Synced(const std::string& f) {
  std::lock_guard lock(mu_);
  FileState& st = files_[f];
  st.synced = st.size;
  st.ever_synced = true;
}

void DiscardUnsyncedFs::Truncated(const std::string& f, uint64_t size) {
  std::lock_guard lock(mu_);
  FileState& st = files_[f];
  st.size = size;
  st.synced = std::min(st.synced, size);
}

IOStatus DiscardUnsyncedFs::Wrap(const std::string& f, uint64_t initial, IOStatus s,
                                 std::unique_ptr<rocksdb::FSWritableFile>* r) {
  if (!s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    FileState st;
    st.size = st.synced = initial;
    st.ever_synced = initial > 0;
    files_[f] = st;
  }
  *r = std::make_unique<TrackedFile>(std::move(*r), this, f);
  return s;
}

IOStatus DiscardUnsyncedFs::NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                            std::unique_ptr<rocksdb::FSWritableFile>* r,
                                            IODebugContext* dbg) {
  if (!Allow()) return Dead();
  return Wrap(f, 0, target()->NewWritableFile(f, o, r, dbg), r);
}

IOStatus DiscardUnsyncedFs::ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                               std::unique_ptr<rocksdb::FSWritableFile>* r,
                                               IODebugContext* dbg) {
  if (!Allow()) return Dead();
  std::error_code ec;
  const uint64_t size = std::filesystem::exists(f, ec) ? std::filesystem::file_size(f, ec) : 0;
  return Wrap(f, size, target()->ReopenWritableFile(f, o, r, dbg), r);
}

IOStatus DiscardUnsyncedFs::ReuseWritableFile(const std::string& f, const std::string& old,
                                              const rocksdb::FileOptions& o,
                                              std::unique_ptr<rocksdb::FSWritableFile>* r,
                                              IODebugContext* dbg) {
  if (!Allow()) return Dead();
  {
    std::lock_guard lock(mu_);
    files_.erase(old);
  }
  return Wrap(f, 0, target()->ReuseWritableFile(f, old, o, r, dbg), r);
}

IOStatus DiscardUnsyncedFs::RenameFile(const std::string& src, const std::string& dst,
                                       const IOOptions& o, IODebugContext* dbg) {
  if (!Allow()) return Dead();
  IOStatus s = target()->RenameFile(src, dst, o, dbg);
  if (s.ok()) {
    std::lock_guard lock(mu_);
    auto it = files_.find(src);
    if (it != files_.end()) {
      files_[dst] = it->second;
      files_.erase(src);
    }
  }
  return s;
}

IOStatus DiscardUnsyncedFs::DeleteFile(const std::string& f, const IOOptions& o,
                                       IODebugContext* dbg) {
  if (!Allow()) return Dead();
  IOStatus s = target()->DeleteFile(f, o, dbg);
  if (s.ok()) {
    std::lock_guard lock(mu_);
    files_.erase(f);
  }
  return s;
}

void DiscardUnsyncedFs::DropUnsynced(std::mt19937_64& rng) {
  std::lock_guard lock(mu_);
  for (const auto& [name, st] : files_) {
    std::error_code ec;
    if (!std::filesystem::exists(name, ec)) continue;
    if (!st.ever_synced) {
      std::filesystem::remove(name, ec);
      continue;
    }
    const uint64_t on_disk = std::filesystem::file_size(name, ec);
    const uint64_t unsynced = on_disk > st.synced ? on_disk - st.synced : 0;
    const uint64_t kept = unsynced ? std::uniform_int_distribution<uint64_t>(0, unsynced)(rng) : 0;
    std::filesystem::resize_file(name, st.synced + kept, ec);
  }
  files_.clear();
  budget_ = -1;
  crashed_ = false;
}

}  // namespace skep::raft::testing
