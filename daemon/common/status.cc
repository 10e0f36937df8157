#include "daemon/common/grpc_status.h"
#include "daemon/common/status.h"
#include "status.pb.h"

namespace skep {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "ok";
    case Code::kInvalidArgument:
      return "invalid argument";
    case Code::kNotFound:
      return "not found";
    case Code::kAlreadyExists:
      return "already exists";
    case Code::kConflict:
      return "conflict";
    case Code::kFailedPrecondition:
      return "failed precondition";
    case Code::kPermissionDenied:
      return "permission denied";
    case Code::kUnauthenticated:
      return "unauthenticated";
    case Code::kResourceExhausted:
      return "resource exhausted";
    case Code::kNotLeader:
      return "not the leader";
    case Code::kNoLeader:
      return "no leader";
    case Code::kNoQuorum:
      return "no quorum";
    case Code::kUnavailable:
      return "unavailable";
    case Code::kOutcomeUnknown:
      return "outcome unknown";
    case Code::kCancelled:
      return "cancelled";
    case Code::kDeadlineExceeded:
      return "deadline exceeded";
    case Code::kUnimplemented:
      return "unimplemented";
    case Code::kInternal:
      return "internal";
  }
  return "unknown";
}

namespace {

grpc::StatusCode GrpcCode(Code code) {
  switch (code) {
    case Code::kOk:
      return grpc::StatusCode::OK;
    case Code::kInvalidArgument:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case Code::kNotFound:
      return grpc::StatusCode::NOT_FOUND;
    case Code::kAlreadyExists:
      return grpc::StatusCode::ALREADY_EXISTS;
    case Code::kConflict:
    case Code::kFailedPrecondition:
    case Code::kNotLeader:
      return grpc::StatusCode::FAILED_PRECONDITION;
    case Code::kPermissionDenied:
      return grpc::StatusCode::PERMISSION_DENIED;
    case Code::kUnauthenticated:
      return grpc::StatusCode::UNAUTHENTICATED;
    case Code::kResourceExhausted:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case Code::kNoLeader:
    case Code::kNoQuorum:
    case Code::kUnavailable:
    case Code::kOutcomeUnknown:
      return grpc::StatusCode::UNAVAILABLE;
    case Code::kCancelled:
      return grpc::StatusCode::CANCELLED;
    case Code::kDeadlineExceeded:
      return grpc::StatusCode::DEADLINE_EXCEEDED;
    case Code::kUnimplemented:
      return grpc::StatusCode::UNIMPLEMENTED;
    case Code::kInternal:
      return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::UNKNOWN;
}

Code NearestCode(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return Code::kOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return Code::kInvalidArgument;
    case grpc::StatusCode::NOT_FOUND:
      return Code::kNotFound;
    case grpc::StatusCode::ALREADY_EXISTS:
      return Code::kAlreadyExists;
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ABORTED:
      return Code::kFailedPrecondition;
    case grpc::StatusCode::PERMISSION_DENIED:
      return Code::kPermissionDenied;
    case grpc::StatusCode::UNAUTHENTICATED:
      return Code::kUnauthenticated;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return Code::kResourceExhausted;
    case grpc::StatusCode::UNAVAILABLE:
      return Code::kUnavailable;
    case grpc::StatusCode::CANCELLED:
      return Code::kCancelled;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Code::kDeadlineExceeded;
    case grpc::StatusCode::UNIMPLEMENTED:
      return Code::kUnimplemented;
    default:
      return Code::kInternal;
  }
}

bool Decode(const grpc::Status& status, api::StatusDetails* details) {
  return !status.error_details().empty() && details->ParseFromString(status.error_details()) &&
         details->code() > 0 && details->code() <= kLastCode;
}

}  // namespace

grpc::Status ToGrpc(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  api::StatusDetails details;
  details.set_code(static_cast<int>(status.code()));
  details.set_leader_addr(status.leader_addr());
  return {GrpcCode(status.code()), status.message(), details.SerializeAsString()};
}

Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return Status::Ok();
  api::StatusDetails details;
  if (!Decode(status, &details)) return {NearestCode(status.error_code()), status.error_message()};
  const auto code = static_cast<Code>(details.code());
  if (code == Code::kNotLeader) return Status::NotLeader(status.error_message(), details.leader_addr());
  return {code, status.error_message()};
}

bool FromSkep(const grpc::Status& status) {
  api::StatusDetails details;
  return Decode(status, &details);
}

}  // namespace skep
