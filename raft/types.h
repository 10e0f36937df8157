// Basic vocabulary of the raft core.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace skep::raft {

using NodeId = uint64_t;
using Term = uint64_t;
using Index = uint64_t;

// Node IDs start at 1; 0 means "nobody" (no vote, no known leader).
inline constexpr NodeId kNoNode = 0;

// Why a call into the core was refused. The caller can act on every one of them: retry at the
// leader, wait for a pending change, or report the message to the user.
enum class ErrorCode {
  kOk = 0,
  kNotLeader,           // only the leader accepts this; Status().lead says who that is
  kTransferInProgress,  // proposals pause while leadership moves to another node
  kConfChangePending,   // one configuration change at a time (see ProposeConfChange)
  kInvalidConfChange,   // the change makes no sense for the current configuration
  kNotCaughtUp,         // a learner must catch up before it can be promoted
  kInvalidArgument,
  kOutcomeUnknown,  // a driver lost track of a proposal: it may or may not have committed
};

class Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return {}; }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

// Thrown by a Storage when it cannot return what it holds: an I/O error, or a record that fails
// its checksum. The message names the data directory and the index. The core never catches it:
// a node whose log cannot be read must stop rather than guess.
class StorageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace skep::raft
