// How the control API runs a request on the leader: here, or forwarded over 2377. Included by
// the files that implement ControlApi's methods (one per kind of object).
#pragma once

#include "daemon/manager/control_api.h"
#include "daemon/manager/manager.h"

namespace skep::manager {

inline constexpr auto kForwardDeadline = std::chrono::seconds(5);

template <class Req, class Resp>
grpc::Status ControlApi::Forward(grpc::Status (api::Control::Stub::*method)(grpc::ClientContext*,
                                                                            const Req&, Resp*),
                                 const Req& req, Resp* resp) {
  auto leader = m_->AwaitLeader();
  if (!leader) return m_->NoLeaderStatus();
  if (leader->raft_id == m_->options().raft_id) {
    return {grpc::StatusCode::UNAVAILABLE, "this manager just became the leader; try again"};
  }
  auto stub = api::Control::NewStub(m_->ChannelTo(leader->addr));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kForwardDeadline);
  ctx.AddMetadata(kForwardedHeader, "1");
  grpc::Status st = ((*stub).*method)(&ctx, req, resp);
  if (st.error_code() == grpc::StatusCode::UNAVAILABLE ||
      st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    // The leader may have just come back: retry the connection at once next time rather than
    // after gRPC's reconnect backoff.
    grpc::experimental::ChannelResetConnectionBackoff(m_->ChannelTo(leader->addr).get());
    if (!m_->Leader()) return m_->NoLeaderStatus();
    if (st.error_message().find("does not have a leader") != std::string::npos) return st;
    return {grpc::StatusCode::UNAVAILABLE,
            "the leader at " + leader->addr + " did not answer: " + st.error_message()};
  }
  return st;
}

template <class Req, class Resp>
grpc::Status ControlApi::OnLeader(grpc::Status (api::Control::Stub::*method)(grpc::ClientContext*,
                                                                             const Req&, Resp*),
                                  const Req& req, Resp* resp,
                                  const std::function<grpc::Status()>& local) {
  if (!m_->IsLeader()) {
    grpc::Status st = Forward(method, req, resp);
    // Leadership came here while waiting for a leader: serve it here after all.
    if (!m_->IsLeader()) return st;
  }
  if (grpc::Status st = m_->WaitServing(); !st.ok()) return st;
  return local();
}

}  // namespace skep::manager
