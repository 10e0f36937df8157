// The one error type of the container runtime layer: what failed and why, with a kind the
// caller can branch on (retry when unavailable, ignore not-found on cleanup, report the rest).
#pragma once

#include <stdexcept>
#include <string>

namespace skep::executor {

enum class ErrorKind {
  kInvalidArgument,     // a bad reference, spec or id: fix the input
  kNotFound,            // no such image, tag, container or task
  kAlreadyExists,       // a container or task with that id exists
  kFailedPrecondition,  // e.g. deleting a running task
  kUnauthorized,        // the registry refused our credentials (or wants some)
  kUnavailable,         // containerd or the registry cannot be reached: retry later
  kFailed,              // anything else
};

class ExecutorError : public std::runtime_error {
 public:
  ExecutorError(ErrorKind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

}  // namespace skep::executor
