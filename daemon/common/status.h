// skep's one error type: a code the caller acts on, a message for the user, and (for a manager
// that does not lead) where the leader is. It travels from the store and raft through the
// manager's components and API handlers to the edge, which alone turns it into a wire status
// (grpc_status.h; the Docker Engine API into an HTTP status). Nobody learns what happened by
// reading a message's text.
#pragma once

#include <string>
#include <utility>

namespace skep {

enum class Code : int {
  kOk = 0,
  kInvalidArgument,     // what the caller sent is wrong; the message says what
  kNotFound,            // an object it names is not there
  kAlreadyExists,       // an ID or name is taken
  kConflict,            // made from an outdated version of an object: read again and retry
  kFailedPrecondition,  // refused in the current state (demote that manager first, ...)
  kPermissionDenied,
  kUnauthenticated,
  kResourceExhausted,
  kNotLeader,      // this manager does not lead; leader_addr() says where the leader is, if known
  kNoLeader,       // no leader at the moment (an election): worth trying again shortly
  kNoQuorum,       // no leader, and too few managers reachable to elect one: an operator must act
  kUnavailable,    // not done, for a passing reason (a peer away, shutting down): may be retried
  kOutcomeUnknown, // may or may not have been applied (the leader was lost during the write)
  kCancelled,
  kDeadlineExceeded,
  kUnimplemented,
  kInternal,
};
inline constexpr int kLastCode = static_cast<int>(Code::kInternal);

// A code's name, for logs: "not found", "conflict", ...
const char* CodeName(Code code);

class Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return {}; }
  // kNotLeader, with the leader's address when this manager knows it.
  static Status NotLeader(std::string message, std::string leader_addr) {
    Status st(Code::kNotLeader, std::move(message));
    st.leader_addr_ = std::move(leader_addr);
    return st;
  }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  const std::string& leader_addr() const { return leader_addr_; }
  // Whether trying the same thing again later may succeed: no leader yet, a peer away.
  bool transient() const {
    return code_ == Code::kNoLeader || code_ == Code::kUnavailable ||
           code_ == Code::kDeadlineExceeded || code_ == Code::kNotLeader ||
           code_ == Code::kOutcomeUnknown;
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
  std::string leader_addr_;
};

inline Status InvalidArgument(std::string message) {
  return {Code::kInvalidArgument, std::move(message)};
}
inline Status NotFound(std::string message) {
  return {Code::kNotFound, std::move(message)};
}
inline Status AlreadyExists(std::string message) {
  return {Code::kAlreadyExists, std::move(message)};
}
inline Status FailedPrecondition(std::string message) {
  return {Code::kFailedPrecondition, std::move(message)};
}
inline Status Unavailable(std::string message) {
  return {Code::kUnavailable, std::move(message)};
}
inline Status Internal(std::string message) {
  return {Code::kInternal, std::move(message)};
}

}  // namespace skep
