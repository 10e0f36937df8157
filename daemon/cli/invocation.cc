// What a command is given (its flags and arguments), its connection to skepd, and how a
// failed call becomes the message the user reads.
#include <grpcpp/grpcpp.h>

#include "daemon/cli/command.h"

namespace skep::cli {

std::string Invocation::Get(const std::string& flag, const std::string& fallback) const {
  auto it = values.find(flag);
  return it == values.end() || it->second.empty() ? fallback : it->second.back();
}

const std::vector<std::string>& Invocation::All(const std::string& flag) const {
  static const std::vector<std::string> kNone;
  auto it = values.find(flag);
  return it == values.end() ? kNone : it->second;
}

namespace {

std::shared_ptr<grpc::Channel> Channel(const std::string& host) {
  // Lists grow with the swarm (100,000 tasks are about 5 MB): the answer of skepd's own socket
  // is not limited to gRPC's default of 4 MB.
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(host, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

std::unique_ptr<api::LocalNode::Stub> Invocation::Local() const {
  return api::LocalNode::NewStub(Channel(host));
}
std::unique_ptr<api::Control::Stub> Invocation::Control() const {
  return api::Control::NewStub(Channel(host));
}

void Check(const grpc::Status& st, const std::string& host) {
  if (st.ok()) return;
  // gRPC's own words for a channel that could not connect (skepd's messages never start so:
  // it says which remote address failed), so the local socket is the one that failed.
  const std::string& m = st.error_message();
  if (st.error_code() == grpc::StatusCode::UNAVAILABLE &&
      (m.rfind("failed to connect", 0) == 0 || m.rfind("Connection refused", 0) == 0 ||
       m.rfind("No such file", 0) == 0)) {
    throw DaemonError("cannot connect to skepd at " + host + ": is skepd running?");
  }
  if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    throw DaemonError("skepd did not answer in time: " + st.error_message());
  }
  throw DaemonError(st.error_message());
}

}  // namespace skep::cli
