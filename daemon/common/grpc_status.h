// The gRPC edge of skep::Status: every service handler answers with ToGrpc, and every client of
// a skep service reads the answer with FromGrpc. The skep code and the leader's address travel
// in the status details (proto/status.proto), so a conflict stays a conflict across a forward.
#pragma once

#include <grpcpp/support/status.h>

#include "daemon/common/status.h"

namespace skep {

grpc::Status ToGrpc(const Status& status);
// A status skep sent keeps its code; one without skep's details (gRPC's own: a connection that
// failed, a deadline on this side) gets the nearest code for its gRPC code.
Status FromGrpc(const grpc::Status& status);
// Whether a status came from a skep service rather than from gRPC itself.
bool FromSkep(const grpc::Status& status);

}  // namespace skep
