#include "daemon/node/node.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <future>
#include <optional>
#include <thread>

#include "daemon/common/log.h"
#include "daemon/common/version.h"
#include "daemon/executor/errors.h"
#include "daemon/executor/image_ref.h"
#include "daemon/node/cgroups.h"
#include "daemon/node/worker.h"
#include "overlay/gossip/agent.h"

namespace skep::node {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// The gossip layer's agent, on an io_context and a thread of its own (gossip/agent.h). It is
// made when the node has a swarm address, given keys and seeds by the sessions (on the
// session's strand), and stopped after the worker.
class GossipHost {
 public:
  explicit GossipHost(gossip::AgentConfig config) {
    agent_ = std::make_unique<gossip::Agent>(io_, std::move(config));
    agent_->Start();  // throws when the port is taken
    guard_.emplace(asio::make_work_guard(io_));
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "gossip");
      io_.run();
    });
  }
  ~GossipHost() { Stop(false); }

  gossip::Agent* agent() { return agent_.get(); }

  // The swarm's keys, and the managers as the seeds of the gossip cluster, from a session.
  void OnSession(const api::SessionMessage& msg, uint16_t gossip_port) {
    std::vector<std::string> keys(msg.network_keys().begin(), msg.network_keys().end());
    if (!keys.empty() && keys != keys_) {
      agent_->SetKeys(keys);
      keys_ = std::move(keys);
    }
    std::vector<std::string> seeds;
    for (const auto& m : msg.managers()) {
      const std::string ip = m.addr().substr(0, m.addr().rfind(':'));
      if (m.node_id() != msg.node().id()) seeds.push_back(ip + ":" + std::to_string(gossip_port));
    }
    // Joined again at every new session: a node that was cut off and is back (its session is
    // new) exchanges state with the managers at once instead of waiting for a reconnect.
    if (!seeds.empty() && (seeds != seeds_ || msg.session_id() != session_)) {
      agent_->Join(seeds);
      seeds_ = std::move(seeds);
      session_ = msg.session_id();
    }
  }

  // `leave`: the others are told first (the node leaves the swarm) and given a moment to hear
  // it, rather than finding it gone.
  void Stop(bool leave) {
    if (!agent_) return;
    auto stopped = std::make_shared<std::promise<void>>();
    auto close = [this, stopped] { agent_->Stop([stopped] { stopped->set_value(); }); };
    if (leave) {
      agent_->Leave();
      auto pause = std::make_shared<asio::steady_timer>(io_, 500ms);
      pause->async_wait([pause, close](const boost::system::error_code&) { close(); });
    } else {
      close();
    }
    stopped->get_future().wait_for(3s);
    guard_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
    agent_.reset();
  }

 private:
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
  std::thread thread_;
  std::unique_ptr<gossip::Agent> agent_;
  // What the sessions gave it last; on the session's strand.
  std::vector<std::string> keys_;
  std::vector<std::string> seeds_;
  std::string session_;
};

Node::Node(NodeOptions options, asio::any_io_executor io, asio::any_io_executor blocking)
    : options_([&] {
        if (options.hostname.empty()) {
          char buf[256] = {};
          gethostname(buf, sizeof(buf) - 1);
          options.hostname = buf;
        }
        return std::move(options);
      }()),
      dir_(options_.data_dir),
      memory_cgroup_(MemoryControllerEnabled()),
      io_(std::move(io)),
      blocking_(std::move(blocking)) {
  if (!memory_cgroup_) {
    SKEP_LOG(warn, "node",
             "the kernel has no memory cgroup controller, so memory limits cannot be enforced: "
             "tasks with a memory limit or reservation will not be placed on this node. On a "
             "Raspberry Pi, add cgroup_enable=memory to the kernel's command line "
             "(/boot/firmware/cmdline.txt, or /boot/cmdline.txt on older systems) and reboot");
  }
}

Node::~Node() {
  Stop();
}

api::NodeDescription Node::Describe() const {
  api::NodeDescription d;
  d.set_hostname(options_.hostname);
  d.set_engine_version(std::string(Version()));
  struct utsname u {};
  uname(&u);
  d.set_os("linux");
  d.set_arch(u.machine);
  for (const auto& [k, v] : options_.labels)
    (*d.mutable_engine_labels())[k] = v;
  d.set_nano_cpus(static_cast<int64_t>(std::thread::hardware_concurrency()) * 1'000'000'000);
  d.set_memory_bytes(static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE));
  d.set_no_memory_cgroup(!memory_cgroup_);
  d.set_store_format(kStoreFormat);
  return d;
}

executor::RegistryConfig Node::Registries() const {
  executor::RegistryConfig c;
  c.mirrors = options_.registry_mirrors;
  c.insecure = options_.insecure_registries;
  c.ca_file = options_.registry_ca;
  return c;
}

void Node::Start(const api::LocalState& state, SessionCallbacks events) {
  node_id_ = state.node_id();
  WorkerOptions wo;
  wo.data_dir = dir_.path();
  wo.containerd_socket = options_.containerd_socket;
  wo.registry = Registries();
  // Gossip goes from the address this node is known by; VXLAN from the data path address
  // (--data-path-addr), the same unless it was given.
  const std::string addr = state.advertise_addr();
  const std::string advertise_ip = addr.substr(0, addr.rfind(':'));
  wo.vtep = state.data_path_addr().empty() ? advertise_ip : state.data_path_addr();
  wo.node_id = state.node_id();
  gossip::AgentConfig gc;
  gc.name = state.node_id();
  gc.advertise_ip = advertise_ip;
  gc.port = options_.gossip_port;
  try {
    gossip_ = std::make_unique<GossipHost>(gc);
    wo.gossip = gossip_->agent();
  } catch (const std::exception& e) {
    SKEP_LOG(error, "node", "no gossip, so no overlay peers: {}", e.what());
  }
  SessionCallbacks cb;
  cb.on_session = [this, on_session = std::move(events.on_session)](const api::SessionMessage& m) {
    Apply(m);
    if (on_session) on_session(m);
  };
  cb.on_role = std::move(events.on_role);
  cb.on_removed = std::move(events.on_removed);
  session_ = std::make_shared<SessionClient>(
      io_, blocking_, dir_, Describe(),
      std::vector<api::ManagerPeer>(state.managers().begin(), state.managers().end()),
      std::move(cb));
  worker_ =
      std::make_unique<Worker>(wo, [session = session_](std::vector<api::TaskStatusUpdate> updates,
                                                        std::function<void(bool)> done) {
        session->ReportStatus(std::move(updates), std::move(done));
      });
  worker_->Start();
  // After the worker, so that the first session's list of tasks reaches it.
  session_->Start();
}

void Node::Apply(const api::SessionMessage& msg) {
  if (gossip_) gossip_->OnSession(msg, options_.gossip_port);
  if (!worker_ || !msg.tasks_known()) return;
  worker_->SetRegistryAuth({msg.registry_auth().begin(), msg.registry_auth().end()});
  worker_->SetNetworks({msg.networks().begin(), msg.networks().end()},
                       static_cast<uint16_t>(msg.data_path_port()),
                       {msg.node().attachments().begin(), msg.node().attachments().end()});
  std::vector<std::string> kept(msg.kept_task_ids().begin(), msg.kept_task_ids().end());
  if (msg.incremental()) {
    worker_->Update({msg.tasks().begin(), msg.tasks().end()},
                    {msg.removed_task_ids().begin(), msg.removed_task_ids().end()},
                    std::move(kept));
  } else {
    worker_->Assign({msg.tasks().begin(), msg.tasks().end()}, std::move(kept));
  }
}

void Node::Stop() {
  // No session message reaches the worker once the session has stopped.
  if (session_) session_->Stop();
  // The worker's containers keep running: a restarted skepd re-attaches to them.
  if (worker_) worker_->Stop();
  if (gossip_) gossip_->Stop(false);  // the others keep our entries unless we stay away
  worker_.reset();
  gossip_.reset();
  session_.reset();
}

void Node::Leave(std::chrono::milliseconds timeout) {
  if (session_) session_->Stop();
  // The swarm's containers do not outlive the node's membership (Docker removes them too).
  if (worker_) {
    worker_->Leave(timeout);
    worker_->Stop();
  }
  if (gossip_) gossip_->Stop(true);
  worker_.reset();
  gossip_.reset();
  session_.reset();
}

std::string Node::Manager() const {
  return session_ ? session_->Manager() : "";
}

Status Node::Login(const api::LoginRequest& req, api::LoginResponse* resp) const {
  const std::string domain =
      executor::RegistryDomain(req.server().empty() ? "docker.io" : req.server());
  if (domain.empty()) return InvalidArgument("no registry to log in to");
  if (req.username().empty()) return InvalidArgument("a user name is required");
  executor::RegistryConfig config = Registries();
  config.timeout = std::chrono::seconds(15);
  config.credentials[domain] = {req.username(), req.password()};
  try {
    executor::Registry(config).Login(domain);
  } catch (const executor::ExecutorError& e) {
    Code code = Code::kInternal;
    if (e.kind() == executor::ErrorKind::kUnauthorized) code = Code::kUnauthenticated;
    if (e.kind() == executor::ErrorKind::kUnavailable) code = Code::kUnavailable;
    if (e.kind() == executor::ErrorKind::kInvalidArgument) code = Code::kInvalidArgument;
    return {code, e.what()};
  } catch (const std::exception& e) {
    return Internal(e.what());
  }
  resp->set_status("Login Succeeded");
  return Status::Ok();
}

}  // namespace skep::node
