#include "daemon/node/worker.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "daemon/common/clock.h"
#include "daemon/common/files.h"
#include "daemon/common/log.h"
#include "daemon/executor/containerd.h"
#include "daemon/executor/errors.h"
#include "daemon/executor/oci_spec.h"
#include "daemon/node/health_check.h"
#include "daemon/node/status_reporter.h"
#include "daemon/node/task_networks.h"
#include "daemon/node/task_starter.h"
#include "overlay/gossip/agent.h"

namespace skep::node {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kDefaultGraceNs = 10'000'000'000;

// This skepd's executable. After it was replaced on disk the new one at the same path serves.
std::string SelfBinary() {
  std::error_code ec;
  std::string p = fs::read_symlink("/proc/self/exe", ec).string();
  const std::string deleted = " (deleted)";
  if (p.size() > deleted.size() &&
      p.compare(p.size() - deleted.size(), deleted.size(), deleted) == 0) {
    p.resize(p.size() - deleted.size());
  }
  return p;
}

bool Terminal(api::TaskState s) {
  return s > api::TASK_RUNNING;
}

}  // namespace

// The task lifecycle: what the managers assigned against what containerd runs, reconciled one
// task at a time. The parts with a job of their own are the task's health check
// (health_check.h), its networks (task_networks.h) and the reports to the leader
// (status_reporter.h).
class Worker::Impl : public std::enable_shared_from_this<Worker::Impl> {
 public:
  Impl(WorkerOptions o, Report report)
      : options_(std::move(o)),
        pool_(3),
        strand_(asio::make_strand(io_)),
        containerd_(options_.containerd_socket, options_.containerd_namespace),
        registry_(options_.registry),
        networks_({options_.data_dir, options_.vtep, options_.node_id, options_.gossip}, io_,
                  pool_),
        starter_(options_, containerd_, registry_, networks_),
        reporter_(std::make_shared<StatusReporter>(strand_, std::move(report))) {
    if (options_.logger_binary.empty()) options_.logger_binary = SelfBinary();
  }

  void Start() {
    guard_.emplace(asio::make_work_guard(io_));
    thread_ = std::thread([this] { io_.run(); });
    auto self = shared_from_this();
    asio::post(strand_, [self] { self->Load(); });
    if (options_.gossip) {
      options_.gossip->OnTable(
          [weak = std::weak_ptr(self)](const std::string& network,
                                       const std::vector<gossip::TableEntry>& entries) {
            if (auto me = weak.lock()) {
              asio::post(me->strand_,
                         [me, network, entries] { me->networks_.SetTable(network, entries); });
            }
          });
    }
    asio::post(pool_, [self] { self->Attach(); });
  }

  void Stop() {
    stopping_ = true;
    reporter_->Stop();
    pool_.join();
    containerd_.StopExits();  // while the io_context runs: its callbacks end there
    guard_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  void Assign(std::vector<api::Task> tasks, std::vector<std::string> kept) {
    asio::post(strand_, [self = shared_from_this(), tasks = std::move(tasks),
                         kept = std::move(kept)] { self->OnAssign(tasks, kept); });
  }

  void SetNetworks(std::vector<api::Network> networks, uint16_t data_path_port,
                   std::vector<api::NetworkAttachment> node_attachments) {
    networks_.SetPort(data_path_port);  // before any VXLAN device is made
    asio::post(strand_, [self = shared_from_this(), networks = std::move(networks),
                         node_attachments = std::move(node_attachments)] {
      self->networks_.SetNetworks(networks, node_attachments);
      self->Publish();
    });
  }

  void SetRegistryAuth(std::map<std::string, api::RegistryAuth> auth) {
    asio::post(strand_, [self = shared_from_this(), auth = std::move(auth)]() mutable {
      self->registry_auth_ = std::move(auth);
    });
  }

  void Update(std::vector<api::Task> changed, std::vector<std::string> removed,
              std::vector<std::string> kept) {
    asio::post(strand_, [self = shared_from_this(), changed = std::move(changed),
                         removed = std::move(removed),
                         kept = std::move(kept)] { self->OnUpdate(changed, removed, kept); });
  }

  void Leave(std::chrono::milliseconds timeout) {
    auto done = std::make_shared<std::promise<void>>();
    auto future = done->get_future();
    asio::post(strand_, [self = shared_from_this(), done] {
      self->left_ = done;
      self->OnAssign({}, {});
      self->MaybeLeft();
    });
    future.wait_for(timeout);
  }

 private:
  struct Local {
    api::Task task;                      // the assignment, with the status as this node last saw it
    bool container = false;              // a container exists for it
    bool busy = false;                   // an operation on it runs on the pool
    bool forgotten = false;              // no longer assigned: its container goes, then the record
    std::optional<uint32_t> early_exit;  // an exit code seen while starting
    std::string stop_signal;
    std::unique_ptr<asio::steady_timer> kill_timer;
    bool oom_killed = false;    // the kernel killed a process of it for memory
    bool oom_reported = false;  // its failure says so
    // The check it runs with: the service's, over the image's HEALTHCHECK (set at start).
    std::optional<api::HealthConfig> health;
    // While it runs with a check: the check's state, and its next probe.
    std::optional<HealthCheck> check;
    std::unique_ptr<asio::steady_timer> probe_timer;
    bool unhealthy = false;  // killed for it; its exit says so
  };

  // ---- on a pool thread: which containers exist, then every exit --------------------------

  // Re-attach: which containers still exist, then every exit from now on (the subscription
  // also reports those that exited while skepd was down).
  void Attach() {
    std::vector<executor::ContainerRecord> records;
    try {
      for (auto& r : containerd_.List()) {
        if (r.labels.count(kTaskLabel)) records.push_back(std::move(r));
      }
    } catch (const std::exception& e) {
      SKEP_LOG(warn, "worker", "cannot list containers (is containerd running at {}?): {}",
               options_.containerd_socket, e.what());
    }
    auto self = shared_from_this();
    asio::post(strand_, [self, records] { self->Reattach(records); });
    std::weak_ptr weak = self;
    try {
      containerd_.SubscribeExits(
          io_.get_executor(),
          [weak](const std::string& id, uint32_t code, int64_t) {
            if (auto me = weak.lock())
              asio::post(me->strand_, [me, id, code] { me->OnExit(id, code); });
          },
          [weak](const std::string& id) {
            if (auto me = weak.lock()) asio::post(me->strand_, [me, id] { me->OnOom(id); });
          });
    } catch (const std::exception& e) {
      SKEP_LOG(error, "worker", "cannot subscribe to containerd's events: {}", e.what());
    }
  }

  // ---- on the strand: the task store --------------------------------------------------------

  std::string StorePath() const { return options_.data_dir + "/tasks.pb"; }
  std::string TaskDir(const std::string& id) const { return starter_.TaskDir(id); }

  void Load() {
    std::ifstream in(StorePath(), std::ios::binary);
    if (!in) return;
    api::WorkerTasks stored;
    if (!stored.ParseFromIstream(&in)) {
      SKEP_LOG(error, "worker", "{} is damaged; its tasks are ignored (their containers go)",
               StorePath());
      return;
    }
    for (const auto& t : stored.tasks())
      tasks_[t.id()].task = t;
    for (const auto& [id, h] : stored.health()) {
      if (auto it = tasks_.find(id); it != tasks_.end()) it->second.health = h;
    }
  }

  void Persist() {
    api::WorkerTasks out;
    for (const auto& [id, l] : tasks_) {
      *out.add_tasks() = l.task;
      if (l.health) (*out.mutable_health())[id] = *l.health;
    }
    try {
      files::WriteAtomically(StorePath(), out.SerializeAsString(), 0600);
    } catch (const std::exception& e) {
      SKEP_LOG(error, "worker", "cannot save the task store: {}", e.what());
    }
  }

  // The containers containerd has, against the tasks in the store.
  void Reattach(const std::vector<executor::ContainerRecord>& records) {
    attached_ = true;
    for (const auto& r : records) {
      auto it = tasks_.find(r.id);
      if (it == tasks_.end()) {
        // A container this node has no record of: it goes once the managers' list says so.
        Local& l = tasks_[r.id];
        l.task.set_id(r.id);
        l.task.set_desired_state(api::TASK_SHUTDOWN);
        l.task.mutable_status()->set_state(api::TASK_RUNNING);
        l.container = true;
        l.forgotten = true;
        continue;
      }
      it->second.container = true;
      networks_.ReattachTask(it->second.task);
      ReattachOne(it->second, r.task);
    }
    // Records whose container is gone: a task that was running has ended unseen.
    for (auto& [id, l] : tasks_) {
      const auto s = l.task.status().state();
      if (!l.container && s >= api::TASK_STARTING && s <= api::TASK_RUNNING) {
        SetStatus(l, api::TASK_FAILED, "container is gone", "the container disappeared");
      } else if (!l.container && s == api::TASK_PREPARING) {
        SetStatus(l, api::TASK_FAILED, "interrupted", "task: skepd restarted while preparing it");
      }
    }
    if (assigned_once_) ReconcileAll();
    Publish();
    asio::post(pool_, [self = shared_from_this()] { self->networks_.ApplyMesh(); });
  }

  void ReattachOne(Local& l, const executor::TaskStatus& found) {
    const auto was = l.task.status().state();
    if (found.state != executor::TaskState::kRunning && was >= api::TASK_PREPARING &&
        !Terminal(was)) {
      // It ended, or never got started, while skepd was down: said so, for its restart policy
      // (and so that nothing waits for it to stop).
      const bool exited = found.state == executor::TaskState::kStopped;
      if (exited && found.exit_code == 0) {
        SetStatus(l, api::TASK_COMPLETE, "finished while skepd was down", "");
      } else {
        SetStatus(l, api::TASK_FAILED, "ended while skepd was down",
                  exited ? "task: non-zero exit (" + std::to_string(found.exit_code) + ")"
                         : "task: not running when skepd restarted",
                  exited ? static_cast<int32_t>(found.exit_code) : 0);
      }
      return;
    }
    if (found.state != executor::TaskState::kRunning) return;
    SKEP_LOG(info, "worker", "task {} still runs (pid {})", l.task.id(), found.pid);
    // Its checks go on where they were (a healthy task stays healthy meanwhile).
    if (l.health) {
      l.check.emplace(*l.health, HealthCheck::Clock::now(),
                      l.task.status().health() == api::HEALTH_HEALTHY);
      ScheduleProbe(l);
    }
  }

  // ---- on the strand: assignments -----------------------------------------------------------

  // An assignment, new or changed; the status stays the node's.
  void Upsert(const api::Task& t) {
    Local& l = tasks_[t.id()];
    const bool fresh = !l.task.has_status() || l.task.status().state() < api::TASK_ASSIGNED;
    api::TaskStatus keep = l.task.status();
    l.task = t;
    l.forgotten = false;
    if (fresh) {
      keep.set_state(api::TASK_ASSIGNED);
      keep.set_timestamp(NowNanos());
    }
    *l.task.mutable_status() = keep;
  }

  void OnUpdate(const std::vector<api::Task>& changed, const std::vector<std::string>& removed,
                const std::vector<std::string>& kept) {
    for (const auto& t : changed)
      Upsert(t);
    for (const auto& id : removed) {
      if (auto it = tasks_.find(id); it != tasks_.end()) it->second.forgotten = true;
    }
    Persist();
    Publish();
    if (attached_ && assigned_once_) {
      for (const auto& t : changed)
        Reconcile(t.id());
      for (const auto& id : removed)
        Reconcile(id);
    }
    RemoveLogs(kept);
  }

  void OnAssign(const std::vector<api::Task>& assigned, const std::vector<std::string>& kept) {
    std::set<std::string> ids;
    for (const auto& t : assigned) {
      ids.insert(t.id());
      Upsert(t);
    }
    for (auto& [id, l] : tasks_) {
      if (!ids.count(id)) l.forgotten = true;
    }
    assigned_once_ = true;
    Persist();
    Publish();
    if (attached_) ReconcileAll();
    reporter_->Flush();  // a new session: what was not taken yet goes again
    RemoveLogs(kept);
  }

  // The directories (logs) of tasks the node neither runs nor keeps in a history go.
  void RemoveLogs(const std::vector<std::string>& kept) {
    kept_ = std::set<std::string>(kept.begin(), kept.end());
    std::set<std::string> keep = kept_;
    for (const auto& [id, l] : tasks_)
      keep.insert(id);
    asio::post(pool_, [dir = options_.data_dir + "/tasks", keep = std::move(keep)] {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(dir, ec)) {
        if (!keep.count(e.path().filename().string())) fs::remove_all(e.path(), ec);
      }
    });
  }

  // Leaving: done once no task is left.
  void MaybeLeft() {
    if (left_ && tasks_.empty()) {
      left_->set_value();
      left_.reset();
    }
  }

  // What the node publishes on its networks: every live task's networks, and the endpoints of
  // those that take connections (running and, with a check, healthy).
  void Publish() {
    std::vector<const api::Task*> live, serving;
    for (const auto& [id, l] : tasks_) {
      const auto state = l.task.status().state();
      if (l.forgotten || l.task.desired_state() > api::TASK_RUNNING || Terminal(state)) continue;
      live.push_back(&l.task);
      if (state == api::TASK_RUNNING &&
          (!l.health || l.task.status().health() == api::HEALTH_HEALTHY)) {
        serving.push_back(&l.task);
      }
    }
    networks_.Publish(live, serving);
  }

  // ---- on the strand: reconciling a task ----------------------------------------------------

  void ReconcileAll() {
    std::vector<std::string> ids;
    for (const auto& [id, l] : tasks_)
      ids.push_back(id);
    for (const auto& id : ids)
      Reconcile(id);
  }

  void Reconcile(const std::string& id) {
    auto it = tasks_.find(id);
    if (it == tasks_.end() || stopping_) return;
    Local& l = it->second;
    if (l.busy) return;
    const auto state = l.task.status().state();
    const bool want_running = !l.forgotten && l.task.desired_state() <= api::TASK_RUNNING;
    if (want_running) {
      if (state < api::TASK_PREPARING) StartTask(l);
      return;
    }
    if (l.container && !Terminal(state)) {
      StopTask(l);
      return;
    }
    if (!Terminal(state)) {
      SetStatus(l, api::TASK_SHUTDOWN, "shutdown before it started", "");
    }
    if (l.container) {
      RemoveContainer(l);
      return;
    }
    if (l.forgotten) {
      tasks_.erase(it);
      Persist();
      Publish();
      if (!kept_.count(id)) {
        asio::post(pool_, [dir = TaskDir(id)] {
          std::error_code ec;
          fs::remove_all(dir, ec);
        });
      }
      MaybeLeft();
    }
  }

  void SetStatus(Local& l, api::TaskState state, const std::string& message, const std::string& err,
                 int32_t exit_code = 0, int32_t pid = 0) {
    auto* s = l.task.mutable_status();
    if (state < s->state()) return;  // never backwards
    s->set_state(state);
    s->set_timestamp(NowNanos());
    s->set_message(message);
    s->set_err(err);
    if (exit_code) s->set_exit_code(exit_code);
    if (pid) {
      s->set_pid(pid);
      s->set_container_id(l.task.id());
    }
    Changed(l);
  }

  // The task's status changed: stored, reported, and published.
  void Changed(const Local& l) {
    Persist();
    if (!l.forgotten) reporter_->Set(l.task.id(), l.task.status());
    reporter_->Flush();
    Publish();
  }

  void StartTask(Local& l) {
    l.busy = true;
    SetStatus(l, api::TASK_PREPARING, "preparing", "");
    std::optional<api::RegistryAuth> auth;
    if (auto it = registry_auth_.find(l.task.service_id()); it != registry_auth_.end())
      auth = it->second;
    asio::post(pool_,
               [self = shared_from_this(), task = l.task, nets = networks_.NetworksOf(l.task),
                auth] { self->RunStart(task, nets, auth); });
  }

  void StopTask(Local& l) {
    if (l.kill_timer) return;  // already stopping
    const std::string id = l.task.id();
    const auto& container = l.task.spec().container();
    const int64_t grace =
        container.stop_grace_period_ns() > 0 ? container.stop_grace_period_ns() : kDefaultGraceNs;
    int signal = SIGTERM;
    const std::string name =
        !container.stop_signal().empty() ? container.stop_signal() : l.stop_signal;
    if (!name.empty()) {
      try {
        signal = executor::ParseSignal(name);
      } catch (const std::exception&) {
      }
    }
    SKEP_LOG(info, "worker", "stopping task {} (signal {}, then SIGKILL after {} ms)", id, signal,
             grace / 1'000'000);
    auto self = shared_from_this();
    asio::post(pool_, [self, id, signal] { self->Signal(id, signal, false); });
    l.kill_timer = std::make_unique<asio::steady_timer>(strand_, std::chrono::nanoseconds(grace));
    l.kill_timer->async_wait([self, id](const boost::system::error_code& ec) {
      if (ec) return;
      auto it = self->tasks_.find(id);
      if (it == self->tasks_.end() || !it->second.container) return;
      asio::post(self->pool_, [self, id] { self->Signal(id, SIGKILL, true); });
    });
  }

  void RemoveContainer(Local& l) {
    l.busy = true;
    asio::post(pool_, [self = shared_from_this(), id = l.task.id()] {
      std::string err;
      try {
        self->containerd_.Delete(id);
        self->networks_.DetachTask(id);
      } catch (const std::exception& e) {
        err = e.what();
      }
      asio::post(self->strand_, [self, id, err] {
        auto it = self->tasks_.find(id);
        if (it == self->tasks_.end()) return;
        it->second.busy = false;
        if (!err.empty()) {
          SKEP_LOG(warn, "worker", "cannot remove the container of task {}: {}", id, err);
          return;  // tried again at the next reconciliation
        }
        it->second.container = false;
        self->Reconcile(id);
      });
    });
  }

  // ---- on the strand: health checks (the decisions are health_check.h's) --------------------
  //
  // Probes run in the container through containerd's exec, one at a time, `interval` apart.

  void StartHealth(Local& l) {
    if (!l.health) return;
    l.check.emplace(*l.health, HealthCheck::Clock::now());
    SetHealth(l, api::HEALTH_STARTING, "");
    ScheduleProbe(l);
  }

  void ScheduleProbe(Local& l) {
    l.probe_timer = std::make_unique<asio::steady_timer>(strand_, ProbeInterval(l.check->config()));
    l.probe_timer->async_wait(
        [self = shared_from_this(), id = l.task.id()](const boost::system::error_code& ec) {
          if (!ec) self->Probe(id);
        });
  }

  // The task `id` while it is still being checked (running, in its container, not yet found
  // unhealthy); a probe for any other is dropped.
  Local* Checked(const std::string& id) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return nullptr;
    Local& l = it->second;
    if (!l.check || !l.container || l.unhealthy || l.task.status().state() != api::TASK_RUNNING) {
      return nullptr;
    }
    return &l;
  }

  void Probe(const std::string& id) {
    Local* l = Checked(id);
    if (l == nullptr) return;
    const api::HealthConfig& h = l->check->config();
    asio::post(pool_, [self = shared_from_this(), id, exec_id = l->check->NextExecId(),
                       argv = ProbeArgv(h), timeout = ProbeTimeout(h), dir = TaskDir(id)] {
      executor::Containerd::ExecResult r;
      try {
        r = self->containerd_.Exec(id, exec_id, argv, timeout, dir);
      } catch (const std::exception& e) {
        r.exit_code = -1;
        r.output = e.what();
      }
      asio::post(self->strand_, [self, id, r] { self->OnProbe(id, r); });
    });
  }

  void OnProbe(const std::string& id, const executor::Containerd::ExecResult& r) {
    Local* l = Checked(id);
    if (l == nullptr) return;
    const api::HealthState health = l->check->OnProbe(r.exit_code, HealthCheck::Clock::now());
    SetHealth(*l, health, r.output);
    if (health == api::HEALTH_UNHEALTHY) {
      l->unhealthy = true;
      SKEP_LOG(info, "worker", "task {} is unhealthy after {} failed checks: killing it", id,
               l->check->failures());
      asio::post(pool_, [self = shared_from_this(), id] { self->Signal(id, SIGKILL, true); });
      return;
    }
    ScheduleProbe(*l);
  }

  // Reported when the state changes (the output goes with it, not on its own).
  void SetHealth(Local& l, api::HealthState health, const std::string& output) {
    auto* s = l.task.mutable_status();
    const bool changed = s->health() != health;
    s->set_health(health);
    s->set_health_output(output);
    if (changed) Changed(l);
  }

  // ---- on the strand: what containerd reports -----------------------------------------------

  // The kernel killed one of the task's processes for memory: its exit (before or after this)
  // says so.
  void OnOom(const std::string& id) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return;
    Local& l = it->second;
    l.oom_killed = true;
    const auto& s = l.task.status();
    if (s.state() == api::TASK_FAILED && !l.oom_reported) {
      l.oom_reported = true;
      SetStatus(l, api::TASK_FAILED, s.message(), s.err() + ": OOM killed", s.exit_code());
    }
  }

  void OnExit(const std::string& id, uint32_t code) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return;
    Local& l = it->second;
    if (l.busy && !l.container) {
      l.early_exit = code;  // the start operation is still finishing
      return;
    }
    l.kill_timer.reset();
    l.probe_timer.reset();
    if (!Terminal(l.task.status().state())) SetExited(l, code);
    if (!l.busy) Reconcile(id);  // removes the container
  }

  void SetExited(Local& l, uint32_t code) {
    const auto exit_code = static_cast<int32_t>(code);
    if (l.forgotten || l.task.desired_state() > api::TASK_RUNNING) {
      SetStatus(l, api::TASK_SHUTDOWN, "shutdown", "", exit_code);
    } else if (l.unhealthy) {
      SetStatus(l, api::TASK_FAILED, "unhealthy", "task: unhealthy container", exit_code);
    } else if (code == 0) {
      SetStatus(l, api::TASK_COMPLETE, "finished", "");
    } else {
      l.oom_reported = l.oom_killed;
      SetStatus(l, api::TASK_FAILED, "exited",
                "task: non-zero exit (" + std::to_string(code) + ")" +
                    (l.oom_killed ? ": OOM killed" : ""),
                exit_code);
    }
  }

  // ---- on the pool ----------------------------------------------------------------------------

  void Signal(const std::string& id, int signal, bool all) {
    try {
      containerd_.Kill(id, signal, all);
    } catch (const std::exception& e) {
      SKEP_LOG(debug, "worker", "signal {} to task {}: {}", signal, id, e.what());
    }
  }

  void RunStart(const api::Task& task, const std::vector<dataplane::OverlayNetworkInfo>& nets,
                const std::optional<api::RegistryAuth>& auth) {
    auto self = shared_from_this();
    const std::string id = task.id();
    auto progress = [&](api::TaskState state, const std::string& message) {
      asio::post(strand_, [self, id, state, message] {
        auto it = self->tasks_.find(id);
        if (it != self->tasks_.end()) self->SetStatus(it->second, state, message, "");
      });
    };
    try {
      TaskStarter::Started started = starter_.Start(task, nets, auth, progress);
      asio::post(strand_, [self, id, started] { self->OnStarted(id, started); });
    } catch (const TaskStarter::Failure& f) {
      asio::post(strand_, [self, id, state = f.state, err = std::string(f.what())] {
        self->OnStartFailed(id, state, err);
      });
    }
  }

  // ---- on the strand: a start's outcome -----------------------------------------------------

  void OnStarted(const std::string& id, const TaskStarter::Started& started) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return;
    Local& l = it->second;
    l.busy = false;
    l.container = true;
    l.stop_signal = started.stop_signal;
    l.health = started.health;
    l.task.mutable_status()->set_addr(started.addr);
    // With a check, it is running but not yet healthy from its first report on, so that
    // nothing counts it as ready in between.
    if (l.health) l.task.mutable_status()->set_health(api::HEALTH_STARTING);
    SetStatus(l, api::TASK_RUNNING, "started", "", 0, static_cast<int32_t>(started.pid));
    StartHealth(l);
    if (l.early_exit) {
      const uint32_t code = *l.early_exit;
      l.early_exit.reset();
      OnExit(id, code);
      return;
    }
    Reconcile(id);  // desired state may have changed meanwhile
  }

  void OnStartFailed(const std::string& id, api::TaskState failure, const std::string& err) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return;
    it->second.busy = false;
    SetStatus(it->second, failure, failure == api::TASK_REJECTED ? "rejected" : "failed", err);
    Reconcile(id);
  }

  WorkerOptions options_;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
  std::thread thread_;
  asio::thread_pool pool_;
  asio::strand<asio::io_context::executor_type> strand_;
  executor::Containerd containerd_;
  executor::Registry registry_;
  TaskNetworks networks_;
  TaskStarter starter_;
  std::shared_ptr<StatusReporter> reporter_;
  std::atomic<bool> stopping_{false};

  // On the strand.
  std::map<std::string, Local> tasks_;
  // The registry logins of services with tasks here, by service ID, from the last session
  // message: in memory only (never in tasks.pb).
  std::map<std::string, api::RegistryAuth> registry_auth_;
  bool attached_ = false;                     // containerd's containers are known
  bool assigned_once_ = false;                // a complete list came from the managers
  std::shared_ptr<std::promise<void>> left_;  // Leave waits for every task to go
  std::set<std::string> kept_;                // ended tasks in the history: their logs stay
};

Worker::Worker(WorkerOptions options, Report report)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(report))) {}

Worker::~Worker() {
  Stop();
}

void Worker::Start() {
  impl_->Start();
}

void Worker::Stop() {
  if (impl_) impl_->Stop();
}

void Worker::Assign(std::vector<api::Task> tasks, std::vector<std::string> kept) {
  impl_->Assign(std::move(tasks), std::move(kept));
}

void Worker::SetNetworks(std::vector<api::Network> networks, uint16_t data_path_port,
                         std::vector<api::NetworkAttachment> node_attachments) {
  impl_->SetNetworks(std::move(networks), data_path_port, std::move(node_attachments));
}

void Worker::SetRegistryAuth(std::map<std::string, api::RegistryAuth> auth) {
  impl_->SetRegistryAuth(std::move(auth));
}

void Worker::Update(std::vector<api::Task> changed, std::vector<std::string> removed,
                    std::vector<std::string> kept) {
  impl_->Update(std::move(changed), std::move(removed), std::move(kept));
}

void Worker::Leave(std::chrono::milliseconds timeout) {
  impl_->Leave(timeout);
}

}  // namespace skep::node
