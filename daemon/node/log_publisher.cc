#include "daemon/node/log_publisher.h"

#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "daemon/executor/logfile.h"
#include "daemon/common/log.h"
#include "dispatcher.grpc.pb.h"

namespace skep::node {

namespace {

// How much one PublishLogs message carries at most.
constexpr size_t kBatchRecords = 512;
constexpr size_t kBatchBytes = 1 << 20;

}  // namespace

class LogPublishers::Publisher {
 public:
  Publisher(std::string tasks_dir, std::shared_ptr<grpc::Channel> channel, api::LogSubscription sub)
      : tasks_dir_(std::move(tasks_dir)),
        channel_(std::move(channel)),
        sub_(std::move(sub)),
        wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    wanted_.insert(sub_.task_ids().begin(), sub_.task_ids().end());
    thread_ = std::thread([this] { Run(); });
  }
  ~Publisher() {
    Cancel();
    if (thread_.joinable()) thread_.join();
    if (wake_ >= 0) ::close(wake_);
  }

  void SetTasks(const api::LogSubscription& sub) {
    std::lock_guard lock(mu_);
    wanted_.insert(sub.task_ids().begin(), sub.task_ids().end());
    Wake();
  }
  void Cancel() {
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
    }
    ctx_.TryCancel();
    Wake();
  }
  bool done() const {
    std::lock_guard lock(mu_);
    return done_;
  }

 private:
  struct Source {
    std::unique_ptr<executor::LogReader> reader;
    int wd = -1;
  };

  void Wake() {
    const uint64_t one = 1;
    (void)!::write(wake_, &one, sizeof(one));
  }

  bool Cancelled() const {
    std::lock_guard lock(mu_);
    return cancelled_;
  }

  // Sends the records of a task; false once the stream is broken.
  bool Send(grpc::ClientWriter<api::PublishLogsMessage>* w, const std::string& task_id,
            std::vector<executor::LogRecord> records) {
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
        if (!w->Write(msg)) return false;
        msg.clear_messages();
        bytes = 0;
      }
    }
    return msg.messages_size() == 0 || w->Write(msg);
  }

  void Run() {
    grpc::ClientContext* ctx = &ctx_;
    auto stub = api::Dispatcher::NewStub(channel_);
    api::PublishLogsResponse resp;
    auto writer = stub->PublishLogs(ctx, &resp);
    const bool follow = sub_.follow();
    const int ino = follow ? ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC) : -1;
    // New task directories appear under tasks_dir (a task that is just starting), which may
    // not exist yet on a node that never ran a task.
    if (ino >= 0) {
      std::error_code ec;
      std::filesystem::create_directories(tasks_dir_, ec);
    }
    const int parent_wd =
        ino >= 0 ? ::inotify_add_watch(ino, tasks_dir_.c_str(), IN_CREATE | IN_ONLYDIR) : -1;
    std::map<std::string, Source> sources;
    std::map<int, std::string> by_wd;
    bool ok = true;
    auto watch = [&](const std::string& id, Source& s) {
      if (ino < 0 || s.wd >= 0) return;
      const std::string dir = tasks_dir_ + "/" + id;
      s.wd = ::inotify_add_watch(ino, dir.c_str(), IN_MODIFY | IN_CREATE | IN_MOVED_TO);
      if (s.wd >= 0) by_wd[s.wd] = id;
    };
    auto add = [&](const std::string& id, bool first) {
      Source s;
      s.reader = std::make_unique<executor::LogReader>(tasks_dir_ + "/" + id);
      watch(id, s);  // before reading: an append in between is not missed
      // Tasks added to a following subscription later are read from their first line.
      auto records = s.reader->ReadExisting(first ? sub_.tail() : -1, sub_.since_ns());
      if (ok) ok = Send(writer.get(), id, std::move(records));
      sources.emplace(id, std::move(s));
    };
    std::set<std::string> initial;
    {
      std::lock_guard lock(mu_);
      initial = wanted_;
    }
    for (const auto& id : initial) {
      if (!ok || Cancelled()) break;
      add(id, true);
    }
    if (!follow && ok) {
      api::PublishLogsMessage close;
      close.set_subscription_id(sub_.id());
      close.set_close(true);
      ok = writer->Write(close);
    }
    while (follow && ok && !Cancelled()) {
      pollfd fds[2] = {{ino, POLLIN, 0}, {wake_, POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[1].revents & POLLIN) {
        uint64_t n;
        (void)!::read(wake_, &n, sizeof(n));
        std::set<std::string> wanted;
        {
          std::lock_guard lock(mu_);
          if (cancelled_) break;
          wanted = wanted_;
        }
        for (const auto& id : wanted) {
          if (ok && !sources.count(id)) add(id, false);
        }
      }
      if (fds[0].revents & POLLIN) {
        alignas(inotify_event) char buf[16 << 10];
        for (;;) {
          const ssize_t n = ::read(ino, buf, sizeof(buf));
          if (n <= 0) break;
          for (ssize_t off = 0; off < n;) {
            const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
            if (ev->wd == parent_wd && ev->len > 0) {
              auto it = sources.find(ev->name);
              if (it != sources.end()) watch(it->first, it->second);  // its directory is here
            }
            off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
          }
        }
        for (auto& [id, s] : sources) {
          if (ok) ok = Send(writer.get(), id, s.reader->ReadNew());
        }
      }
    }
    if (ino >= 0) ::close(ino);
    if (ok && !Cancelled()) writer->WritesDone();
    const grpc::Status st = writer->Finish();
    if (!st.ok() && st.error_code() != grpc::StatusCode::CANCELLED) {
      SKEP_LOG(debug, "agent", "log subscription {} ended: {}", sub_.id(), st.error_message());
    }
    std::lock_guard lock(mu_);
    done_ = true;
  }

  const std::string tasks_dir_;
  const std::shared_ptr<grpc::Channel> channel_;
  const api::LogSubscription sub_;
  const int wake_;
  grpc::ClientContext ctx_;
  mutable std::mutex mu_;
  std::set<std::string> wanted_;
  bool cancelled_ = false;
  bool done_ = false;
  std::thread thread_;
};

LogPublishers::LogPublishers(std::string tasks_dir,
                             std::function<std::shared_ptr<grpc::Channel>()> channel)
    : tasks_dir_(std::move(tasks_dir)), channel_(std::move(channel)) {}

LogPublishers::~LogPublishers() {
  StopAll();
}

void LogPublishers::Update(const std::vector<api::LogSubscription>& subs) {
  std::vector<std::shared_ptr<Publisher>> stopped;  // joined outside the lock
  {
    std::lock_guard lock(mu_);
    std::set<std::string> listed;
    for (const auto& s : subs)
      listed.insert(s.id());
    for (auto it = running_.begin(); it != running_.end();) {
      if (!listed.count(it->first) || it->second->done()) {
        if (listed.count(it->first)) finished_.insert(it->first);
        stopped.push_back(std::move(it->second));
        it = running_.erase(it);
      } else {
        ++it;
      }
    }
    std::erase_if(finished_, [&](const std::string& id) { return !listed.count(id); });
    for (const auto& s : subs) {
      if (finished_.count(s.id())) continue;
      if (auto it = running_.find(s.id()); it != running_.end()) {
        it->second->SetTasks(s);
        continue;
      }
      auto channel = channel_();
      if (!channel) continue;
      running_[s.id()] = std::make_shared<Publisher>(tasks_dir_, std::move(channel), s);
    }
  }
  stopped.clear();
}

void LogPublishers::StopAll() {
  std::map<std::string, std::shared_ptr<Publisher>> running;
  {
    std::lock_guard lock(mu_);
    running.swap(running_);
    finished_.clear();
  }
  running.clear();
}

}  // namespace skep::node
