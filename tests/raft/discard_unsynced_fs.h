// A RocksDB file system for crash tests: it tracks how much of every file it writes has been
// synced, can fail every write from a chosen point on (the moment of the crash), and afterwards
// throws away what was not synced, keeping a random part of the unsynced tail as a torn write.
#pragma once

#include <rocksdb/file_system.h>

#include <map>
#include <mutex>
#include <random>
#include <string>

namespace skep::raft::testing {

class DiscardUnsyncedFs : public rocksdb::FileSystemWrapper {
 public:
  DiscardUnsyncedFs();
  const char* Name() const override { return "DiscardUnsyncedFs"; }

  // Lets `n` more appends or syncs through, then fails every one after: the process died.
  void CrashAfter(int64_t n);
  bool crashed() const;
  // After the database is closed: truncates each file to what was synced plus a random part
  // of the rest (a torn write), and deletes files never synced. Then the crash is over.
  void DropUnsynced(std::mt19937_64& rng);

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                                      const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& dst,
                               const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* dbg) override;

  // Called by the tracked files.
  bool Allow();
  void Appended(const std::string& f, uint64_t n);
  void Synced(const std::string& f);
  void Truncated(const std::string& f, uint64_t size);

 private:
  struct FileState {
    uint64_t size = 0;
    uint64_t synced = 0;
    bool ever_synced = false;
  };
  rocksdb::IOStatus Wrap(const std::string& f, uint64_t initial, rocksdb::IOStatus s,
                         std::unique_ptr<rocksdb::FSWritableFile>* r);

  mutable std::mutex mu_;
  std::map<std::string, FileState> files_;
  int64_t budget_ = -1;  // -1: no crash planned
  bool crashed_ = false;
};

}  // namespace skep::raft::testing
