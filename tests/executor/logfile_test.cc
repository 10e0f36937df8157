#include "daemon/executor/logfile.h"

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace skep::executor;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/skep-logfile-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

LogRecord Line(int64_t t, std::string data, LogStream s = LogStream::kStdout) {
  return {t, s, false, std::move(data)};
}

std::vector<std::string> Data(const std::vector<LogRecord>& rs) {
  std::vector<std::string> out;
  for (const auto& r : rs)
    out.push_back(r.data);
  return out;
}

}  // namespace

TEST_CASE("a log record survives encoding, spaces and all, and damage is refused") {
  LogRecord r{1764590000123456789, LogStream::kStderr, true, "two  words and a \t tab"};
  auto d = DecodeLogRecord(EncodeLogRecord(r).substr(0, EncodeLogRecord(r).size() - 1));
  REQUIRE(d);
  CHECK(d->time_ns == r.time_ns);
  CHECK(d->stream == LogStream::kStderr);
  CHECK(d->partial);
  CHECK(d->data == r.data);
  CHECK(DecodeLogRecord("12x of garbage") == std::nullopt);
  CHECK(DecodeLogRecord("123 ox data") == std::nullopt);
  CHECK(DecodeLogRecord("") == std::nullopt);
  auto empty = DecodeLogRecord("5 of ");
  REQUIRE(empty);
  CHECK(empty->data.empty());
}

TEST_CASE("the writer rotates into log.1 .. and the reader returns every kept record in order") {
  TempDir dir;
  LogFileOptions opt;
  opt.max_size = 200;
  opt.max_files = 3;
  {
    LogWriter w(dir.path, opt);
    for (int i = 0; i < 40; ++i)
      w.Append({Line(1000 + i, "line " + std::to_string(i))});
  }
  CHECK(fs::exists(dir.path / "log"));
  CHECK(fs::exists(dir.path / "log.1"));
  CHECK(fs::exists(dir.path / "log.2"));
  CHECK_FALSE(fs::exists(dir.path / "log.3"));
  for (const char* f : {"log", "log.1", "log.2"})
    CHECK(fs::file_size(dir.path / f) <= opt.max_size);

  LogReader all(dir.path);
  const auto rs = all.ReadExisting(-1, 0);
  REQUIRE(rs.size() > 10);
  CHECK(rs.back().data == "line 39");
  for (size_t i = 1; i < rs.size(); ++i)
    CHECK(rs[i].time_ns ==
          rs[i - 1].time_ns + 1);  // consecutive: nothing lost within the kept files

  LogReader tail(dir.path);
  CHECK(Data(tail.ReadExisting(2, 0)) == std::vector<std::string>{"line 38", "line 39"});
  LogReader since(dir.path);
  CHECK(Data(since.ReadExisting(-1, 1038)) == std::vector<std::string>{"line 38", "line 39"});
  LogReader none(dir.path);
  CHECK(none.ReadExisting(0, 0).empty());
}

TEST_CASE("a reader following a log sees appends across a rotation, each record once") {
  TempDir dir;
  LogFileOptions opt;
  opt.max_size = 120;
  LogReader reader(dir.path);
  CHECK(reader.ReadExisting(-1, 0).empty());  // nothing written yet, not even the file
  LogWriter w(dir.path, opt);
  std::vector<std::string> seen;
  for (int i = 0; i < 30; ++i) {
    w.Append({Line(i + 1, "n" + std::to_string(i))});
    if (i % 4 == 3) {
      for (auto& s : Data(reader.ReadNew()))
        seen.push_back(s);
    }
  }
  for (auto& s : Data(reader.ReadNew()))
    seen.push_back(s);
  REQUIRE(seen.size() == 30);
  for (int i = 0; i < 30; ++i)
    CHECK(seen[i] == "n" + std::to_string(i));
}

TEST_CASE("a torn last line is not returned until it is complete") {
  TempDir dir;
  {
    std::ofstream f(dir.path / "log");
    f << EncodeLogRecord(Line(1, "whole")) << "2 of tor";
  }
  LogReader r(dir.path);
  CHECK(Data(r.ReadExisting(-1, 0)) == std::vector<std::string>{"whole"});
  {
    std::ofstream f(dir.path / "log", std::ios::app);
    f << "n\n";
  }
  CHECK(Data(r.ReadNew()) == std::vector<std::string>{"torn"});
}

TEST_CASE("the shim logger keeps both streams, splits long lines, and keeps a last partial line") {
  TempDir dir;
  int out[2], err[2], ready[2];
  REQUIRE(::pipe(out) == 0);
  REQUIRE(::pipe(err) == 0);
  REQUIRE(::pipe(ready) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // As containerd's shim starts it: fd 3 stdout, 4 stderr, 5 the ready pipe.
    ::dup2(out[0], 3);
    ::dup2(err[0], 4);
    ::dup2(ready[1], 5);
    for (int fd : {out[0], out[1], err[0], err[1], ready[0], ready[1]})
      if (fd > 5) ::close(fd);
    ::_exit(RunShimLogger({{"skep-logger", dir.path.string()}}));
  }
  ::close(out[0]);
  ::close(err[0]);
  ::close(ready[1]);
  char b;
  CHECK(::read(ready[0], &b, 1) == 0);  // the logger closed its end: it is ready
  const std::string big(kMaxLine + 10, 'x');
  auto put = [](int fd, const std::string& s) {
    REQUIRE(::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size()));
  };
  put(out[1], "hello\nwor");
  put(err[1], "oops\n");
  put(out[1], "ld\n" + big + "\nno newline");
  ::close(out[1]);
  ::close(err[1]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);

  LogReader r(dir.path);
  const auto rs = r.ReadExisting(-1, 0);
  std::vector<std::string> outs, errs;
  for (const auto& rec : rs)
    (rec.stream == LogStream::kStdout ? outs : errs).push_back(rec.data);
  REQUIRE(outs.size() == 5);
  CHECK(outs[0] == "hello");
  CHECK(outs[1] == "world");
  CHECK(outs[2] == std::string(kMaxLine, 'x'));
  CHECK(outs[3] == std::string(10, 'x'));
  CHECK(outs[4] == "no newline");
  CHECK(errs == std::vector<std::string>{"oops"});
  CHECK(rs.back().partial);
}

TEST_CASE("the logger's URI carries the directory and options as containerd's shim passes them") {
  const std::string uri = ShimLoggerUri("/usr/bin/skepd", "/var/lib/skep/tasks/a b", {});
  CHECK(uri.rfind("binary:///usr/bin/skepd?skep-logger=/var/lib/skep/tasks/a%20b&", 0) == 0);
  // The shim gives the query as key/value pairs in any order.
  std::vector<std::string> argv_s = {"/usr/bin/skepd", "max-files", "3", "skep-logger", "/d",
                                     "max-size",       "100"};
  std::vector<char*> argv;
  for (auto& s : argv_s)
    argv.push_back(s.data());
  std::map<std::string, std::string> args;
  ::setenv("CONTAINER_ID", "x", 1);
  REQUIRE(IsShimLogger(static_cast<int>(argv.size()), argv.data(), &args));
  CHECK(args.at("skep-logger") == "/d");
  CHECK(args.at("max-size") == "100");
  ::unsetenv("CONTAINER_ID");
  CHECK_FALSE(IsShimLogger(static_cast<int>(argv.size()), argv.data(), &args));
  std::vector<char*> daemon = {argv_s[0].data()};
  ::setenv("CONTAINER_ID", "x", 1);
  CHECK_FALSE(IsShimLogger(1, daemon.data(), &args));
  ::unsetenv("CONTAINER_ID");
}
