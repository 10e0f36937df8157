// How an API request runs on the leader: here, once this manager serves as the leader, or
// forwarded over 2377 to the one that does, waiting for one when there is none and going to the
// next when the one asked is lost. For the control API and the CA; included by the files that
// implement their operations.
#pragma once

#include <grpcpp/grpcpp.h>

#include "daemon/common/grpc_status.h"
#include "daemon/common/log.h"
#include "daemon/manager/awaitable.h"
#include "daemon/manager/context.h"
#include "daemon/manager/control_api.h"

namespace skep::manager {

inline constexpr char kForwarded[] = "skep-forwarded";
inline constexpr char kRequestId[] = "skep-request-id";

namespace detail {

// A forwarded request that may be sent again: the leader asked was lost or lost its
// leadership, or never received it. (A write carries the request's ID, so sending it again
// never applies it twice.)
inline bool SendAgain(const grpc::Status& st) {
  if (st.ok()) return false;
  if (!FromSkep(st)) return true;  // gRPC's own: no connection, cancelled, timed out
  switch (FromGrpc(st).code()) {
    case Code::kNotLeader:
    case Code::kNoLeader:
    case Code::kOutcomeUnknown:
    case Code::kUnavailable:
      return true;
    default:
      return false;
  }
}

// A request answered here that the next leader should answer instead.
inline bool AskNextLeader(const Status& st) {
  return st.code() == Code::kNotLeader || st.code() == Code::kNoLeader ||
         st.code() == Code::kOutcomeUnknown;
}

// After a failed attempt, the same leader is tried again no sooner than this, unless another
// one is elected first.
inline constexpr std::chrono::milliseconds kRetryPause(100);

// A forwarded request ends this much before the forwarding manager gives up on it, so that
// the leader's own answer (done, refused, or outcome unknown) gets back in time.
inline constexpr std::chrono::milliseconds kForwardMargin(250);

// An attempt after which the request may have been carried out although no answer said so: a
// proposal whose outcome is unknown, or a forward abandoned or timed out after it was sent.
inline bool MaybeCarriedOut(const Status& st) { return st.code() == Code::kOutcomeUnknown; }
inline bool MaybeCarriedOut(const grpc::Status& st) {
  if (FromSkep(st)) return FromGrpc(st).code() == Code::kOutcomeUnknown;
  return st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
         st.error_code() == grpc::StatusCode::CANCELLED;
}

// A request that failed here although another run of it (one a forwarding manager abandoned
// and sent again) has carried it out: it is done, and a create answers with what it made.
template <class Resp>
void DoneBefore(ServiceContext& ctx, const CallInfo& call, Resp* resp, Status* st) {
  const auto done = ctx.store().Applied(call.request_id);
  if (!done) return;
  if constexpr (requires { resp->set_id(done->created_id); }) {
    if (!done->created_id.empty()) resp->set_id(done->created_id);
  }
  *st = Status::Ok();
}

inline Status GaveUp(const Status& last, bool maybe_carried_out) {
  if (!maybe_carried_out) return last;
  return Status(Code::kOutcomeUnknown,
                "the leader was lost before it answered, and no new one answered in time: the "
                "request may have been carried out (" + last.message() + ")");
}

}  // namespace detail

// How long a request waits at most for a leader: a few election timeouts, and no longer than
// its client waits.
inline Clock::Steady DeadlineOf(ServiceContext& ctx, const CallInfo& call) {
  const Clock::Steady wait = ctx.clock().SteadyNow() + ctx.LeaderWait();
  if (!call.deadline) return wait;
  return std::min(wait, call.forwarded ? *call.deadline - detail::kForwardMargin : *call.deadline);
}

// The callback API's method of a request: `remote(stub->async(), context, req, resp, done)`.
#define SKEP_REMOTE(Method)                                                               \
  [](auto* a, grpc::ClientContext* c, const auto* req, auto* resp,                        \
     std::function<void(grpc::Status)> cb) { a->Method(c, req, resp, std::move(cb)); }

// Sends the request to the leader at `addr`, elected in `term`; abandons it if another leader
// is elected meanwhile. kUnavailable when it may be sent again (to the next leader, or to this
// one a moment later); `*maybe_carried_out` is set when the leader may have carried it out
// without saying so.
template <class Service, class Req, class Resp, class Remote>
boost::asio::awaitable<Status> Forward(ServiceContext& ctx, Remote remote, const std::string& addr,
                                       uint64_t term, const Req& req, Resp* resp,
                                       const CallInfo& call, Clock::Steady deadline,
                                       bool* maybe_carried_out) {
  auto context = std::make_shared<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + (deadline - ctx.clock().SteadyNow()));
  context->AddMetadata(kForwarded, "1");
  context->AddMetadata(kRequestId, call.request_id);
  auto stub = std::shared_ptr<typename Service::Stub>(Service::NewStub(ctx.ChannelTo(addr)));
  resp->Clear();
  Subscription moved = ctx.WatchLeadership([context, term](const Leadership& l) {
    if (l.term != term) context->TryCancel();
  });
  auto answer = Await<grpc::Status>([&](Completion<grpc::Status> complete) {
    remote(stub->async(), context.get(), &req, resp,
           [complete, context, stub](grpc::Status s) { complete(std::move(s)); });
  });
  const grpc::Status st = co_await std::move(answer);
  moved.Cancel();
  if (detail::MaybeCarriedOut(st)) *maybe_carried_out = true;
  if (!detail::SendAgain(st)) co_return FromGrpc(st);
  if (FromSkep(st)) co_return Unavailable(FromGrpc(st).message());
  // The leader may be back in a moment: the next attempt connects at once rather than after
  // gRPC's reconnect backoff.
  grpc::experimental::ChannelResetConnectionBackoff(ctx.ChannelTo(addr).get());
  co_return Unavailable("the leader at " + addr + " did not answer: " + st.error_message());
}

// Runs `local()` here once this manager serves as the leader, or forwards the request.
template <class Service, class Req, class Resp, class Remote, class Local>
boost::asio::awaitable<Status> OnLeader(ServiceContext& ctx, Remote remote, const Req& req,
                                        Resp* resp, CallInfo call, Local local) {
  const Clock::Steady deadline = DeadlineOf(ctx, call);
  // Once an attempt may have carried the request out, giving up says so: the client must not
  // take it for undone. (Within the deadline, attempting again is safe: a write carries the
  // request's ID and applies once.)
  bool maybe_carried_out = false;
  for (;;) {
    const Leadership l = ctx.leadership();
    const bool time_left = ctx.clock().SteadyNow() < deadline;
    if (l.leader) {
      if (!l.serving) {
        if (!time_left) {
          co_return detail::GaveUp(Unavailable("the new leader is still catching up; try again"),
                                   maybe_carried_out);
        }
        auto serving = AwaitLeadership(
            ctx, [](const Leadership& x) { return x.serving || !x.leader; }, deadline);
        co_await std::move(serving);
        continue;
      }
      auto here = local();
      Status st = co_await std::move(here);
      if (!st.ok()) detail::DoneBefore(ctx, call, resp, &st);
      if (detail::MaybeCarriedOut(st)) maybe_carried_out = true;
      if (!detail::AskNextLeader(st)) co_return st;
      if (ctx.clock().SteadyNow() >= deadline) co_return detail::GaveUp(st, maybe_carried_out);
      // Leadership was lost during the request: the next leader answers it.
      auto next_term = AwaitLeadership(
          ctx, [term = l.term](const Leadership& x) { return x.term != term; }, deadline);
      co_await std::move(next_term);
      continue;
    }
    // A request one manager forwarded goes no further: two managers with stale views of the
    // leader would otherwise pass it back and forth. The manager that forwarded it tries again.
    if (call.forwarded) {
      co_return Status::NotLeader("leadership moved while the request was forwarded", "");
    }
    if (l.Reachable()) {
      const LeaderInfo leader = *l.leader_info;
      auto forward = Forward<Service>(ctx, remote, leader.addr, l.term, req, resp, call,
                                      deadline, &maybe_carried_out);
      Status st = co_await std::move(forward);
      if (st.code() != Code::kUnavailable) co_return st;
      if (ctx.clock().SteadyNow() >= deadline) co_return detail::GaveUp(st, maybe_carried_out);
      // Another leader, or the same one a moment later (it may have been restarting).
      const auto pause = std::min(deadline, ctx.clock().SteadyNow() + detail::kRetryPause);
      auto moved = AwaitLeadership(
          ctx,
          [term = l.term, id = leader.raft_id](const Leadership& x) {
            return x.term != term || !x.leader_info || x.leader_info->raft_id != id;
          },
          pause);
      co_await std::move(moved);
      continue;
    }
    const Status why = ctx.NoLeaderStatus();
    // Gone for good until an operator acts: no point waiting.
    if (why.code() == Code::kNoQuorum || !time_left) {
      co_return detail::GaveUp(why, maybe_carried_out);
    }
    auto elected = AwaitLeadership(
        ctx, [](const Leadership& x) { return x.leader || x.Reachable(); }, deadline);
    co_await std::move(elected);
  }
}

// Starts OnLeader on a strand of its own; `done` gets the outcome.
template <class Service, class Req, class Resp, class Remote, class Local>
void RunOnLeader(ServiceContext& ctx, Remote remote, const Req& req, Resp* resp, CallInfo call,
                 Done done, Local local) {
  Spawn(ctx.MakeStrand(),
        OnLeader<Service>(ctx, std::move(remote), req, resp, std::move(call), std::move(local)),
        std::move(done));
}

template <class Req, class Resp, class Remote, class Local>
void ControlApi::Run(Remote remote, const Req& req, Resp* resp, Call call, Done done,
                     Local local) {
  RunOnLeader<api::Control>(ctx_, std::move(remote), req, resp, std::move(call), std::move(done),
                            std::move(local));
}

}  // namespace skep::manager
