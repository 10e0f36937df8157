#include "daemon/executor/logfile.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <stdexcept>

namespace skep::executor {

namespace fs = std::filesystem;

namespace {

constexpr char kLogName[] = "log";
constexpr char kLoggerKey[] = "skep-logger";

std::string Errno(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

int64_t WallNanos() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Rotated files, oldest first: log.N .. log.1.
std::vector<std::string> RotatedFiles(const std::string& dir) {
  std::vector<std::pair<int, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("log.", 0) != 0) continue;
    const std::string n = name.substr(4);
    if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos) continue;
    found.emplace_back(std::stoi(n), e.path().string());
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& f : found)
    out.push_back(std::move(f.second));
  return out;
}

// Splits complete lines off `buf` and decodes them; a torn or damaged line is skipped.
void TakeRecords(std::string* buf, std::vector<LogRecord>* out) {
  size_t start = 0;
  for (;;) {
    const size_t nl = buf->find('\n', start);
    if (nl == std::string::npos) break;
    if (auto r = DecodeLogRecord(std::string_view(*buf).substr(start, nl - start))) {
      out->push_back(std::move(*r));
    }
    start = nl + 1;
  }
  buf->erase(0, start);
}

}  // namespace

std::string EncodeLogRecord(const LogRecord& r) {
  std::string s = std::to_string(r.time_ns);
  s += ' ';
  s += r.stream == LogStream::kStderr ? 'e' : 'o';
  s += r.partial ? 'p' : 'f';
  s += ' ';
  s += r.data;
  s += '\n';
  return s;
}

std::optional<LogRecord> DecodeLogRecord(std::string_view line) {
  const size_t sp = line.find(' ');
  if (sp == 0 || sp == std::string_view::npos || line.size() < sp + 4 || line[sp + 3] != ' ') {
    return std::nullopt;
  }
  LogRecord r;
  for (char c : line.substr(0, sp)) {
    if (c < '0' || c > '9') return std::nullopt;
    r.time_ns = r.time_ns * 10 + (c - '0');
  }
  const char stream = line[sp + 1], kind = line[sp + 2];
  if ((stream != 'o' && stream != 'e') || (kind != 'f' && kind != 'p')) return std::nullopt;
  r.stream = stream == 'e' ? LogStream::kStderr : LogStream::kStdout;
  r.partial = kind == 'p';
  r.data = std::string(line.substr(sp + 4));
  return r;
}

// ---- writer -----------------------------------------------------------------------------------

LogWriter::LogWriter(std::string dir, LogFileOptions options)
    : dir_(std::move(dir)), options_(options) {
  if (options_.max_files < 1) options_.max_files = 1;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  Open();
}

LogWriter::~LogWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void LogWriter::Open() {
  const std::string path = dir_ + "/" + kLogName;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd_ < 0) throw std::runtime_error(Errno("cannot open " + path));
  struct stat st {};
  size_ = ::fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

void LogWriter::Rotate() {
  ::close(fd_);
  fd_ = -1;
  const std::string base = dir_ + "/" + kLogName;
  if (options_.max_files == 1) {
    ::unlink(base.c_str());
  } else {
    for (int i = options_.max_files - 1; i >= 1; --i) {
      const std::string from = i == 1 ? base : base + "." + std::to_string(i - 1);
      const std::string to = base + "." + std::to_string(i);
      ::rename(from.c_str(), to.c_str());  // a missing one is fine
    }
  }
  Open();
}

void LogWriter::Append(const std::vector<LogRecord>& records) {
  std::string batch;
  auto flush = [&] {
    size_t off = 0;
    while (off < batch.size()) {
      const ssize_t n = ::write(fd_, batch.data() + off, batch.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error(Errno("cannot write " + dir_ + "/" + kLogName));
      }
      off += static_cast<size_t>(n);
    }
    size_ += batch.size();
    batch.clear();
  };
  for (const auto& r : records) {
    const std::string line = EncodeLogRecord(r);
    if (size_ + batch.size() + line.size() > options_.max_size && size_ + batch.size() > 0) {
      flush();
      Rotate();
    }
    batch += line;
  }
  flush();
}

// ---- reader -----------------------------------------------------------------------------------

LogReader::LogReader(std::string dir) : dir_(std::move(dir)) {}

LogReader::~LogReader() {
  if (fd_ >= 0) ::close(fd_);
}

void LogReader::Drain(std::vector<LogRecord>* out) {
  if (fd_ < 0) return;
  char buf[64 << 10];
  std::vector<LogRecord> got;
  for (;;) {
    const ssize_t n = ::read(fd_, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    partial_.append(buf, static_cast<size_t>(n));
    TakeRecords(&partial_, &got);
  }
  for (auto& r : got) {
    if (r.time_ns >= since_ns_) out->push_back(std::move(r));
  }
}

std::vector<LogRecord> LogReader::ReadExisting(int64_t tail, int64_t since_ns) {
  since_ns_ = since_ns;
  // `log` first: if it rotates while the older files are read, it is not read twice.
  const std::string path = dir_ + "/" + kLogName;
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd_ >= 0 && ::fstat(fd_, &st) == 0) inode_ = st.st_ino;
  std::deque<LogRecord> kept;
  auto keep = [&](std::vector<LogRecord>& rs) {
    for (auto& r : rs) {
      if (tail == 0) break;
      kept.push_back(std::move(r));
      if (tail > 0 && kept.size() > static_cast<size_t>(tail)) kept.pop_front();
    }
  };
  for (const auto& f : RotatedFiles(dir_)) {
    int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat fst {};
    if (::fstat(fd, &fst) == 0 && fd_ >= 0 && fst.st_ino == inode_) {
      ::close(fd);
      continue;
    }
    std::string buf, chunk(64 << 10, '\0');
    std::vector<LogRecord> got;
    for (;;) {
      const ssize_t n = ::read(fd, chunk.data(), chunk.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      buf.append(chunk.data(), static_cast<size_t>(n));
      TakeRecords(&buf, &got);
      std::erase_if(got, [&](const LogRecord& r) { return r.time_ns < since_ns; });
      keep(got);
      got.clear();
    }
    ::close(fd);
  }
  std::vector<LogRecord> current;
  Drain(&current);
  keep(current);
  return {std::make_move_iterator(kept.begin()), std::make_move_iterator(kept.end())};
}

std::vector<LogRecord> LogReader::ReadNew() {
  std::vector<LogRecord> out;
  Drain(&out);
  const std::string path = dir_ + "/" + kLogName;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || (fd_ >= 0 && st.st_ino == inode_)) return out;
  // Rotated (or created): the old file is complete once it has a new name, so finish it first.
  Drain(&out);
  if (fd_ >= 0) ::close(fd_);
  partial_.clear();
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ >= 0 && ::fstat(fd_, &st) == 0) inode_ = st.st_ino;
  Drain(&out);
  return out;
}

// ---- the shim's logger ------------------------------------------------------------------------

std::string ShimLoggerUri(const std::string& binary, const std::string& dir,
                          const LogFileOptions& options) {
  auto escape = [](const std::string& s) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
      if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 15];
      }
    }
    return out;
  };
  return "binary://" + escape(binary) + "?" + kLoggerKey + "=" + escape(dir) +
         "&max-size=" + std::to_string(options.max_size) +
         "&max-files=" + std::to_string(options.max_files);
}

bool IsShimLogger(int argc, char** argv, std::map<std::string, std::string>* args) {
  if (argc < 3 || (argc - 1) % 2 != 0 || std::getenv("CONTAINER_ID") == nullptr) return false;
  std::map<std::string, std::string> a;
  for (int i = 1; i + 1 < argc; i += 2)
    a[argv[i]] = argv[i + 1];
  if (!a.count(kLoggerKey)) return false;
  *args = std::move(a);
  return true;
}

namespace {

// One of the container's streams: bytes read but not yet a complete line.
struct Pipe {
  int fd;
  LogStream stream;
  std::string pending;
  bool open = true;
};

void Split(Pipe& p, int64_t now, bool final, std::vector<LogRecord>* out) {
  size_t start = 0;
  for (;;) {
    const size_t nl = p.pending.find('\n', start);
    const size_t end = nl == std::string::npos ? p.pending.size() : nl;
    if (end - start >= kMaxLine) {
      out->push_back({now, p.stream, true, p.pending.substr(start, kMaxLine)});
      start += kMaxLine;
      continue;
    }
    if (nl == std::string::npos) break;
    out->push_back({now, p.stream, false, p.pending.substr(start, nl - start)});
    start = nl + 1;
  }
  p.pending.erase(0, start);
  if (final && !p.pending.empty()) {
    out->push_back({now, p.stream, true, std::move(p.pending)});
    p.pending.clear();
  }
}

// Reads what `p` has; false once it is closed (or, when draining, empty for now).
bool ReadPipe(Pipe& p, std::vector<LogRecord>* out) {
  char buf[64 << 10];
  const ssize_t n = ::read(p.fd, buf, sizeof(buf));
  if (n < 0 && (errno == EINTR)) return true;
  if (n <= 0) {
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) p.open = false;
    return false;
  }
  p.pending.append(buf, static_cast<size_t>(n));
  Split(p, WallNanos(), false, out);
  return true;
}

}  // namespace

int RunShimLogger(const std::map<std::string, std::string>& args) {
  LogFileOptions options;
  try {
    if (auto it = args.find("max-size"); it != args.end())
      options.max_size = std::stoull(it->second);
    if (auto it = args.find("max-files"); it != args.end())
      options.max_files = std::stoi(it->second);
  } catch (const std::exception&) {
  }
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  const int sfd = signalfd(-1, &mask, SFD_CLOEXEC);

  std::optional<LogWriter> writer;
  try {
    writer.emplace(args.at(kLoggerKey), options);
  } catch (const std::exception& e) {
    // Keep reading, so that the container does not block on a full pipe; nothing is kept.
    std::fprintf(stderr, "skep logger: %s\n", e.what());
  }
  ::close(5);  // ready

  Pipe pipes[2] = {{3, LogStream::kStdout, {}}, {4, LogStream::kStderr, {}}};
  auto write = [&](std::vector<LogRecord>& records) {
    if (records.empty() || !writer) return;
    try {
      writer->Append(records);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "skep logger: %s\n", e.what());
    }
    records.clear();
  };
  std::vector<LogRecord> records;
  bool terminating = false;
  while ((pipes[0].open || pipes[1].open) && !terminating) {
    pollfd fds[3] = {
        {pipes[0].open ? 3 : -1, POLLIN, 0}, {pipes[1].open ? 4 : -1, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) ReadPipe(pipes[i], &records);
    }
    if (fds[2].revents & POLLIN) terminating = true;
    write(records);
  }
  // Asked to go (the task is being deleted) or both pipes closed: keep what is still buffered.
  for (auto& p : pipes) {
    if (p.open) {
      ::fcntl(p.fd, F_SETFL, ::fcntl(p.fd, F_GETFL) | O_NONBLOCK);
      while (ReadPipe(p, &records)) {
      }
    }
    Split(p, WallNanos(), true, &records);
  }
  write(records);
  return 0;
}

}  // namespace skep::executor
