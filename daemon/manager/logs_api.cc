// `service logs`: the control API's one streaming call. On the leader a request becomes a log
// subscription of the dispatcher's broker; a follower relays the leader's stream. Both ends use
// gRPC's callback API, so a request that follows a service for hours holds no thread.
#include <deque>
#include <optional>

#include "daemon/common/grpc_status.h"
#include "daemon/common/mutex.h"
#include "daemon/manager/control_api.h"
#include "daemon/manager/dispatcher.h"
#include "daemon/manager/on_leader.h"

namespace skep::manager {

namespace {


// The stream to the client and the feed its producers push into. The feed outlives the
// reactor (producers hold it); once the reactor is done, what is pushed is dropped.
class LogStream;

class StreamFeed final : public LogFeed {
 public:
  explicit StreamFeed(LogStream* stream) : stream_(stream) {}
  void Push(api::ServiceLogsMessage m) override;
  void Finish(const Status& status) override;

  void SetCancel(std::function<void()> cancel);
  void Cancel();
  void WriteDone(bool ok);
  void Detach();

 private:
  // What the stream does next, started once mu_ is released: a write of current_, or its
  // finish.
  struct Step {
    LogStream* stream = nullptr;  // none: nothing
    bool write = false;
    grpc::Status finish;
  };
  Step NextLocked() SKEP_REQUIRES(mu_);
  static void Take(const Step& step, const api::ServiceLogsMessage* current);

  Mutex mu_;
  LogStream* stream_ SKEP_GUARDED_BY(mu_);  // null once the reactor is done
  std::deque<api::ServiceLogsMessage> queue_ SKEP_GUARDED_BY(mu_);
  // The one being written: set under mu_ while no write is in flight, then gRPC's.
  api::ServiceLogsMessage current_;
  bool writing_ SKEP_GUARDED_BY(mu_) = false;
  bool finished_ SKEP_GUARDED_BY(mu_) = false;  // Finish was called on the reactor
  std::optional<Status> finish_ SKEP_GUARDED_BY(mu_);
  std::function<void()> cancel_ SKEP_GUARDED_BY(mu_);
  bool cancelled_ SKEP_GUARDED_BY(mu_) = false;
};

class LogStream final : public grpc::ServerWriteReactor<api::ServiceLogsMessage> {
 public:
  explicit LogStream(std::shared_ptr<void> keep_alive)
      : feed_(std::make_shared<StreamFeed>(this)), keep_alive_(std::move(keep_alive)) {}
  std::shared_ptr<StreamFeed> feed() { return feed_; }
  void OnWriteDone(bool ok) override { feed_->WriteDone(ok); }
  void OnCancel() override {
    feed_->Cancel();
    feed_->Finish({Code::kCancelled, "the client went away"});
  }
  void OnDone() override {
    feed_->Detach();
    feed_->Cancel();
    delete this;
  }

 private:
  std::shared_ptr<StreamFeed> feed_;
  std::shared_ptr<void> keep_alive_;
};

void StreamFeed::Push(api::ServiceLogsMessage m) {
  Step step;
  {
    MutexLock lock(mu_);
    if (finish_ || !stream_) return;
    queue_.push_back(std::move(m));
    step = NextLocked();
  }
  Take(step, &current_);
}

void StreamFeed::Finish(const Status& status) {
  Step step;
  {
    MutexLock lock(mu_);
    if (finish_) return;
    finish_ = status;
    step = NextLocked();
  }
  Take(step, &current_);
}

StreamFeed::Step StreamFeed::NextLocked() {
  if (writing_ || finished_ || !stream_) return {};
  if (!queue_.empty()) {
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    return {stream_, true, {}};
  }
  if (!finish_) return {};
  finished_ = true;
  return {stream_, false, ToGrpc(*finish_)};
}

void StreamFeed::Take(const Step& step, const api::ServiceLogsMessage* current) {
  if (step.stream == nullptr) return;
  if (step.write) {
    step.stream->StartWrite(current);
  } else {
    step.stream->Finish(step.finish);
  }
}

void StreamFeed::WriteDone(bool ok) {
  Step step;
  {
    MutexLock lock(mu_);
    writing_ = false;
    if (!ok) {
      // The client is gone: what is queued goes nowhere.
      queue_.clear();
      if (!finish_) finish_ = Status(Code::kCancelled, "the client went away");
    }
    step = NextLocked();
  }
  Take(step, &current_);
}

void StreamFeed::SetCancel(std::function<void()> cancel) {
  {
    MutexLock lock(mu_);
    if (!cancelled_) {
      cancel_ = std::move(cancel);
      return;
    }
  }
  if (cancel) cancel();
}

void StreamFeed::Cancel() {
  std::function<void()> cancel;
  {
    MutexLock lock(mu_);
    cancelled_ = true;
    cancel.swap(cancel_);
  }
  if (cancel) cancel();
}

void StreamFeed::Detach() {
  MutexLock lock(mu_);
  stream_ = nullptr;
  queue_.clear();
}

// A follower's relay of the leader's stream.
class LogRelay final : public grpc::ClientReadReactor<api::ServiceLogsMessage> {
 public:
  // What the cancel function reaches, valid until the relay is done.
  struct Handle {
    Mutex mu;
    LogRelay* relay SKEP_GUARDED_BY(mu) = nullptr;
  };

  LogRelay(std::shared_ptr<grpc::Channel> channel, const api::ServiceLogsRequest& req,
           const std::string& request_id, std::shared_ptr<LogFeed> feed,
           std::shared_ptr<Handle> handle)
      : stub_(api::Control::NewStub(std::move(channel))),
        req_(req),
        feed_(std::move(feed)),
        handle_(std::move(handle)) {
    {
      MutexLock lock(handle_->mu);
      handle_->relay = this;
    }
    ctx_.AddMetadata(kForwarded, "1");
    ctx_.AddMetadata(kRequestId, request_id);
    stub_->async()->ServiceLogs(&ctx_, &req_, this);
    StartRead(&msg_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows with the status
    feed_->Push(std::move(msg_));
    msg_ = api::ServiceLogsMessage();
    StartRead(&msg_);
  }
  void OnDone(const grpc::Status& status) override {
    {
      MutexLock lock(handle_->mu);
      handle_->relay = nullptr;
    }
    feed_->Finish(FromSkep(status) || status.ok()
                      ? FromGrpc(status)
                      : Unavailable("the leader did not answer: " + status.error_message()));
    delete this;
  }
  void Cancel() { ctx_.TryCancel(); }

 private:
  std::unique_ptr<api::Control::Stub> stub_;
  grpc::ClientContext ctx_;
  api::ServiceLogsRequest req_;
  api::ServiceLogsMessage msg_;
  std::shared_ptr<LogFeed> feed_;
  std::shared_ptr<Handle> handle_;
};

class Refusal final : public grpc::ServerWriteReactor<api::ServiceLogsMessage> {
 public:
  explicit Refusal(const Status& status) { Finish(ToGrpc(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerWriteReactor<api::ServiceLogsMessage>* RefuseLogs(const Status& status) {
  return new Refusal(status);
}

grpc::ServerWriteReactor<api::ServiceLogsMessage>* ServeLogs(ControlApi* api,
                                                             const api::ServiceLogsRequest& req,
                                                             const ControlApi::Call& call,
                                                             std::shared_ptr<void> keep_alive) {
  auto* stream = new LogStream(std::move(keep_alive));
  auto feed = stream->feed();
  feed->SetCancel(api->ServiceLogs(req, feed, call));
  return stream;
}

std::function<void()> ControlApi::ServiceLogs(const api::ServiceLogsRequest& req,
                                              std::shared_ptr<LogFeed> feed, const Call& call) {
  const Leadership l = ctx_.leadership();
  if (!l.leader) {
    if (call.forwarded || !l.Reachable()) {
      feed->Finish(call.forwarded
                       ? Status::NotLeader("leadership moved while the request was forwarded", "")
                       : ctx_.NoLeaderStatus());
      return {};
    }
    auto handle = std::make_shared<LogRelay::Handle>();
    new LogRelay(ctx_.ChannelTo(l.leader_info->addr), req, call.request_id, feed, handle);
    return [handle] {
      MutexLock lock(handle->mu);
      if (handle->relay) handle->relay->Cancel();
    };
  }
  if (!l.serving) {
    feed->Finish(Unavailable("the new leader is still catching up; try again"));
    return {};
  }
  if (req.tail() < -1) {
    feed->Finish(InvalidArgument("--tail must be a number of lines, or all"));
    return {};
  }
  // A service (name, ID, prefix), or else a task ID (or a unique prefix of one).
  std::string service_id, task_id;
  api::Service service;
  Status st = ResolveService(req.ref(), &service);
  if (st.ok()) {
    service_id = service.id();
  } else if (st.code() == Code::kNotFound) {
    std::vector<std::string> matches;
    ctx_.store().View([&](const ReadTx& tx) {
      if (tx.task(req.ref())) {
        matches = {req.ref()};
        return;
      }
      for (const auto* t : tx.tasks()) {
        if (t->id().rfind(req.ref(), 0) == 0) matches.push_back(t->id());
      }
    });
    if (matches.size() != 1) {
      feed->Finish(matches.empty() ? NotFound("no such service or task: " + req.ref())
                                   : InvalidArgument("task " + req.ref() + " is ambiguous (" +
                                                     std::to_string(matches.size()) +
                                                     " matches found)"));
      return {};
    }
    task_id = matches.front();
  } else {
    feed->Finish(st);
    return {};
  }
  const std::string id = dispatcher_->SubscribeLogs(service_id, task_id, req, feed);
  return [d = dispatcher_, id] { d->UnsubscribeLogs(id); };
}

}  // namespace skep::manager
