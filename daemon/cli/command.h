// A small command-line framework in Docker's manner: `skep [-H HOST] GROUP COMMAND [OPTIONS]
// ARGS`, every command with its own --help, unknown flags refused with a pointer to it.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "control.grpc.pb.h"

namespace skep::cli {

struct Flag {
  std::string name;     // long name, without dashes
  char short_name = 0;  // 0: none
  std::string value;    // the value's name in --help; empty: a boolean flag
  std::string help;
  bool repeated = false;
};

// Exit codes: 0 success, 1 the daemon refused or failed, 2 the command line was wrong.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Invocation {
  std::string command;                                     // "node ls"
  std::map<std::string, std::vector<std::string>> values;  // flag -> values given
  std::vector<std::string> args;
  std::string host;  // unix:///path of skepd's control socket

  bool Has(const std::string& flag) const { return values.count(flag) > 0; }
  std::string Get(const std::string& flag, const std::string& fallback = "") const;
  const std::vector<std::string>& All(const std::string& flag) const;

  std::unique_ptr<api::LocalNode::Stub> Local() const;
  std::unique_ptr<api::Control::Stub> Control() const;
};

struct Command {
  std::string path;        // "swarm init"
  std::string args_usage;  // "[OPTIONS] NODE [NODE...]"
  std::string summary;
  std::vector<Flag> flags;
  size_t min_args = 0;
  size_t max_args = 0;  // SIZE_MAX: no limit
  std::function<int(const Invocation&)> run;
  // Everything after the first argument is an argument too (IMAGE COMMAND ARG... in Docker's
  // `service create`, where the command's own flags follow the image).
  bool args_end_flags = false;
};

std::vector<Command> AllCommands();

// Throws (as a caught error the caller prints) when a call to skepd failed.
class DaemonError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
void Check(const grpc::Status& st, const std::string& host);
// Docker's way with `rm A B C`: `call` for each argument, the argument printed when it
// succeeds, each failure reported and the next one tried; exit status 1 if any failed.
int ForEachRef(const Invocation& inv, const std::function<grpc::Status(const std::string&)>& call);
// The deadline of a unary call to skepd (long enough for a leader election and a write).
void Deadline(grpc::ClientContext& ctx);

}  // namespace skep::cli
