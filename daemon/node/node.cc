#include "daemon/node/node.h"

#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <future>
#include <optional>
#include <random>
#include <thread>

#include "ca.grpc.pb.h"
#include "daemon/executor/errors.h"
#include "daemon/executor/image_ref.h"
#include "daemon/common/clock.h"
#include "daemon/common/grpc_status.h"
#include "daemon/common/log.h"
#include "daemon/common/pki.h"
#include "daemon/common/proto_bytes.h"
#include "daemon/common/tls.h"
#include "daemon/manager/bootstrap.h"
#include "daemon/manager/control_api.h"
#include "daemon/common/netutil.h"
#include "overlay/gossip/agent.h"
#include "raft/conf.h"

#ifndef SKEP_VERSION
#define SKEP_VERSION "0.1.0"
#endif

namespace skep::node {

using namespace std::chrono_literals;

// The gossip layer's agent, on an io_context and a thread of its own. It is made when the node
// has a swarm address, given keys and seeds by the sessions, and stopped after the worker.
struct GossipHost {
  boost::asio::io_context io;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard;
  std::thread thread;
  std::unique_ptr<gossip::Agent> agent;
  std::vector<std::string> keys;
  std::vector<std::string> seeds;
  std::string session;  // the session that last gave them

  explicit GossipHost(gossip::AgentConfig config) {
    agent = std::make_unique<gossip::Agent>(io, std::move(config));
    agent->Start();  // throws when the port is taken
    guard.emplace(boost::asio::make_work_guard(io));
    thread = std::thread([this] { io.run(); });
  }
  ~GossipHost() { Stop(false); }
  // `leave`: tell the others first (the node leaves the swarm), rather than being found gone.
  void Stop(bool leave) {
    if (!agent) return;
    if (leave) {
      agent->Leave();
      std::this_thread::sleep_for(500ms);  // for the news to get out
    }
    auto stopped = std::make_shared<std::promise<void>>();
    agent->Stop([stopped] { stopped->set_value(); });
    stopped->get_future().wait_for(2s);
    guard.reset();
    io.stop();
    if (thread.joinable()) thread.join();
    agent.reset();
  }
};

using grpc::StatusCode;
namespace fs = std::filesystem;

namespace {

// What went wrong reaching a manager, in an operator's words, from the status of a call to it.
std::string WhyUnreachable(const grpc::Status& st) {
  const std::string& m = st.error_message();
  auto has = [&](const char* s) { return m.find(s) != std::string::npos; };
  if (st.error_code() == StatusCode::DEADLINE_EXCEEDED) {
    return "no answer (timed out): is the address right, and is port 2377 open?";
  }
  if (has("Connection refused")) return "connection refused: no manager listens there";
  if (has("No route to host") || has("Network is unreachable")) {
    return "no route to that address";
  }
  if (has("Ssl") || has("SSL") || has("TLS") || has("handshake") || has("certificate")) {
    return "the TLS handshake failed (" + m + ")";
  }
  if (has("Name or service not known") || has("DNS resolution failed")) {
    return "the host name does not resolve";
  }
  if (st.error_code() == StatusCode::UNIMPLEMENTED)
    return "the service there is not a skep manager";
  return m;
}

constexpr int kDefaultPort = 2377;

// Until this node's new manager leads with the swarm's first objects written.
grpc::Status WaitReady(manager::Manager& m) {
  auto ready = std::make_shared<std::promise<Status>>();
  m.WhenReady(10s, [ready](const Status& st) { ready->set_value(st); });
  return ToGrpc(ready->get_future().get());
}

const char kAlreadyInSwarm[] =
    "This node is already part of a swarm. Use \"skep swarm leave\" to leave this swarm and "
    "join another one.";
const char kNotInSwarm[] =
    "This node is not part of a swarm. Use \"skep swarm init\" or \"skep swarm join\" to "
    "connect it to one.";

uint64_t RandomRaftId() {
  std::random_device rd;
  std::uniform_int_distribution<uint64_t> dist(1, UINT64_MAX);
  return dist(rd);
}

grpc::Status Invalid(const std::string& msg) {
  return {StatusCode::INVALID_ARGUMENT, msg};
}

// The listen and advertise addresses of a manager. The advertise address defaults to the
// address toward `toward` (a manager being joined), or the default route's, or the listen IP.
grpc::Status Addresses(const std::string& listen_text, const std::string& advertise_text,
                       const std::string& toward, std::string* listen, std::string* advertise) {
  std::string err;
  auto l = net::ParseHostPort(listen_text.empty() ? "0.0.0.0" : listen_text, kDefaultPort, &err);
  if (!l) return Invalid("--listen-addr: " + err);
  *listen = l->ToString();
  if (!advertise_text.empty()) {
    auto a = net::ParseHostPort(advertise_text, l->port, &err);
    if (!a) return Invalid("--advertise-addr: " + err);
    if (a->host == "0.0.0.0" || a->host == "::") {
      return Invalid("--advertise-addr: " + a->host + " is not an address others can reach");
    }
    *advertise = a->ToString();
    return grpc::Status::OK;
  }
  std::optional<std::string> ip;
  if (l->host != "0.0.0.0" && l->host != "::") ip = l->host;
  if (!ip && !toward.empty()) ip = net::LocalAddressToward(toward);
  if (!ip) ip = net::DefaultRouteAddress();
  if (!ip) {
    return Invalid(
        "could not choose an IP address to advertise (there is no default route); give one "
        "with --advertise-addr");
  }
  *advertise = net::HostPort{*ip, l->port}.ToString();
  return grpc::Status::OK;
}

// ---------------------------------------------------------------------------------------------
// The control socket's services.

class LocalNodeService final : public api::LocalNode::Service {
 public:
  explicit LocalNodeService(NodeRuntime* node) : node_(node) {}
  grpc::Status Init(grpc::ServerContext*, const api::InitRequest* req,
                    api::InitResponse* resp) override {
    return node_->Init(*req, resp);
  }
  grpc::Status Join(grpc::ServerContext*, const api::JoinRequest* req,
                    api::JoinResponse* resp) override {
    return node_->Join(*req, resp);
  }
  grpc::Status Leave(grpc::ServerContext*, const api::LeaveRequest* req,
                     api::Empty* resp) override {
    return node_->Leave(*req, resp);
  }
  grpc::Status Info(grpc::ServerContext*, const api::Empty*, api::InfoResponse* resp) override {
    return node_->Info(resp);
  }
  grpc::Status Login(grpc::ServerContext*, const api::LoginRequest* req,
                     api::LoginResponse* resp) override {
    return node_->Login(*req, resp);
  }

 private:
  NodeRuntime* node_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------

NodeRuntime::NodeRuntime(NodeOptions options)
    : options_(std::move(options)), dir_(options_.data_dir) {
  if (options_.hostname.empty()) {
    char buf[256] = {};
    gethostname(buf, sizeof(buf) - 1);
    options_.hostname = buf;
  }
}

NodeRuntime::~NodeRuntime() {
  Stop();
}

std::string NodeRuntime::node_id() const {
  std::lock_guard lock(mu_);
  return state_ ? state_->node_id() : "";
}

api::NodeDescription NodeRuntime::Describe() const {
  api::NodeDescription d;
  d.set_hostname(options_.hostname);
  d.set_engine_version(SKEP_VERSION);
  struct utsname u {};
  uname(&u);
  d.set_os("linux");
  d.set_arch(u.machine);
  for (const auto& [k, v] : options_.labels)
    (*d.mutable_engine_labels())[k] = v;
  d.set_nano_cpus(static_cast<int64_t>(std::thread::hardware_concurrency()) * 1'000'000'000);
  d.set_memory_bytes(static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE));
  return d;
}

void NodeRuntime::Start() {
  fs::create_directories(dir_.path());
  fs::permissions(dir_.path(), fs::perms::owner_all, fs::perm_options::replace);
  state_ = dir_.LoadState();
  if (state_) {
    // A crash between a renewed certificate and the state file leaves them disagreeing; the
    // certificate is what the swarm issued, so it wins.
    try {
      const pki::CertInfo cert = pki::ParseCertificate(dir_.ReadFile(dir_.Certs().cert));
      const api::NodeRole role =
          cert.role == pki::kManagerRole ? api::ROLE_MANAGER : api::ROLE_WORKER;
      if (role != state_->role()) {
        SKEP_LOG(warn, "node", "the node certificate says {}; following it", cert.role);
        state_->set_role(role);
        dir_.SaveState(*state_);
      }
    } catch (const std::exception& e) {
      throw std::runtime_error("cannot read this node's certificate in " + dir_.CertDir() + ": " +
                               e.what());
    }
    SKEP_LOG(info, "node", "resuming node {} of swarm {} as a {}", state_->node_id(),
             state_->cluster_id(), state_->role() == api::ROLE_MANAGER ? "manager" : "worker");
    if (state_->role() == api::ROLE_MANAGER) {
      std::vector<api::ManagerPeer> peers(state_->managers().begin(), state_->managers().end());
      StartManager(manager::ManagerOptions::Start::kResume, peers);
    }
    std::lock_guard lock(mu_);  // the agent's first session message may come at once
    StartAgent({state_->managers().begin(), state_->managers().end()});
  }

  fs::create_directories(fs::path(options_.control_socket).parent_path());
  std::error_code ec;
  fs::remove(options_.control_socket, ec);  // left by a skepd that did not stop cleanly
  local_node_service_ = std::make_unique<LocalNodeService>(this);
  // The CLI's control calls go to this node's manager (any manager serves them).
  local_control_service_ = std::make_unique<manager::ControlService>(
      [this](const grpc::ServerContextBase&, manager::ControlTarget* t) -> Status {
        std::shared_ptr<manager::Manager> m;
        if (grpc::Status st = LocalManager(&m); !st.ok()) return FromGrpc(st);
        t->api = &m->control();
        t->keep_alive = m;
        return Status::Ok();
      });
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + options_.control_socket, grpc::InsecureServerCredentials());
  builder.RegisterService(local_node_service_.get());
  builder.RegisterService(local_control_service_.get());
  const mode_t old = umask(077);  // the socket is for root only
  local_server_ = builder.BuildAndStart();
  umask(old);
  if (!local_server_) {
    throw std::runtime_error("cannot listen on the control socket " + options_.control_socket);
  }
  SKEP_LOG(info, "node", "control socket {}", options_.control_socket);
}

void NodeRuntime::Stop() {
  if (local_server_) {
    local_server_->Shutdown(std::chrono::system_clock::now() + 2s);
    local_server_.reset();
  }
  // The agent's threads call back into this object (and take mu_): stop them unlocked.
  std::shared_ptr<Agent> agent;
  std::shared_ptr<manager::Manager> mgr;
  std::unique_ptr<Worker> worker;
  {
    std::lock_guard lock(mu_);
    agent = std::move(agent_);
    mgr = std::move(manager_);
    worker = std::move(worker_);
  }
  // The worker's containers keep running: a restarted skepd re-attaches to them.
  if (worker) worker->Stop();
  std::unique_ptr<GossipHost> gossip;
  {
    std::lock_guard lock(mu_);
    gossip = std::move(gossip_);
  }
  if (gossip) gossip->Stop(false);  // the others keep our entries unless we stay away
  if (agent) agent->Stop();
  if (mgr) mgr->Stop();
}

executor::RegistryConfig NodeRuntime::Registries() const {
  executor::RegistryConfig c;
  c.mirrors = options_.registry_mirrors;
  c.insecure = options_.insecure_registries;
  c.ca_file = options_.registry_ca;
  return c;
}

grpc::Status NodeRuntime::Login(const api::LoginRequest& req, api::LoginResponse* resp) {
  const std::string domain = executor::RegistryDomain(req.server().empty() ? "docker.io" : req.server());
  if (domain.empty()) return {StatusCode::INVALID_ARGUMENT, "no registry to log in to"};
  if (req.username().empty()) return {StatusCode::INVALID_ARGUMENT, "a user name is required"};
  executor::RegistryConfig config = Registries();
  config.timeout = std::chrono::seconds(15);
  config.credentials[domain] = {req.username(), req.password()};
  try {
    executor::Registry(config).Login(domain);
  } catch (const executor::ExecutorError& e) {
    StatusCode code = StatusCode::UNKNOWN;
    if (e.kind() == executor::ErrorKind::kUnauthorized) code = StatusCode::UNAUTHENTICATED;
    if (e.kind() == executor::ErrorKind::kUnavailable) code = StatusCode::UNAVAILABLE;
    if (e.kind() == executor::ErrorKind::kInvalidArgument) code = StatusCode::INVALID_ARGUMENT;
    return {code, e.what()};
  } catch (const std::exception& e) {
    return {StatusCode::UNKNOWN, e.what()};
  }
  resp->set_status("Login Succeeded");
  return grpc::Status::OK;
}

void NodeRuntime::StartAgent(const std::vector<api::ManagerPeer>& managers) {
  AgentCallbacks cb;
  cb.on_session = [this](const api::SessionMessage& msg) { OnSession(msg); };
  cb.on_role = [this](api::NodeRole role) { OnRole(role); };
  cb.on_removed = [this](const std::string& why) {
    std::lock_guard lock(mu_);
    removed_ = why;
  };
  if (!worker_) {
    WorkerOptions wo;
    wo.data_dir = dir_.path();
    wo.containerd_socket = options_.containerd_socket;
    wo.registry = Registries();
    // The VXLAN endpoint: the address this node is known by; gossip goes from there too.
    if (state_) {
      const std::string addr = state_->advertise_addr();
      wo.vtep = addr.substr(0, addr.rfind(':'));
      wo.node_id = state_->node_id();
      if (!gossip_) {
        gossip::AgentConfig gc;
        gc.name = state_->node_id();
        gc.advertise_ip = wo.vtep;
        gc.port = options_.gossip_port;
        try {
          gossip_ = std::make_unique<GossipHost>(gc);
        } catch (const std::exception& e) {
          SKEP_LOG(error, "node", "no gossip, so no overlay peers: {}", e.what());
        }
      }
      if (gossip_) wo.gossip = gossip_->agent.get();
    }
    worker_ = std::make_unique<Worker>(wo, [this](const std::vector<api::TaskStatusUpdate>& u) {
      std::shared_ptr<Agent> agent;
      {
        std::lock_guard lock(mu_);
        agent = agent_;
      }
      return agent && agent->ReportStatus(u);
    });
    worker_->Start();
  }
  // After the worker, so that the first session's list of tasks reaches it.
  agent_ = std::make_shared<Agent>(dir_, Describe(), managers, std::move(cb));
  agent_->Start();
}

void NodeRuntime::StartManager(manager::ManagerOptions::Start mode,
                               const std::vector<api::ManagerPeer>& peers) {
  manager::ManagerOptions mo;
  mo.data_dir = dir_.path();
  mo.registry = Registries();
  mo.node_id = state_->node_id();
  mo.raft_id = state_->raft_id();
  mo.advertise_addr = state_->advertise_addr();
  mo.listen_addr = state_->listen_addr();
  mo.tls = dir_.Certs();
  mo.start = mode;
  mo.peers = peers;
  auto m = std::make_shared<manager::Manager>(std::move(mo));
  m->Start();
  manager_ = std::move(m);
}

grpc::Status NodeRuntime::LocalManager(std::shared_ptr<manager::Manager>* out) const {
  std::lock_guard lock(mu_);
  if (!state_) {
    return {StatusCode::FAILED_PRECONDITION,
            "This node is not a swarm manager. Use \"skep swarm init\" or \"skep swarm join\" "
            "to connect this node to a swarm and try again."};
  }
  if (!manager_ && state_->role() == api::ROLE_MANAGER) {
    return {StatusCode::UNAVAILABLE,
            "this node's manager is not running: " +
                (error_.empty() ? std::string("see skepd's log") : error_)};
  }
  if (!manager_) {
    return {StatusCode::FAILED_PRECONDITION,
            "This node is not a swarm manager. Worker nodes can't be used to view or modify "
            "cluster state. Run this command on a manager node or promote this node to a "
            "manager."};
  }
  *out = manager_;
  return grpc::Status::OK;
}

// ---------------------------------------------------------------------------------------------
// init

grpc::Status NodeRuntime::Init(const api::InitRequest& req, api::InitResponse* resp) {
  std::lock_guard lock(mu_);
  if (req.force_new_cluster()) {
    if (!state_ || state_->role() != api::ROLE_MANAGER) {
      return {StatusCode::FAILED_PRECONDITION,
              "--force-new-cluster recovers a swarm from one of its managers, and this node is "
              "not a manager of any swarm"};
    }
    if (manager_) manager_->Stop();
    manager_.reset();
    try {
      StartManager(manager::ManagerOptions::Start::kForceNewCluster, {});
    } catch (const std::exception& e) {
      return {StatusCode::INTERNAL, std::string("cannot force a new cluster: ") + e.what()};
    }
    if (grpc::Status st = WaitReady(*manager_); !st.ok()) return st;
    state_->clear_managers();
    api::ManagerPeer* self = state_->add_managers();
    self->set_node_id(state_->node_id());
    self->set_raft_id(state_->raft_id());
    self->set_addr(state_->advertise_addr());
    dir_.SaveState(*state_);
    resp->set_node_id(state_->node_id());
    if (auto c = manager_->store().GetCluster()) {
      resp->set_worker_token(c->root_ca().join_tokens().worker());
    }
    resp->set_manager_addr(state_->advertise_addr());
    return grpc::Status::OK;
  }
  if (state_) return {StatusCode::FAILED_PRECONDITION, kAlreadyInSwarm};
  std::string listen, advertise;
  if (grpc::Status st = Addresses(req.listen_addr(), req.advertise_addr(), "", &listen, &advertise);
      !st.ok()) {
    return st;
  }

  const std::string node_id = pki::RandomId();
  const uint64_t raft_id = RandomRaftId();
  manager::NewSwarm swarm;
  if (Status st = manager::Bootstrap(req, node_id, raft_id, advertise, Describe(), NowNanos(),
                                     &swarm);
      !st.ok()) {
    return ToGrpc(st);
  }
  const std::string cluster_id = swarm.cluster.id();
  try {
    dir_.WipeRaft();
    dir_.SaveCertificates(swarm.node_key_pem, swarm.node_cert_pem, swarm.ca_cert_pem);
  } catch (const std::exception& e) {
    return {StatusCode::INTERNAL, std::string("cannot keep the swarm's certificates: ") + e.what()};
  }

  api::LocalState st;
  st.set_node_id(node_id);
  st.set_cluster_id(cluster_id);
  st.set_raft_id(raft_id);
  st.set_role(api::ROLE_MANAGER);
  st.set_advertise_addr(advertise);
  st.set_listen_addr(listen);
  api::ManagerPeer* me = st.add_managers();
  me->set_node_id(node_id);
  me->set_raft_id(raft_id);
  me->set_addr(advertise);
  state_ = st;

  manager::ManagerOptions mo;
  mo.data_dir = dir_.path();
  mo.registry = Registries();
  mo.node_id = node_id;
  mo.raft_id = raft_id;
  mo.advertise_addr = advertise;
  mo.listen_addr = listen;
  mo.tls = dir_.Certs();
  mo.start = manager::ManagerOptions::Start::kNewCluster;
  mo.initial_objects = swarm.Objects();
  grpc::Status result;
  try {
    auto m = std::make_shared<manager::Manager>(std::move(mo));
    m->Start();
    manager_ = m;
    result = WaitReady(*m);
  } catch (const std::exception& e) {
    result = {StatusCode::INTERNAL, e.what()};
  }
  if (!result.ok()) {
    if (manager_) manager_->Stop();
    manager_.reset();
    state_.reset();
    dir_.Wipe();
    return result;
  }
  dir_.SaveState(st);
  StartAgent({st.managers().begin(), st.managers().end()});
  SKEP_LOG(info, "node", "initialized swarm {} with this node {} as its manager at {}", cluster_id,
           node_id, advertise);
  resp->set_node_id(node_id);
  resp->set_worker_token(swarm.cluster.root_ca().join_tokens().worker());
  resp->set_manager_addr(advertise);
  return grpc::Status::OK;
}

// ---------------------------------------------------------------------------------------------
// join

grpc::Status NodeRuntime::Join(const api::JoinRequest& req, api::JoinResponse* resp) {
  std::lock_guard lock(mu_);
  if (state_) return {StatusCode::FAILED_PRECONDITION, kAlreadyInSwarm};
  pki::ParsedToken token;
  try {
    token = pki::ParseJoinToken(req.token());
  } catch (const pki::PkiError& e) {
    return Invalid(e.what());
  }
  std::string err;
  auto remote = net::ParseHostPort(req.remote_addr(), kDefaultPort, &err);
  if (!remote) return Invalid(err);
  std::string listen, advertise;
  if (grpc::Status st =
          Addresses(req.listen_addr(), req.advertise_addr(), remote->host, &listen, &advertise);
      !st.ok()) {
    return st;
  }
  const std::string manager_addr = remote->ToString();

  // The root CA cannot be verified before we have it: fetch it, then check it against the
  // digest the token carries.
  std::string ca_pem;
  {
    auto stub = api::CA::NewStub(
        grpc::CreateCustomChannel(manager_addr, tls::UnverifiedCredentials(), tls::ChannelArgs()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    api::GetRootCAResponse ca;
    grpc::Status st = stub->GetRootCACertificate(&ctx, {}, &ca);
    if (!st.ok()) {
      return {StatusCode::UNAVAILABLE,
              "cannot join through " + manager_addr + ": " + WhyUnreachable(st)};
    }
    ca_pem = ca.cert_pem();
    std::string digest;
    try {
      digest = pki::CertificateDigest(ca_pem);
    } catch (const pki::PkiError& e) {
      return {StatusCode::PERMISSION_DENIED,
              "the manager at " + manager_addr + " sent a root CA that is not a certificate"};
    }
    if (digest != token.ca_digest) {
      return {StatusCode::PERMISSION_DENIED,
              "the join token is for another swarm: the manager at " + manager_addr +
                  " holds a root CA whose digest does not match the token"};
    }
  }

  const uint64_t raft_id = RandomRaftId();
  pki::KeyAndRequest kr;
  try {
    kr = pki::CreateKeyAndRequest();
  } catch (const pki::PkiError& e) {
    return {StatusCode::INTERNAL, e.what()};
  }
  api::JoinNodeRequest jr;
  jr.set_token(req.token());
  jr.set_csr_pem(kr.csr_pem);
  jr.set_advertise_addr(advertise);
  jr.set_raft_id(raft_id);
  *jr.mutable_description() = Describe();
  api::JoinNodeResponse joined;
  {
    // An answer can be lost after the swarm recorded the node (a timeout, a leader change):
    // the same request is asked again, and the manager recognises it by its raft id. A swarm
    // that lost quorum, or a refusal, ends the attempt at once.
    auto stub = api::CA::NewStub(
        grpc::CreateCustomChannel(manager_addr, tls::JoinCredentials(ca_pem), tls::ChannelArgs()));
    const auto give_up = std::chrono::steady_clock::now() + 30s;
    for (;;) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 12s);
      joined.Clear();
      grpc::Status st = stub->JoinNode(&ctx, jr, &joined);
      if (st.ok()) break;
      const bool no_quorum = FromGrpc(st).code() == Code::kNoQuorum;
      const bool transient = (st.error_code() == StatusCode::UNAVAILABLE ||
                              st.error_code() == StatusCode::DEADLINE_EXCEEDED) &&
                             !no_quorum;
      if (!transient || std::chrono::steady_clock::now() + 1s > give_up) {
        if (no_quorum || st.error_message().empty() ||
            (st.error_code() != StatusCode::UNAVAILABLE &&
             st.error_code() != StatusCode::DEADLINE_EXCEEDED)) {
          return st;
        }
        return {st.error_code(), "cannot join through " + manager_addr + ": " + WhyUnreachable(st)};
      }
      SKEP_LOG(info, "node", "joining through {} failed ({}); asking again", manager_addr,
               st.error_message());
      std::this_thread::sleep_for(500ms);
    }
  }

  api::LocalState state;
  state.set_node_id(joined.node_id());
  state.set_cluster_id(joined.cluster_id());
  state.set_raft_id(raft_id);
  state.set_role(joined.role());
  state.set_advertise_addr(advertise);
  state.set_listen_addr(listen);
  *state.mutable_managers() = joined.managers();
  try {
    dir_.WipeRaft();
    dir_.SaveCertificates(kr.key_pem, joined.cert_pem(), ca_pem);
    dir_.SaveState(state);
  } catch (const std::exception& e) {
    return {StatusCode::INTERNAL, e.what()};
  }
  state_ = state;
  std::vector<api::ManagerPeer> peers(joined.managers().begin(), joined.managers().end());
  if (joined.role() == api::ROLE_MANAGER) {
    try {
      StartManager(manager::ManagerOptions::Start::kJoin, peers);
    } catch (const std::exception& e) {
      error_ = e.what();
      return {StatusCode::INTERNAL,
              std::string("joined, but the manager did not start: ") + e.what()};
    }
  }
  StartAgent(peers);
  if (joined.role() == api::ROLE_MANAGER) {
    // A new manager starts as a learner; it counts toward quorum once it has caught up and the
    // leader promoted it. `swarm join` returns then, as Docker's does once the node is in raft.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline &&
           !raft::IsVoter(manager_->RaftStatus().conf, raft_id)) {
      std::this_thread::sleep_for(20ms);
    }
  }
  SKEP_LOG(info, "node", "joined swarm {} as {} ({})", joined.cluster_id(), joined.node_id(),
           joined.role() == api::ROLE_MANAGER ? "manager" : "worker");
  resp->set_node_id(joined.node_id());
  resp->set_role(joined.role());
  return grpc::Status::OK;
}

// ---------------------------------------------------------------------------------------------
// leave, info, role changes

grpc::Status NodeRuntime::Leave(const api::LeaveRequest& req, api::Empty*) {
  std::unique_lock lock(mu_);
  if (!state_) return {StatusCode::FAILED_PRECONDITION, kNotInSwarm};
  if (manager_ && !req.force()) {
    const raft::NodeStatus st = manager_->RaftStatus();
    const int managers = st.conf.voters_size();
    return {StatusCode::FAILED_PRECONDITION,
            "You are attempting to leave the swarm on a node that is participating as a manager. "
            "Demote it first ('skep node demote " +
                options_.hostname + "' on another manager), " +
                "or use --force to leave anyway: removing this node leaves " +
                std::to_string(managers - 1) + " managers out of " + std::to_string(managers) +
                ", and a swarm that loses its raft quorum can only be restored with " +
                "'skep swarm init --force-new-cluster'."};
  }
  auto agent = std::move(agent_);
  auto mgr = std::move(manager_);
  auto worker = std::move(worker_);
  auto gossip = std::move(gossip_);
  state_.reset();
  error_.clear();
  removed_.clear();
  lock.unlock();
  if (agent) agent->Stop();
  // The swarm's containers do not outlive the node's membership (Docker removes them too).
  if (worker) {
    worker->Leave(std::chrono::seconds(30));
    worker->Stop();
  }
  if (gossip) gossip->Stop(true);
  if (mgr) mgr->Stop();
  lock.lock();
  dir_.Wipe();
  SKEP_LOG(info, "node", "left the swarm");
  return grpc::Status::OK;
}

grpc::Status NodeRuntime::Info(api::InfoResponse* resp) {
  std::lock_guard lock(mu_);
  resp->set_engine_version(SKEP_VERSION);
  if (!state_) {
    resp->set_local_state("inactive");
    return grpc::Status::OK;
  }
  resp->set_local_state(!error_.empty()                        ? "error"
                        : agent_ && !agent_->Manager().empty() ? "active"
                                                               : "pending");
  resp->set_error(error_);
  resp->set_node_id(state_->node_id());
  resp->set_cluster_id(state_->cluster_id());
  resp->set_role(state_->role());
  resp->set_node_addr(state_->advertise_addr());
  *resp->mutable_managers() = state_->managers();
  resp->set_is_leader(manager_ && manager_->leadership().leader);
  return grpc::Status::OK;
}

void NodeRuntime::OnSession(const api::SessionMessage& msg) {
  std::lock_guard lock(mu_);
  removed_.clear();  // a session means the swarm knows this node
  if (gossip_) {
    // The swarm's keys, and the managers as the seeds of the gossip cluster.
    std::vector<std::string> keys(msg.network_keys().begin(), msg.network_keys().end());
    if (!keys.empty() && keys != gossip_->keys) {
      gossip_->agent->SetKeys(keys);
      gossip_->keys = std::move(keys);
    }
    std::vector<std::string> seeds;
    for (const auto& m : msg.managers()) {
      const std::string ip = m.addr().substr(0, m.addr().rfind(':'));
      if (m.node_id() != msg.node().id()) {
        seeds.push_back(ip + ":" + std::to_string(options_.gossip_port));
      }
    }
    // Joined again at every new session: a node that was cut off and is back (its session
    // is new) exchanges state with the managers at once instead of waiting for a reconnect.
    if (!seeds.empty() && (seeds != gossip_->seeds || msg.session_id() != gossip_->session)) {
      gossip_->agent->Join(seeds);
      gossip_->seeds = std::move(seeds);
      gossip_->session = msg.session_id();
    }
  }
  if (worker_ && msg.tasks_known()) {
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
  if (!state_ || msg.managers_size() == 0) return;
  auto same = [](const auto& a, const auto& b) {
    if (a.size() != b.size()) return false;
    for (int i = 0; i < a.size(); ++i) {
      if (!SameMessage(a[i], b[i])) return false;
    }
    return true;
  };
  if (same(state_->managers(), msg.managers())) return;
  // Kept on disk so that after a restart the agent knows where the managers are.
  *state_->mutable_managers() = msg.managers();
  try {
    dir_.SaveState(*state_);
  } catch (const std::exception& e) {
    SKEP_LOG(error, "node", "cannot save the list of managers: {}", e.what());
  }
}

void NodeRuntime::OnRole(api::NodeRole role) {
  std::unique_lock lock(mu_);
  if (!state_ || state_->role() == role) return;
  state_->set_role(role);
  try {
    dir_.SaveState(*state_);
  } catch (const std::exception& e) {
    // The certificate already carries the new role; the next start follows it.
    SKEP_LOG(error, "node", "cannot save the new role: {}", e.what());
  }
  if (role == api::ROLE_MANAGER) {
    SKEP_LOG(info, "node", "promoted: starting the manager");
    try {
      dir_.WipeRaft();
      StartManager(manager::ManagerOptions::Start::kJoin,
                   {state_->managers().begin(), state_->managers().end()});
      error_.clear();
    } catch (const std::exception& e) {
      error_ = std::string("the manager did not start: ") + e.what();
      SKEP_LOG(error, "node", "{}", error_);
    }
    return;
  }
  SKEP_LOG(info, "node", "demoted: stopping the manager");
  auto mgr = std::move(manager_);
  lock.unlock();
  if (mgr) mgr->Stop();
  lock.lock();
  dir_.WipeRaft();
}

}  // namespace skep::node
