#include "daemon/node/worker.h"

#include <algorithm>
#include <csignal>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "daemon/common/clock.h"
#include "daemon/executor/containerd.h"
#include "daemon/executor/errors.h"
#include "daemon/executor/oci_spec.h"
#include "daemon/common/log.h"
#include "daemon/common/proto_bytes.h"
#include "overlay/dataplane/overlay_dataplane.h"
#include "overlay/dataplane/service_mesh.h"
#include "daemon/common/files.h"
#include "daemon/node/state.h"
#include "overlay/dataplane/task_network.h"
#include "overlay/discovery.h"
#include "overlay/dns/server.h"
#include "overlay/gossip/agent.h"

namespace skep::node {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using dataplane::MeshNetwork;
using dataplane::OverlayDataplane;
using dataplane::OverlayNetworkInfo;
using dataplane::OverlayPeer;
using dataplane::PublishedPort;
using dataplane::ServiceMesh;
using dataplane::TaskNetwork;

namespace {

constexpr char kTaskLabel[] = "skep.task.id";
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

std::optional<api::HealthConfig> EffectiveHealthcheck(
    const api::ContainerSpec& spec, const std::optional<executor::Healthcheck>& image) {
  api::HealthConfig out;
  if (image) {
    out.mutable_test()->Assign(image->test.begin(), image->test.end());
    out.set_interval_ns(image->interval_ns);
    out.set_timeout_ns(image->timeout_ns);
    out.set_start_period_ns(image->start_period_ns);
    out.set_retries(image->retries);
  }
  if (spec.has_healthcheck()) {
    const api::HealthConfig& h = spec.healthcheck();
    if (h.test_size() > 0) *out.mutable_test() = h.test();
    if (h.interval_ns()) out.set_interval_ns(h.interval_ns());
    if (h.timeout_ns()) out.set_timeout_ns(h.timeout_ns());
    if (h.start_period_ns()) out.set_start_period_ns(h.start_period_ns());
    if (h.retries()) out.set_retries(h.retries());
  }
  if (out.test_size() == 0 || out.test(0) == "NONE") return std::nullopt;
  return out;
}

class Worker::Impl : public std::enable_shared_from_this<Worker::Impl> {
 public:
  Impl(WorkerOptions o, Report report)
      : options_(std::move(o)),
        report_(std::move(report)),
        pool_(3),
        strand_(asio::make_strand(io_)),
        containerd_(options_.containerd_socket, options_.containerd_namespace),
        registry_(options_.registry),
        network_(options_.data_dir) {
    if (options_.logger_binary.empty()) options_.logger_binary = SelfBinary();
    if (!options_.vtep.empty()) {
      overlay_ = std::make_unique<OverlayDataplane>(options_.data_dir, options_.vtep);
      mesh_ = std::make_unique<ServiceMesh>(options_.vtep, overlay_.get(), &network_);
      // Names for the tasks on overlay networks, at 127.0.0.11 in each one's namespace; the
      // rest goes to this node's resolvers.
      dns_ = std::make_unique<dns::DnsServer>(
          io_, dns::DnsServer::UpstreamsFromResolvConf("/etc/resolv.conf"));
      mesh_->on_names = [this](const std::string& id, const std::string& netns,
                               const ServiceMesh::Names& names, bool gone) {
        OnNames(id, netns, names, gone);
      };
    }
  }

  void Start() {
    guard_.emplace(asio::make_work_guard(io_));
    thread_ = std::thread([this] { io_.run(); });
    auto self = shared_from_this();
    asio::post(strand_, [self] { self->Load(); });
    if (options_.gossip) {
      options_.gossip->OnTable([weak = std::weak_ptr(self)](
                                   const std::string& network,
                                   const std::vector<gossip::TableEntry>& entries) {
        if (auto me = weak.lock()) {
          asio::post(me->strand_, [me, network, entries] { me->OnTable(network, entries); });
        }
      });
    }
    // Re-attach: which containers still exist, then every exit from now on (the subscription
    // also reports those that exited while skepd was down).
    asio::post(pool_, [self] {
      std::vector<executor::ContainerRecord> records;
      try {
        for (auto& r : self->containerd_.List()) {
          if (r.labels.count(kTaskLabel)) records.push_back(std::move(r));
        }
      } catch (const std::exception& e) {
        SKEP_LOG(warn, "worker", "cannot list containers (is containerd running at {}?): {}",
                 self->options_.containerd_socket, e.what());
      }
      asio::post(self->strand_, [self, records] { self->Reattach(records); });
      try {
        self->containerd_.SubscribeExits(
            [weak = std::weak_ptr(self)](const std::string& id, uint32_t code, int64_t at) {
              if (auto me = weak.lock()) {
                asio::post(me->strand_, [me, id, code, at] { me->OnExit(id, code, at); });
              }
            },
            [weak = std::weak_ptr(self)](const std::string& id) {
              if (auto me = weak.lock()) asio::post(me->strand_, [me, id] { me->OnOom(id); });
            });
      } catch (const std::exception& e) {
        SKEP_LOG(error, "worker", "cannot subscribe to containerd's events: {}", e.what());
      }
    });
  }

  void Stop() {
    stopping_ = true;
    pool_.join();
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
    // Before any VXLAN device is made (the port is the swarm's, set once at init).
    if (overlay_) overlay_->SetPort(data_path_port);
    asio::post(strand_, [self = shared_from_this(), networks = std::move(networks),
                         node_attachments = std::move(node_attachments)] {
      self->OnNetworks(networks, node_attachments);
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
    api::Task task;          // the assignment, with the status as this node last saw it
    bool container = false;  // a container exists for it
    bool busy = false;       // an operation on it runs on the pool
    bool forgotten = false;  // no longer assigned: its container goes, then the record
    std::optional<std::pair<uint32_t, int64_t>> early_exit;  // an exit seen while starting
    std::string stop_signal;
    std::unique_ptr<asio::steady_timer> kill_timer;
    bool oom_killed = false;  // the kernel killed a process of it for memory
    // Its health check, while it runs.
    std::unique_ptr<asio::steady_timer> health_timer;
    std::chrono::steady_clock::time_point health_started;
    int health_failures = 0;  // consecutive, outside the start period
    bool healthy_once = false;
    bool unhealthy = false;  // killed for it; its exit says so
    uint32_t probes = 0;
    // The check it runs with: the service's, over the image's HEALTHCHECK (set at start).
    std::optional<api::HealthConfig> health;
  };

  // ---- on the strand ------------------------------------------------------------------------

  std::string StorePath() const { return options_.data_dir + "/tasks.pb"; }
  std::string TaskDir(const std::string& id) const { return options_.data_dir + "/tasks/" + id; }

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
      if (mesh_ && it->second.task.networks_size() > 0) {
        // Which networks are ingress is not known yet (networks come with the session): the
        // mesh leaves tasks on ingress alone out itself.
        mesh_->AddTask(r.id, options_.data_dir + "/netns/" + r.id, NetworkIds(it->second.task));
      }
      Local& l = it->second;
      const auto was = l.task.status().state();
      if (r.task.state != executor::TaskState::kRunning && was >= api::TASK_PREPARING &&
          !Terminal(was)) {
        // It ended, or never got started, while skepd was down: said so, for its restart
        // policy (and so that nothing waits for it to stop).
        const bool exited = r.task.state == executor::TaskState::kStopped;
        if (exited && r.task.exit_code == 0) {
          SetStatus(l, api::TASK_COMPLETE, "finished while skepd was down", "");
        } else {
          SetStatus(l, api::TASK_FAILED, "ended while skepd was down",
                    exited ? "task: non-zero exit (" + std::to_string(r.task.exit_code) + ")"
                           : "task: not running when skepd restarted",
                    exited ? static_cast<int32_t>(r.task.exit_code) : 0);
        }
        continue;
      }
      if (r.task.state == executor::TaskState::kRunning) {
        SKEP_LOG(info, "worker", "task {} still runs (pid {})", r.id, r.task.pid);
        // Its checks go on where they were (a healthy task stays healthy meanwhile).
        if (const api::HealthConfig* h = HealthOf(it->second)) {
          it->second.healthy_once = it->second.task.status().health() == api::HEALTH_HEALTHY;
          it->second.health_started = std::chrono::steady_clock::now();
          ScheduleProbe(it->second, *h);
        }
      }
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
    SyncGossip();
    ApplyMesh();
  }

  static std::vector<std::string> NetworkIds(const api::Task& t) {
    std::vector<std::string> ids;
    for (const auto& a : t.networks())
      ids.push_back(a.network_id());
    return ids;
  }

  // A task on an overlay network other than ingress resolves names through the embedded DNS
  // server (and its VIPs are balanced in its namespace).
  bool UsesServiceDiscovery(const api::Task& t, const std::vector<OverlayNetworkInfo>& nets) {
    for (const auto& a : t.networks()) {
      auto it = std::find_if(nets.begin(), nets.end(),
                             [&](const auto& n) { return n.id == a.network_id(); });
      if (it != nets.end() && !it->ingress) return true;
    }
    return false;
  }

  // Called by the mesh's Apply, one at a time (on the pool).
  void OnNames(const std::string& id, const std::string& netns, const ServiceMesh::Names& names,
               bool gone) {
    if (gone) {
      if (dns_listening_.erase(id)) dns_->RemoveListener(id);
      return;
    }
    dns_->SetNames(id, std::make_shared<const dns::Names>(dns::Names{names}));
    if (dns_listening_.count(id)) return;
    try {
      dns_->AddListener(id, netns);
      dns_listening_.insert(id);
    } catch (const std::exception& e) {
      SKEP_LOG(warn, "worker", "task {}: no DNS: {}", id, e.what());
    }
  }

  // The task's resolv.conf: the embedded server, with the host's search domains.
  std::string WriteResolvConf(const std::string& id) {
    std::ostringstream out;
    out << "nameserver 127.0.0.11\n";
    std::ifstream host("/etc/resolv.conf");
    for (std::string line; std::getline(host, line);) {
      if (line.rfind("search", 0) == 0 || line.rfind("domain", 0) == 0) out << line << "\n";
    }
    out << "options ndots:0\n";
    const std::string path = TaskDir(id) + "/resolv.conf";
    fs::create_directories(TaskDir(id));
    files::WriteAtomically(path, out.str(), 0644);
    return path;
  }

  void ApplyMesh() {
    if (mesh_) asio::post(pool_, [self = shared_from_this()] { self->mesh_->Apply(); });
  }

  // ---- overlay networks: what is wanted (on the strand) and applying it (on the pool) ------
  //
  // The networks come with the session (those of the node's tasks, and ingress), who is on
  // them from the gossip tables. Each change records the whole wanted state and queues one
  // pass on the pool; a pass applies the latest state, so passes never undo a newer one.

  void OnNetworks(const std::vector<api::Network>& networks,
                  const std::vector<api::NetworkAttachment>& node_attachments) {
    std::map<std::string, api::Network> next;
    for (const auto& n : networks)
      next[n.id()] = n;
    node_attachments_ = node_attachments;
    networks_ = std::move(next);
    SyncGossip();
    WantOverlay();
  }

  void OnTable(const std::string& network, const std::vector<gossip::TableEntry>& entries) {
    discovery::Endpoints eps;
    for (const auto& e : entries) {
      api::EndpointRecord r;
      if (!r.ParseFromString(e.value) || r.ip().empty() || r.vtep().empty()) {
        SKEP_LOG(warn, "worker", "network {}: a malformed endpoint from {} is ignored", network,
                 e.owner);
        continue;
      }
      eps.push_back(std::move(r));
    }
    endpoints_[network] = std::move(eps);
    if (networks_.count(network)) WantOverlay();
  }

  void WantOverlay() {
    if (!overlay_) return;
    std::vector<MeshNetwork> want;
    for (const auto& [id, n] : networks_) {
      auto it = endpoints_.find(id);
      want.push_back({InfoOf(n), n.spec().ingress(),
                      it == endpoints_.end() ? discovery::Endpoints{} : it->second});
    }
    {
      std::lock_guard lock(overlay_mu_);
      overlay_wanted_ = std::move(want);
      if (overlay_queued_) return;
      overlay_queued_ = true;
    }
    asio::post(pool_, [self = shared_from_this()] { self->ApplyOverlay(); });
  }

  void ApplyOverlay() {
    std::lock_guard apply(overlay_apply_mu_);
    std::vector<MeshNetwork> want;
    {
      std::lock_guard lock(overlay_mu_);
      want = overlay_wanted_;
      overlay_queued_ = false;
    }
    if (!overlay_scanned_) {
      // The sandboxes an earlier skepd left: those no longer wanted go below.
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(options_.data_dir + "/netns", ec)) {
        const std::string name = e.path().filename().string();
        if (name.rfind("ov-", 0) == 0 && name.find('.') == std::string::npos) {
          overlay_applied_.insert(name.substr(3));
        }
      }
      overlay_scanned_ = true;
    }
    std::set<std::string> ids;
    for (const auto& n : want) {
      ids.insert(n.info.id);
      try {
        overlay_->EnsureNetwork(n.info);
        std::vector<OverlayPeer> peers;
        for (const auto& e : n.endpoints) {
          if (e.vtep() != options_.vtep) peers.push_back({e.ip(), e.vtep()});
        }
        overlay_->SetPeers(n.info.id, peers);
      } catch (const std::exception& e) {
        SKEP_LOG(warn, "worker", "overlay network {}: {}", n.info.id, e.what());
      }
    }
    mesh_->SetNetworks(std::move(want));
    mesh_->Apply();
    for (const auto& id : overlay_applied_) {
      if (!ids.count(id)) overlay_->RemoveNetwork(id);
    }
    overlay_applied_ = std::move(ids);
  }

  // The node's own endpoints in the gossip tables: it is in the table of every network one of
  // its tasks is on (from assignment, so the table is there when the task starts) and in the
  // ingress network's (its routing mesh's address); a running task's endpoint is in each of
  // its networks' tables until the task ends.
  void SyncGossip() {
    if (!options_.gossip) return;
    std::map<std::string, std::map<std::string, std::string>> want;  // network -> key -> value
    std::set<std::string> join;
    for (const auto& [id, l] : tasks_) {
      const auto state = l.task.status().state();
      if (l.forgotten || l.task.desired_state() > api::TASK_RUNNING || Terminal(state)) continue;
      for (const auto& a : l.task.networks()) {
        join.insert(a.network_id());
        // Running and, with a health check, healthy: only then does it get connections.
        if (state != api::TASK_RUNNING || a.addresses_size() == 0) continue;
        if (HealthOf(l) != nullptr && l.task.status().health() != api::HEALTH_HEALTHY) {
          continue;
        }
        auto n = networks_.find(a.network_id());
        const bool ingress = n != networks_.end() && n->second.spec().ingress();
        want[a.network_id()][id] =
            discovery::EndpointOf(l.task, a, options_.vtep, ingress).SerializeAsString();
      }
    }
    for (const auto& a : node_attachments_) {
      if (a.addresses_size() == 0) continue;
      join.insert(a.network_id());
      want[a.network_id()]["node/" + options_.node_id] =
          discovery::NodeEndpoint(options_.node_id, a.addresses(0), options_.vtep)
              .SerializeAsString();
    }
    for (const auto& net : gossip_joined_) {
      if (!join.count(net)) {
        options_.gossip->LeaveNetwork(net);  // our entries there go with us
        published_.erase(net);
      }
    }
    for (const auto& net : join) {
      if (!gossip_joined_.count(net)) options_.gossip->JoinNetwork(net);
    }
    gossip_joined_ = join;
    for (auto& [net, entries] : published_) {
      for (const auto& [key, value] : entries) {
        if (!want[net].count(key)) options_.gossip->Delete(net, key);
      }
    }
    for (const auto& [net, entries] : want) {
      auto& was = published_[net];
      for (const auto& [key, value] : entries) {
        auto it = was.find(key);
        if (it == was.end() || it->second != value) options_.gossip->Put(net, key, value);
      }
    }
    published_ = std::move(want);
  }

  static OverlayNetworkInfo InfoOf(const api::Network& n) {
    return {n.id(), n.vni(), n.ipam().subnet(), n.ipam().gateway(), n.spec().ingress()};
  }

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
    SyncGossip();
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
    SyncGossip();
    if (attached_) ReconcileAll();
    Flush();  // a new session: what was not taken yet goes again
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
      SyncGossip();
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
    Persist();
    if (!l.forgotten) unreported_[l.task.id()] = *s;
    Flush();
    SyncGossip();
  }

  void StartTask(Local& l) {
    l.busy = true;
    SetStatus(l, api::TASK_PREPARING, "preparing", "");
    std::vector<OverlayNetworkInfo> nets;
    for (const auto& a : l.task.networks()) {
      if (auto it = networks_.find(a.network_id()); it != networks_.end()) {
        nets.push_back(InfoOf(it->second));
      }
    }
    std::optional<api::RegistryAuth> auth;
    if (auto it = registry_auth_.find(l.task.service_id()); it != registry_auth_.end())
      auth = it->second;
    asio::post(pool_, [self = shared_from_this(), task = l.task, nets, auth] {
      self->RunStart(task, nets, auth);
    });
  }

  void StopTask(Local& l) {
    if (l.kill_timer) return;  // already stopping
    const std::string id = l.task.id();
    const int64_t grace = l.task.spec().container().stop_grace_period_ns() > 0
                              ? l.task.spec().container().stop_grace_period_ns()
                              : kDefaultGraceNs;
    int signal = SIGTERM;
    const std::string name = !l.task.spec().container().stop_signal().empty()
                                 ? l.task.spec().container().stop_signal()
                                 : l.stop_signal;
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
        if (self->mesh_) {
          self->mesh_->RemoveTask(id);
          self->mesh_->Apply();
        }
        self->network_.Detach(id);
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

  // ---- health checks ------------------------------------------------------------------------
  //
  // A running task with a check is STARTING until a check passes, then HEALTHY; `retries`
  // consecutive failures (those in the start period do not count until one passes) make it
  // UNHEALTHY: its container is killed and the task fails, for its restart policy to replace.
  // Checks run in the container through containerd's exec, one at a time, `interval` apart.

  static const api::HealthConfig* HealthOf(const Local& l) {
    return l.health ? &*l.health : nullptr;
  }

  static std::vector<std::string> ProbeArgv(const api::HealthConfig& h) {
    if (h.test(0) == "CMD-SHELL") return {"/bin/sh", "-c", h.test_size() > 1 ? h.test(1) : "true"};
    if (h.test(0) == "CMD") return {h.test().begin() + 1, h.test().end()};
    return {h.test().begin(), h.test().end()};
  }

  void StartHealth(Local& l) {
    const api::HealthConfig* h = HealthOf(l);
    if (h == nullptr) return;
    l.health_failures = 0;
    l.healthy_once = false;
    l.health_started = std::chrono::steady_clock::now();
    SetHealth(l, api::HEALTH_STARTING, "");
    ScheduleProbe(l, *h);
  }

  void ScheduleProbe(Local& l, const api::HealthConfig& h) {
    const std::chrono::nanoseconds interval =
        h.interval_ns() > 0 ? std::chrono::nanoseconds(h.interval_ns()) : std::chrono::seconds(30);
    l.health_timer = std::make_unique<asio::steady_timer>(strand_, interval);
    l.health_timer->async_wait(
        [self = shared_from_this(), id = l.task.id()](const boost::system::error_code& ec) {
          if (!ec) self->Probe(id);
        });
  }

  // The task `id` while it is still being checked (running, in its container, not yet found
  // unhealthy), with its check; a probe for any other is dropped.
  std::pair<Local*, const api::HealthConfig*> Checked(const std::string& id) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return {nullptr, nullptr};
    Local& l = it->second;
    const api::HealthConfig* h = HealthOf(l);
    if (h == nullptr || !l.container || l.unhealthy ||
        l.task.status().state() != api::TASK_RUNNING) {
      return {nullptr, nullptr};
    }
    return {&l, h};
  }

  void Probe(const std::string& id) {
    auto [task, h] = Checked(id);
    if (task == nullptr) return;
    Local& l = *task;
    const auto timeout = h->timeout_ns() > 0
                             ? std::chrono::milliseconds(h->timeout_ns() / 1'000'000)
                             : std::chrono::milliseconds(30'000);
    asio::post(pool_, [self = shared_from_this(), id, exec_id = "health-" + std::to_string(++l.probes),
                       argv = ProbeArgv(*h), timeout, dir = TaskDir(id)] {
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
    auto [task, h] = Checked(id);
    if (task == nullptr) return;
    Local& l = *task;
    if (r.exit_code == 0) {
      l.health_failures = 0;
      l.healthy_once = true;
      SetHealth(l, api::HEALTH_HEALTHY, r.output);
    } else {
      const auto start_period = std::chrono::nanoseconds(h->start_period_ns());
      if (l.healthy_once || std::chrono::steady_clock::now() - l.health_started >= start_period) {
        ++l.health_failures;
      }
      const int retries = h->retries() > 0 ? h->retries() : 3;
      if (l.health_failures >= retries) {
        l.unhealthy = true;
        SetHealth(l, api::HEALTH_UNHEALTHY, r.output);
        SKEP_LOG(info, "worker", "task {} is unhealthy after {} failed checks: killing it", id,
                 l.health_failures);
        asio::post(pool_, [self = shared_from_this(), id] { self->Signal(id, SIGKILL, true); });
        return;
      }
      SetHealth(l, l.task.status().health(), r.output);
    }
    ScheduleProbe(l, *h);
  }

  // Reported when the state changes (the output goes with it, not on its own).
  void SetHealth(Local& l, api::HealthState health, const std::string& output) {
    auto* s = l.task.mutable_status();
    const bool changed = s->health() != health;
    s->set_health(health);
    s->set_health_output(output);
    if (!changed) return;
    Persist();
    if (!l.forgotten) unreported_[l.task.id()] = *s;
    Flush();
    SyncGossip();
  }

  // The kernel killed one of the task's processes for memory: its exit (before or after this)
  // says so.
  void OnOom(const std::string& id) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return;
    Local& l = it->second;
    l.oom_killed = true;
    const auto& s = l.task.status();
    if (s.state() == api::TASK_FAILED && s.err().find("OOM killed") == std::string::npos) {
      SetStatus(l, api::TASK_FAILED, s.message(), s.err() + ": OOM killed", s.exit_code());
    }
  }

  void OnExit(const std::string& id, uint32_t code, int64_t) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return;
    Local& l = it->second;
    if (l.busy && !l.container) {
      l.early_exit = {code, 0};  // the start operation is still finishing
      return;
    }
    l.kill_timer.reset();
    l.health_timer.reset();
    const auto state = l.task.status().state();
    if (!Terminal(state)) {
      if (l.forgotten || l.task.desired_state() > api::TASK_RUNNING) {
        SetStatus(l, api::TASK_SHUTDOWN, "shutdown", "", static_cast<int32_t>(code));
      } else if (l.unhealthy) {
        SetStatus(l, api::TASK_FAILED, "unhealthy", "task: unhealthy container",
                  static_cast<int32_t>(code));
      } else if (code == 0) {
        SetStatus(l, api::TASK_COMPLETE, "finished", "");
      } else {
        SetStatus(l, api::TASK_FAILED, "exited",
                  "task: non-zero exit (" + std::to_string(code) + ")" +
                      (l.oom_killed ? ": OOM killed" : ""),
                  static_cast<int32_t>(code));
      }
    }
    if (!l.busy) Reconcile(id);  // removes the container
  }

  // ---- on the pool --------------------------------------------------------------------------

  void Signal(const std::string& id, int signal, bool all) {
    try {
      containerd_.Kill(id, signal, all);
    } catch (const std::exception& e) {
      SKEP_LOG(debug, "worker", "signal {} to task {}: {}", signal, id, e.what());
    }
  }

  executor::ContainerSpec SpecOf(const api::Task& t) {
    const auto& c = t.spec().container();
    executor::ContainerSpec s;
    s.command = {c.command().begin(), c.command().end()};
    s.args = {c.args().begin(), c.args().end()};
    s.env = {c.env().begin(), c.env().end()};
    s.dir = c.dir();
    s.user = c.user();
    s.hostname = c.hostname();
    s.labels = {c.labels().begin(), c.labels().end()};
    s.stop_signal = c.stop_signal();
    const auto& limits = t.spec().resources().limits();
    s.nano_cpus = limits.nano_cpus();
    s.memory_bytes = limits.memory_bytes();
    s.pids_limit = limits.pids();
    int anonymous = 0;
    for (const auto& m : c.mounts()) {
      executor::MountSpec ms;
      ms.target = m.target();
      ms.readonly = m.read_only();
      switch (m.type()) {
        case api::Mount::BIND:
          ms.type = executor::MountSpec::Type::kBind;
          ms.source = m.source();
          break;
        case api::Mount::VOLUME: {
          // A named volume lives under the data dir and outlives its tasks.
          ms.type = executor::MountSpec::Type::kVolume;
          const std::string name =
              m.source().empty() ? t.id() + "-" + std::to_string(anonymous++) : m.source();
          ms.source = options_.data_dir + "/volumes/" + name;
          fs::create_directories(ms.source);
          break;
        }
        case api::Mount::TMPFS:
          ms.type = executor::MountSpec::Type::kTmpfs;
          ms.tmpfs_size_bytes = m.tmpfs_size_bytes();
          if (m.tmpfs_mode()) ms.tmpfs_mode = m.tmpfs_mode();
          break;
        default:
          break;
      }
      s.mounts.push_back(ms);
    }
    return s;
  }

  void RunStart(const api::Task& task, const std::vector<OverlayNetworkInfo>& nets,
                const std::optional<api::RegistryAuth>& auth) {
    const std::string id = task.id();
    auto self = shared_from_this();
    auto post_status = [&](api::TaskState st, std::string msg, std::string err, int32_t pid = 0) {
      asio::post(strand_, [self, id, st, msg, err, pid] {
        auto it = self->tasks_.find(id);
        if (it != self->tasks_.end()) self->SetStatus(it->second, st, msg, err, 0, pid);
      });
    };
    api::TaskState failure = api::TASK_REJECTED;
    std::string stop_signal, addr;
    std::optional<api::HealthConfig> health;
    try {
      const std::string image = task.spec().container().image();
      auto progress = [&](const std::string& line) {
        post_status(api::TASK_PREPARING, line, "");
      };
      executor::ImageInfo info;
      if (auth) {
        // The service's login, for this pull only (its tokens are not shared with others).
        executor::RegistryConfig config = options_.registry;
        config.credentials[executor::RegistryDomain(auth->server())] = {auth->username(),
                                                                         auth->password()};
        executor::Registry registry(std::move(config));
        info = containerd_.Pull(image, registry, progress);
      } else {
        info = containerd_.Pull(image, registry_, progress);
      }
      stop_signal = info.stop_signal;
      health = EffectiveHealthcheck(task.spec().container(), info.healthcheck);
      executor::ContainerRequest req;
      req.id = id;
      req.image = info;
      req.labels = {{kTaskLabel, id},
                    {"skep.service.id", task.service_id()},
                    {"skep.service.name", task.service_name()},
                    {"skep.task.slot", std::to_string(task.slot())}};
      try {
        containerd_.Delete(id);  // a leftover of an attempt that died half-way
      } catch (const std::exception&) {
      }
      std::vector<PublishedPort> ports;
      for (const auto& p : task.endpoint().ports()) {
        if (p.publish_mode() == api::PortConfig::HOST && p.published_port() != 0) {
          ports.push_back({p.protocol(), p.published_port(), p.target_port()});
        }
      }
      const TaskNetwork::Attachment net = network_.Attach(id, ports);
      // Its overlay networks: eth1, eth2, ... in the order of its service's networks.
      for (int i = 0; i < task.networks_size(); ++i) {
        const auto& a = task.networks(i);
        auto info = std::find_if(nets.begin(), nets.end(),
                                 [&](const auto& n) { return n.id == a.network_id(); });
        if (!overlay_ || info == nets.end() || a.addresses_size() == 0) {
          throw std::runtime_error("network " + a.network_id() + " is not known on this node");
        }
        overlay_->EnsureNetwork(*info);
        overlay_->AttachTask(a.network_id(), net.netns_path, "eth" + std::to_string(i + 1),
                             a.addresses(0));
      }
      executor::ContainerSpec spec = SpecOf(task);
      spec.netns_path = net.netns_path;
      if (mesh_ && UsesServiceDiscovery(task, nets)) {
        mesh_->AddTask(id, net.netns_path, NetworkIds(task));
        mesh_->Apply();  // its names are served before it starts
        spec.resolv_conf_path = WriteResolvConf(id);
      } else if (fs::exists("/etc/resolv.conf")) {
        spec.resolv_conf_path = "/etc/resolv.conf";
      }
      addr = net.addr;
      req.spec_json = executor::BuildOciSpec(id, info, spec);
      containerd_.CreateContainer(req);
      post_status(api::TASK_STARTING, "starting", "");
      failure = api::TASK_FAILED;
      const std::string dir = TaskDir(id);
      fs::create_directories(dir);
      const std::string log = executor::ShimLoggerUri(options_.logger_binary, dir, options_.logs);
      const uint32_t pid = containerd_.StartTask(id, log, log);
      asio::post(strand_, [self, id, pid, stop_signal, addr, health] {
        auto it = self->tasks_.find(id);
        if (it == self->tasks_.end()) return;
        Local& l = it->second;
        l.busy = false;
        l.container = true;
        l.stop_signal = stop_signal;
        l.health = health;
        l.task.mutable_status()->set_addr(addr);
        // With a check, it is running but not yet healthy from its first report on, so that
        // nothing counts it as ready in between.
        if (HealthOf(l) != nullptr) l.task.mutable_status()->set_health(api::HEALTH_STARTING);
        self->SetStatus(l, api::TASK_RUNNING, "started", "", 0, static_cast<int32_t>(pid));
        self->StartHealth(l);
        if (l.early_exit) {
          auto [code, at] = *l.early_exit;
          l.early_exit.reset();
          self->OnExit(id, code, at);
          return;
        }
        self->Reconcile(id);  // desired state may have changed meanwhile
      });
      return;
    } catch (const std::exception& e) {
      const std::string err = e.what();
      SKEP_LOG(warn, "worker", "task {} could not start: {}", id, err);
      try {
        if (failure == api::TASK_FAILED) containerd_.Delete(id);
        if (mesh_) {
          mesh_->RemoveTask(id);
          mesh_->Apply();
        }
        network_.Detach(id);
      } catch (const std::exception&) {
      }
      asio::post(strand_, [self, id, failure, err] {
        auto it = self->tasks_.find(id);
        if (it == self->tasks_.end()) return;
        it->second.busy = false;
        self->SetStatus(it->second, failure, failure == api::TASK_REJECTED ? "rejected" : "failed",
                        err);
        self->Reconcile(id);
      });
    }
  }

  // ---- reporting ----------------------------------------------------------------------------

  void Flush() {
    if (flushing_ || unreported_.empty() || stopping_) return;
    flushing_ = true;
    std::vector<api::TaskStatusUpdate> batch;
    for (const auto& [id, st] : unreported_) {
      api::TaskStatusUpdate u;
      u.set_task_id(id);
      *u.mutable_status() = st;
      batch.push_back(std::move(u));
    }
    asio::post(pool_, [self = shared_from_this(), batch] {
      const bool ok = self->report_(batch);
      asio::post(self->strand_, [self, batch, ok] {
        self->flushing_ = false;
        if (ok) {
          for (const auto& u : batch) {
            auto it = self->unreported_.find(u.task_id());
            // Only what was sent as it is now: a newer status goes in the next batch.
            if (it != self->unreported_.end() &&
                SameMessage(it->second, u.status())) {
              self->unreported_.erase(it);
            }
          }
          self->Flush();
          return;
        }
        // No session, or the leader is changing: the next session message flushes again; a
        // timer covers a session that stays up while the leader was briefly unable to write.
        self->retry_ = std::make_unique<asio::steady_timer>(self->strand_, 1s);
        self->retry_->async_wait([self](const boost::system::error_code& ec) {
          if (!ec) self->Flush();
        });
      });
    });
  }

  WorkerOptions options_;
  Report report_;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
  std::thread thread_;
  asio::thread_pool pool_;
  asio::strand<asio::io_context::executor_type> strand_;
  executor::Containerd containerd_;
  executor::Registry registry_;
  // The registry logins of services with tasks here, by service ID, from the last session
  // message: in memory only (never in tasks.pb).
  std::map<std::string, api::RegistryAuth> registry_auth_;
  TaskNetwork network_;
  std::atomic<bool> stopping_{false};

  // On the strand.
  std::map<std::string, Local> tasks_;
  std::map<std::string, api::TaskStatus> unreported_;
  bool attached_ = false;       // containerd's containers are known
  bool assigned_once_ = false;  // a complete list came from the managers
  bool flushing_ = false;
  std::unique_ptr<asio::steady_timer> retry_;
  std::shared_ptr<std::promise<void>> left_;  // Leave waits for every task to go
  std::set<std::string> kept_;                // ended tasks in the history: their logs stay
  std::map<std::string, api::Network> networks_;  // the overlay networks of the node's tasks
  std::vector<api::NetworkAttachment> node_attachments_;  // the node's own (ingress) address
  std::map<std::string, discovery::Endpoints> endpoints_;  // per network, from gossip
  std::set<std::string> gossip_joined_;                    // the tables the node is in
  std::map<std::string, std::map<std::string, std::string>> published_;  // its entries there
  // Applying the overlay (on the pool).
  std::mutex overlay_mu_;  // guards the two below
  std::vector<MeshNetwork> overlay_wanted_;
  bool overlay_queued_ = false;
  std::mutex overlay_apply_mu_;  // one pass at a time; guards the two below
  std::set<std::string> overlay_applied_;  // networks with a sandbox
  bool overlay_scanned_ = false;
  std::unique_ptr<OverlayDataplane> overlay_;
  std::unique_ptr<ServiceMesh> mesh_;  // with overlay_
  std::unique_ptr<dns::DnsServer> dns_;  // with overlay_
  std::set<std::string> dns_listening_;  // tasks with a DNS listener; in the mesh's Apply
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
