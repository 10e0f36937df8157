#include "daemon/node/log_publisher.h"

#include <grpcpp/grpcpp.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <deque>
#include <filesystem>

#include "daemon/common/gate.h"
#include "daemon/common/log.h"
#include "daemon/executor/logfile.h"
#include "dispatcher.grpc.pb.h"

namespace skep::node {

namespace asio = boost::asio;

namespace {

// How much one PublishLogs message carries at most.
constexpr size_t kBatchRecords = 512;
constexpr size_t kBatchBytes = 1 << 20;

}  // namespace

// One subscription's answer. Its state is on its strand; the stream's completions come back to
// it through a gate (none once it has stopped).
class LogPublishers::Publisher : public std::enable_shared_from_this<Publisher> {
 public:
  Publisher(asio::any_io_executor io, std::string tasks_dir, api::LogSubscription sub)
      : strand_(asio::make_strand(io)),
        gate_(std::make_shared<Gate>(strand_)),
        tasks_dir_(std::move(tasks_dir)),
        sub_(std::move(sub)),
        inotify_(strand_) {}

  void Start(const std::shared_ptr<grpc::Channel>& channel) {
    gate_->Post([self = shared_from_this(), channel] { self->Begin(channel); });
  }
  void SetTasks(const api::LogSubscription& sub) {
    gate_->Post([self = shared_from_this(), sub] {
      for (const auto& id : sub.task_ids()) {
        if (self->ok_ && !self->sources_.count(id)) self->Add(id, false);
      }
      self->WriteNext();
    });
  }
  // Stops reading and cancels the stream.
  void Cancel() {
    gate_->Post([self = shared_from_this()] {
      self->cancelled_ = true;
      self->context_.TryCancel();
      self->Release();
      boost::system::error_code ec;
      self->inotify_.close(ec);
    });
  }
  // After Cancel: waits (at most `timeout`) until the stream is done; then nothing of it runs.
  void Drain(std::chrono::milliseconds timeout) { gate_->Drain(timeout); }
  bool done() const { return done_; }

 private:
  // The PublishLogs stream; it deletes itself when the call is done.
  class Writer final : public grpc::ClientWriteReactor<api::PublishLogsMessage> {
   public:
    explicit Writer(std::shared_ptr<Publisher> p) : p_(std::move(p)) { p_->gate_->Enter(); }
    void OnWriteDone(bool ok) override {
      p_->gate_->Post([p = p_, ok] { p->WriteDone(ok); });
    }
    void OnDone(const grpc::Status& status) override {
      p_->gate_->Post([p = p_, status] { p->Ended(status); });
      p_->done_ = true;
      auto gate = p_->gate_;
      delete this;
      gate->Leave();
    }

   private:
    std::shared_ptr<Publisher> p_;
  };

  struct Source {
    std::unique_ptr<executor::LogReader> reader;
    int wd = -1;
  };

  void Begin(const std::shared_ptr<grpc::Channel>& channel) {
    if (cancelled_) return;
    stub_ = api::Dispatcher::NewStub(channel);
    writer_ = new Writer(shared_from_this());
    stub_->async()->PublishLogs(&context_, &response_, writer_);
    // Held while this strand may still start a write: without it gRPC would end the reactor
    // (OnDone) as soon as the manager finishes the call between two writes.
    writer_->AddHold();
    held_ = true;
    writer_->StartCall();
    const bool follow = sub_.follow();
    if (follow) {
      const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
      if (fd >= 0) {
        inotify_.assign(fd);
        // New task directories appear under tasks_dir (a task that is just starting), which
        // may not exist yet on a node that never ran a task.
        std::error_code ec;
        std::filesystem::create_directories(tasks_dir_, ec);
        parent_wd_ = ::inotify_add_watch(fd, tasks_dir_.c_str(), IN_CREATE | IN_ONLYDIR);
      }
    }
    for (const auto& id : sub_.task_ids()) {
      if (!ok_) break;
      Add(id, true);
    }
    if (!follow) {
      api::PublishLogsMessage close;
      close.set_subscription_id(sub_.id());
      close.set_close(true);
      queue_.push_back(std::move(close));
      closing_ = true;
    } else {
      WaitForChanges();
    }
    WriteNext();
  }

  void Watch(const std::string& id, Source& s) {
    if (!inotify_.is_open() || s.wd >= 0) return;
    const std::string dir = tasks_dir_ + "/" + id;
    s.wd = ::inotify_add_watch(inotify_.native_handle(), dir.c_str(),
                               IN_MODIFY | IN_CREATE | IN_MOVED_TO);
  }

  // A task's log from its start (`first`: the subscription's tail and since) or from its first
  // line (a task the subscription gained).
  void Add(const std::string& id, bool first) {
    Source s;
    s.reader = std::make_unique<executor::LogReader>(tasks_dir_ + "/" + id);
    Watch(id, s);  // before reading: an append in between is not missed
    Queue(id, s.reader->ReadExisting(first ? sub_.tail() : -1, sub_.since_ns()));
    sources_.emplace(id, std::move(s));
  }

  void Queue(const std::string& task_id, std::vector<executor::LogRecord> records) {
    api::PublishLogsMessage msg;
    msg.set_subscription_id(sub_.id());
    size_t bytes = 0;
    for (auto& r : records) {
      api::LogMessage* m = msg.add_messages();
      m->set_task_id(task_id);
      m->set_time_ns(r.time_ns);
      m->set_stream(r.stream == executor::LogStream::kStderr ? api::LogMessage::STDERR
                                                             : api::LogMessage::STDOUT);
      m->set_partial(r.partial);
      bytes += r.data.size();
      m->set_data(std::move(r.data));
      if (static_cast<size_t>(msg.messages_size()) >= kBatchRecords || bytes >= kBatchBytes) {
        queue_.push_back(std::move(msg));
        msg = api::PublishLogsMessage();
        msg.set_subscription_id(sub_.id());
        bytes = 0;
      }
    }
    if (msg.messages_size() > 0) queue_.push_back(std::move(msg));
  }

  void WaitForChanges() {
    if (!inotify_.is_open() || cancelled_) return;
    inotify_.async_wait(asio::posix::stream_descriptor::wait_read,
                        [self = shared_from_this()](const boost::system::error_code& ec) {
                          if (ec || self->cancelled_) return;
                          self->Changed();
                        });
  }

  void Changed() {
    alignas(inotify_event) char buf[16 << 10];
    for (;;) {
      const ssize_t n = ::read(inotify_.native_handle(), buf, sizeof(buf));
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
        if (ev->wd == parent_wd_ && ev->len > 0) {
          auto it = sources_.find(ev->name);
          if (it != sources_.end()) Watch(it->first, it->second);  // its directory is here
        }
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      }
    }
    for (auto& [id, s] : sources_)
      Queue(id, s.reader->ReadNew());
    WriteNext();
    WaitForChanges();
  }

  void WriteNext() {
    if (writing_ || !ok_ || cancelled_ || !held_) return;  // !held_: no more writes start
    if (queue_.empty()) {
      if (closing_ && !writes_done_) {
        writes_done_ = true;
        writer_->StartWritesDone();
        Release();  // nothing more starts from here
      }
      return;
    }
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    writer_->StartWrite(&current_);
  }

  void WriteDone(bool ok) {
    writing_ = false;
    if (!ok) {
      ok_ = false;  // the stream broke; OnDone says why
      Release();
      return;
    }
    WriteNext();
  }

  // Lets the call end once nothing more will start on it.
  void Release() {
    if (!held_) return;
    held_ = false;
    writer_->RemoveHold();
  }

  void Ended(const grpc::Status& st) {
    writer_ = nullptr;
    ok_ = false;
    boost::system::error_code ec;
    inotify_.close(ec);
    if (!st.ok() && st.error_code() != grpc::StatusCode::CANCELLED) {
      SKEP_LOG(debug, "logs", "log subscription {} ended: {}", sub_.id(), st.error_message());
    }
  }

  asio::strand<asio::any_io_executor> strand_;
  std::shared_ptr<Gate> gate_;
  const std::string tasks_dir_;
  const api::LogSubscription sub_;
  std::unique_ptr<api::Dispatcher::Stub> stub_;
  grpc::ClientContext context_;
  api::PublishLogsResponse response_;
  std::atomic<bool> done_{false};  // the stream is over
  // All below: on the strand.
  Writer* writer_ = nullptr;  // until its OnDone
  asio::posix::stream_descriptor inotify_;
  int parent_wd_ = -1;
  std::map<std::string, Source> sources_;
  std::deque<api::PublishLogsMessage> queue_;
  api::PublishLogsMessage current_;  // the message being written
  bool writing_ = false;
  bool ok_ = true;        // the stream works
  bool closing_ = false;  // after what is queued, the stream is closed (without --follow)
  bool writes_done_ = false;
  bool cancelled_ = false;
  bool held_ = false;  // the writer's hold: operations may still start on it
};

LogPublishers::LogPublishers(asio::any_io_executor io, std::string tasks_dir)
    : io_(std::move(io)), tasks_dir_(std::move(tasks_dir)) {}

LogPublishers::~LogPublishers() = default;

void LogPublishers::Update(const std::vector<api::LogSubscription>& subs,
                           const std::shared_ptr<grpc::Channel>& channel) {
  std::set<std::string> listed;
  for (const auto& s : subs)
    listed.insert(s.id());
  for (auto it = running_.begin(); it != running_.end();) {
    if (!listed.count(it->first) || it->second->done()) {
      if (listed.count(it->first)) finished_.insert(it->first);
      it->second->Cancel();
      retired_.push_back(std::move(it->second));
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  std::erase_if(finished_, [&](const std::string& id) { return !listed.count(id); });
  std::erase_if(retired_, [](const auto& p) { return p->done(); });
  for (const auto& s : subs) {
    if (finished_.count(s.id())) continue;
    if (auto it = running_.find(s.id()); it != running_.end()) {
      it->second->SetTasks(s);
      continue;
    }
    if (!channel) continue;
    auto p = std::make_shared<Publisher>(io_, tasks_dir_, s);
    p->Start(channel);
    running_[s.id()] = std::move(p);
  }
}

void LogPublishers::StopAll() {
  for (auto& [id, p] : running_) {
    p->Cancel();
    retired_.push_back(std::move(p));
  }
  running_.clear();
  finished_.clear();
}

void LogPublishers::Drain(std::chrono::milliseconds timeout) {
  for (auto& p : retired_)
    p->Drain(timeout);
  retired_.clear();
}

}  // namespace skep::node
