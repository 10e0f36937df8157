// A task's log on its node: what the container wrote to stdout and stderr, one record per line,
// each with the time it was read, in <task dir>/log, rotated into log.1 .. log.<max_files-1>.
//
// The writer is the logging binary containerd's shim starts for the task (stdio given as
// `binary://<skepd>?skep-logger=<dir>&...`, see CONTAINERD.md): skepd itself, run by the shim with
// the container's stdout on fd 3, its stderr on fd 4 and fd 5 to close once it is ready. It
// belongs to the shim, so it outlives restarts of skepd, and it exits when the shim closes the
// pipes (the task is deleted) or sends SIGTERM, after writing what it has read.
//
// Format: each record is one line of text, `<unix time in ns> <stream><kind> <bytes>\n`, stream
// `o` (stdout) or `e` (stderr), kind `f` (a full line) or `p` (a partial one: the container
// wrote more than kMaxLine bytes without a newline, or ended without one). The bytes are the
// container's, without the newline. A record is written with one write(2), so a reader sees it
// whole or not at all; a torn last line after a crash is skipped. Rotation renames log to log.1
// (log.1 to log.2, ...) before the record that would make log exceed max_size, then starts a new
// log; a reader that had log open finishes it before it opens the new one.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace skep::executor {

enum class LogStream : uint8_t { kStdout = 1, kStderr = 2 };

struct LogRecord {
  int64_t time_ns = 0;  // wall clock when the logger read it
  LogStream stream = LogStream::kStdout;
  bool partial = false;
  std::string data;  // without the newline
};

struct LogFileOptions {
  uint64_t max_size = 10 << 20;  // bytes per file
  int max_files = 3;             // log and log.1 .. log.<max_files-1>
};

// Lines longer than this are split into partial records (Docker's limit as well).
inline constexpr size_t kMaxLine = 16 << 10;

std::string EncodeLogRecord(const LogRecord& r);
// nullopt for a line that is not a record (damaged, torn).
std::optional<LogRecord> DecodeLogRecord(std::string_view line);

// Appends records to <dir>/log and rotates it. Throws std::runtime_error when it cannot write.
class LogWriter {
 public:
  LogWriter(std::string dir, LogFileOptions options);
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;
  void Append(const std::vector<LogRecord>& records);

 private:
  void Open();
  void Rotate();
  std::string dir_;
  LogFileOptions options_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// Reads a task's log: first what is there (the last `tail` records, all for tail < 0, none
// older than since_ns), then, on each ReadNew, whatever the logger appended since, following
// rotations. Never blocks; the caller learns of appends by inotify on the directory.
class LogReader {
 public:
  explicit LogReader(std::string dir);
  ~LogReader();
  LogReader(const LogReader&) = delete;
  LogReader& operator=(const LogReader&) = delete;

  std::vector<LogRecord> ReadExisting(int64_t tail, int64_t since_ns);
  std::vector<LogRecord> ReadNew();

 private:
  void Drain(std::vector<LogRecord>* out);
  std::string dir_;
  int fd_ = -1;      // the `log` file last read from
  ino_t inode_ = 0;  // its inode, to notice a rotation
  std::string partial_;
  int64_t since_ns_ = 0;
};

// The stdio URI that makes containerd's shim run `binary` as the task's logger.
std::string ShimLoggerUri(const std::string& binary, const std::string& dir,
                          const LogFileOptions& options);
// Whether skepd was started by a shim as a logger; fills the arguments it was given. The shim
// passes the URI's query as key/value pairs in no particular order, with an environment of only
// CONTAINER_ID and CONTAINER_NAMESPACE.
bool IsShimLogger(int argc, char** argv, std::map<std::string, std::string>* args);
// The logger's main: returns the process's exit status.
int RunShimLogger(const std::map<std::string, std::string>& args);

}  // namespace skep::executor
