// The exit subscription: one Subscribe stream at a time, on gRPC's callback API, re-opened
// whenever it ends. Events are not replayed, so each new stream is followed by a Tasks.List
// that reports the tasks that stopped meanwhile. That listing must not start before containerd
// has registered the stream (or an exit in between would be lost), and nothing acknowledges a
// Subscribe: so the subscription publishes an event of its own on a topic only it listens to,
// and lists once that event comes back. The event is published again every 250 ms (a timer)
// until it does (the first one nearly always suffices). All of it on one strand; no thread.
//
// gRPC 1.51 runs callbacks of client calls on threads it shares among channels, and shuts them
// down, joining them, when the last such channel goes. So the last reference to this object
// (and to the channel its stubs hold) must never be dropped on one of those threads: every
// callback lets go of it before leaving the gate, and Stop cancels every call in flight so
// that draining the gate never times out.
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <fmt/format.h>

#include <future>
#include <memory>
#include <set>

#include "daemon/common/gate.h"
#include "daemon/common/mutex.h"

#include "daemon/executor/containerd_internal.h"
#include "daemon/executor/errors.h"

namespace skep::executor {

namespace asio = boost::asio;

namespace {

constexpr const char* kTaskExitTopic = "/tasks/exit";
constexpr const char* kTaskOomTopic = "/tasks/oom";
// The sentinel is published this often until it comes back, at most this many times.
constexpr std::chrono::milliseconds kSentinelEvery{250};
constexpr int kSentinelTries = 40;

}  // namespace

class Containerd::Impl::ExitSubscription
    : public std::enable_shared_from_this<Containerd::Impl::ExitSubscription> {
 public:
  // Its own stubs on the client's channel: the calls in flight keep this object, which may
  // outlive the client.
  ExitSubscription(const Impl& impl, asio::any_io_executor executor, ExitCallback on_exit,
                   OomCallback on_oom)
      : ns_(impl.ns),
        events_(cdapi::events::Events::NewStub(impl.channel)),
        tasks_(cdapi::tasks::Tasks::NewStub(impl.channel)),
        strand_(asio::make_strand(std::move(executor))),
        gate_(std::make_shared<Gate>(strand_)),
        on_exit_(std::move(on_exit)),
        on_oom_(std::move(on_oom)),
        retry_(strand_),
        publish_(strand_) {}

  void Start() {
    Post([self = shared_from_this()] { self->Subscribe(); });
  }

  // Once it returns no callback runs any more, and no call in flight is left (the executor's
  // io_context must still run).
  void Stop() {
    auto stopped = std::make_shared<std::promise<void>>();
    auto future = stopped->get_future();
    if (!gate_->Post([self = shared_from_this(), stopped] {
          self->stopped_ = true;
          if (self->context_) self->context_->TryCancel();
          self->CancelCalls();
          self->retry_.cancel();
          self->publish_.cancel();
          stopped->set_value();
        })) {
      return;
    }
    future.wait_for(std::chrono::seconds(5));
    if (!gate_->Drain(std::chrono::seconds(5)))
      LogWarn("containerd calls of the exit subscription still in flight after 5 s");
  }

 private:
  // The stream's reader; it deletes itself when the call is done.
  class Reader final
      : public grpc::ClientReadReactor<::containerd::services::events::v1::Envelope> {
   public:
    Reader(std::shared_ptr<ExitSubscription> s, uint64_t attempt,
           std::shared_ptr<grpc::ClientContext> context)
        : s_(std::move(s)), attempt_(attempt), context_(std::move(context)) {
      s_->gate_->Enter();
    }
    void OnReadDone(bool ok) override {
      if (!ok) return;  // OnDone follows
      s_->Post([s = s_, a = attempt_, env = std::move(env_)] { s->OnEvent(a, env); });
      env_.Clear();
      StartRead(&env_);
    }
    void OnDone(const grpc::Status& status) override {
      s_->Post([s = s_, a = attempt_, status] { s->OnEnded(a, status); });
      auto gate = s_->gate_;
      delete this;  // lets go of the subscription first (see the top)
      gate->Leave();
    }
    cdapi::events::SubscribeRequest request_;
    ::containerd::services::events::v1::Envelope env_;

   private:
    std::shared_ptr<ExitSubscription> s_;
    const uint64_t attempt_;
    std::shared_ptr<grpc::ClientContext> context_;  // lives as long as the call
  };

  // A context carrying the namespace, with a deadline (0: none).
  std::unique_ptr<grpc::ClientContext> Context(std::chrono::seconds timeout) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("containerd-namespace", ns_);
    if (timeout.count() > 0) ctx->set_deadline(std::chrono::system_clock::now() + timeout);
    return ctx;
  }

  // A unary call starts (on the strand) or is done (on a gRPC thread); Stop cancels the calls
  // in flight.
  void Begin(grpc::ClientContext* context) {
    MutexLock lock(calls_mu_);
    gate_->Enter();
    calls_.insert(context);
  }
  void End(grpc::ClientContext* context) {
    MutexLock lock(calls_mu_);
    calls_.erase(context);
  }
  void CancelCalls() {
    MutexLock lock(calls_mu_);
    for (grpc::ClientContext* context : calls_) context->TryCancel();
  }

  // Onto the strand, unless stopped.
  template <class F>
  void Post(F&& f) {
    gate_->Post(std::forward<F>(f));
  }

  void Subscribe() {
    if (stopped_) return;
    const uint64_t attempt = ++attempt_;
    sentinel_ = "/skep/executor/subscribed/" + RandomHex(8);
    acked_ = false;
    accepted_ = 0;
    auto ctx = std::shared_ptr<grpc::ClientContext>(Context(std::chrono::seconds(0)));
    ctx->set_wait_for_ready(true);  // wait for containerd instead of failing at once
    context_ = ctx;
    auto* reader = new Reader(shared_from_this(), attempt, ctx);
    for (const std::string& topic : {std::string(kTaskExitTopic), std::string(kTaskOomTopic), sentinel_}) {
      reader->request_.add_filters(
          fmt::format("topic=={},namespace=={}", Quoted(topic), Quoted(ns_)));
    }
    events_->async()->Subscribe(ctx.get(), &reader->request_, reader);
    reader->StartRead(&reader->env_);
    reader->StartCall();
    Publish(attempt);
  }

  // The sentinel. While containerd is away the publish waits for it (wait_for_ready) and fails
  // quietly at its deadline; only events containerd accepted count towards giving up.
  void Publish(uint64_t attempt) {
    if (attempt != attempt_ || acked_ || stopped_) return;
    struct Call {
      std::unique_ptr<grpc::ClientContext> context;
      ::containerd::services::events::v1::PublishRequest request;
      google::protobuf::Empty response;
    };
    auto call = std::make_shared<Call>();
    call->context = Context(std::chrono::seconds(2));
    call->context->set_wait_for_ready(true);
    call->request.set_topic(sentinel_);
    call->request.mutable_event()->set_type_url("skep.executor.Subscribed");
    Begin(call->context.get());
    events_->async()->Publish(
        call->context.get(), &call->request, &call->response,
        [self = shared_from_this(), call, attempt](grpc::Status s) mutable {
          self->End(call->context.get());
          auto gate = self->gate_;
          gate->Post([self, attempt, s] { self->Published(attempt, s); });
          self.reset();  // see the top
          gate->Leave();
        });
  }

  void Published(uint64_t attempt, const grpc::Status& s) {
    if (attempt != attempt_ || acked_) return;
    if (s.ok()) {
      ++accepted_;
    } else if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
               s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      LogWarn(fmt::format("containerd Events.Publish {}: {}", sentinel_, s.error_message()));
    }
    if (accepted_ >= kSentinelTries) {
      LogWarn("containerd never delivered our subscription check event; subscribing again");
      if (context_) context_->TryCancel();
      return;
    }
    publish_.expires_after(kSentinelEvery);
    publish_.async_wait([self = shared_from_this(), attempt](const boost::system::error_code& ec) {
      if (!ec) self->Publish(attempt);
    });
  }

  void OnEvent(uint64_t attempt, const ::containerd::services::events::v1::Envelope& env) {
    if (attempt != attempt_ || stopped_) return;
    if (env.topic() == sentinel_) {
      if (acked_) return;
      acked_ = true;
      publish_.cancel();
      backoff_ = std::chrono::milliseconds(100);
      Reconcile();
      return;
    }
    if (env.event().type_url() == "containerd.events.TaskOOM") {
      ::containerd::events::TaskOOM oom;
      if (!oom.ParseFromString(env.event().value())) {
        LogWarn("containerd sent a TaskOOM event that does not parse");
      } else if (on_oom_) {
        on_oom_(oom.container_id());
      }
      return;
    }
    if (env.event().type_url() != "containerd.events.TaskExit") return;
    ::containerd::events::TaskExit task_exit;
    if (!task_exit.ParseFromString(env.event().value())) {
      LogWarn("containerd sent a TaskExit event that does not parse");
      return;
    }
    if (task_exit.id() != task_exit.container_id()) return;  // an exec'd process
    on_exit_(task_exit.container_id(), task_exit.exit_status(),
             task_exit.has_exited_at() ? UnixNanos(task_exit.exited_at()) : 0);
  }

  // The tasks that stopped before the stream was registered.
  void Reconcile() {
    struct Call {
      std::unique_ptr<grpc::ClientContext> context;
      cdapi::tasks::ListTasksRequest request;
      cdapi::tasks::ListTasksResponse response;
    };
    auto call = std::make_shared<Call>();
    call->context = Context(std::chrono::seconds(30));
    Begin(call->context.get());
    tasks_->async()->List(
        call->context.get(), &call->request, &call->response,
        [self = shared_from_this(), call](grpc::Status s) mutable {
          self->End(call->context.get());
          auto gate = self->gate_;
          gate->Post([self, call, s] {
            if (self->stopped_) return;
            if (!s.ok()) {
              LogWarn(fmt::format("containerd Tasks.List after subscribing: {}", s.error_message()));
              return;
            }
            // One init process per task; its id is the container's.
            for (const auto& p : call->response.tasks()) {
              if (p.status() == ::containerd::v1::types::STOPPED) {
                self->on_exit_(p.id(), p.exit_status(),
                               p.has_exited_at() ? UnixNanos(p.exited_at()) : 0);
              }
            }
          });
          self.reset();  // see the top
          gate->Leave();
        });
  }

  void OnEnded(uint64_t attempt, const grpc::Status& s) {
    if (attempt != attempt_ || stopped_) return;
    publish_.cancel();
    context_.reset();
    LogWarn(fmt::format("containerd Events.Subscribe ended ({}); subscribing again",
                        s.error_message()));
    retry_.expires_after(backoff_);
    retry_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->Subscribe();
    });
    backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(2000));
  }

  const std::string ns_;
  const std::unique_ptr<cdapi::events::Events::Stub> events_;
  const std::unique_ptr<cdapi::tasks::Tasks::Stub> tasks_;
  asio::strand<asio::any_io_executor> strand_;
  const std::shared_ptr<Gate> gate_;
  const ExitCallback on_exit_;
  const OomCallback on_oom_;
  Mutex calls_mu_;
  std::set<grpc::ClientContext*> calls_ SKEP_GUARDED_BY(calls_mu_);  // unary calls in flight
  // All below: on the strand.
  bool stopped_ = false;
  std::shared_ptr<grpc::ClientContext> context_;  // the open Subscribe call
  uint64_t attempt_ = 0;  // the stream under way; older ones' completions drop out
  std::string sentinel_;
  bool acked_ = false;
  int accepted_ = 0;
  std::chrono::milliseconds backoff_{100};
  asio::steady_timer retry_;
  asio::steady_timer publish_;
};

void Containerd::SubscribeExits(asio::any_io_executor executor, ExitCallback on_exit,
                                OomCallback on_oom) {
  if (impl_->exits)
    throw ExecutorError(ErrorKind::kFailedPrecondition, "SubscribeExits may be called only once");
  impl_->exits = std::make_shared<Impl::ExitSubscription>(*impl_, std::move(executor),
                                                          std::move(on_exit), std::move(on_oom));
  impl_->exits->Start();
}

void Containerd::Impl::StopExits() {
  if (exits) exits->Stop();
}

void Containerd::StopExits() {
  impl_->StopExits();
}

}  // namespace skep::executor
