#include "daemon/host/host.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <absl/synchronization/mutex.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <filesystem>
#include <future>
#include <optional>
#include <thread>

#include "control.grpc.pb.h"
#include "daemon/common/clock.h"
#include "daemon/common/grpc_status.h"
#include "daemon/common/log.h"
#include "daemon/common/pki.h"
#include "daemon/common/proto_bytes.h"
#include "daemon/common/version.h"
#include "daemon/manager/bootstrap.h"
#include "daemon/manager/control_api.h"
#include "daemon/manager/manager.h"
#include "daemon/node/join.h"
#include "raft/conf.h"

namespace skep::host {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const char kAlreadyInSwarm[] =
    "This node is already part of a swarm. Use \"skep swarm leave\" to leave this swarm and "
    "join another one.";
const char kNotInSwarm[] =
    "This node is not part of a swarm. Use \"skep swarm init\" or \"skep swarm join\" to "
    "connect it to one.";
const char kBusy[] =
    "another swarm operation (init, join, leave or a role change) is under way on this node; "
    "try again when it is done";

// How long `swarm join` of a manager waits for it to become a voter, as Docker's does.
constexpr auto kVoterWait = 30s;

}  // namespace

class Host::Impl : public std::enable_shared_from_this<Host::Impl> {
 public:
  explicit Impl(node::NodeOptions options)
      : strand_(asio::make_strand(io_)),
        blocking_(2),
        state_writes_(asio::make_strand(blocking_.get_executor())),
        node_(std::move(options), io_.get_executor(), blocking_.get_executor()) {}

  void Start();
  void Stop();

  // The LocalNode service's calls, each answered through `finish`.
  using Finish = std::function<void(const Status&)>;
  void Init(const api::InitRequest& req, api::InitResponse* resp, Finish finish);
  void Join(const api::JoinRequest& req, api::JoinResponse* resp, Finish finish);
  void Leave(const api::LeaveRequest& req, Finish finish);
  void Info(api::InfoResponse* resp, Finish finish);
  void Login(const api::LoginRequest& req, api::LoginResponse* resp, Finish finish);
  // The manager of this node, or why `skep`'s control calls cannot be served here.
  Status LocalManager(std::shared_ptr<manager::Manager>* out) const;

 private:
  // What the control socket's resolver reads from other threads; the strand writes it.
  struct Shown {
    bool in_swarm = false;
    api::NodeRole role = api::ROLE_WORKER;
    std::string error;  // this node's own failure (its manager did not start)
    std::shared_ptr<manager::Manager> manager;
  };
  void Show();
  // Runs `work` on the blocking pool, then `then` on the strand.
  template <class Work, class Then>
  void OffStrand(Work work, Then then) {
    asio::post(blocking_, [self = shared_from_this(), work = std::move(work),
                           then = std::move(then)]() mutable {
      auto result = work();
      asio::post(self->strand_, [then = std::move(then), result = std::move(result)]() mutable {
        then(std::move(result));
      });
    });
  }
  std::shared_ptr<manager::Manager> MakeManager(manager::ManagerOptions::Start mode,
                                                std::vector<api::ManagerPeer> peers,
                                                std::vector<api::StoreAction> initial = {});
  void StartNode();
  void OnSession(const api::SessionMessage& msg);
  void OnRole(api::NodeRole role);
  // A swarm operation is over: a role change that came meanwhile is applied now.
  void Idle();
  void InitNew(const api::InitRequest& req, api::InitResponse* resp, Finish finish);
  void ForceNewCluster(api::InitResponse* resp, Finish finish);
  void Joined(node::Joined j, api::JoinResponse* resp, Finish finish);
  void AwaitVoter(uint64_t raft_id, std::function<void()> then);
  void SaveState();

  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
  std::vector<std::thread> threads_;
  asio::strand<asio::io_context::executor_type> strand_;
  asio::thread_pool blocking_;
  // The state file's writes, one at a time and in order.
  asio::strand<asio::thread_pool::executor_type> state_writes_;
  node::Node node_;
  bool stopped_ = false;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Service> local_node_service_;
  std::unique_ptr<grpc::Service> local_control_service_;

  // On the strand.
  std::optional<api::LocalState> state_;
  std::shared_ptr<manager::Manager> manager_;
  bool busy_ = false;     // a swarm operation is under way
  std::optional<api::NodeRole> pending_role_;  // a role change that came meanwhile
  bool stopping_ = false;
  std::string error_;     // this node's own failure (its manager did not start)
  std::string removed_;   // the swarm says it does not know this node

  mutable absl::Mutex mu_;
  Shown shown_ ABSL_GUARDED_BY(mu_);
};

// ---- the control socket -----------------------------------------------------------------------

namespace {

// The host outlives it: the server is shut down before the host stops.
class LocalNodeService final : public api::LocalNode::CallbackService {
 public:
  explicit LocalNodeService(Host::Impl* host) : host_(host) {}

  grpc::ServerUnaryReactor* Init(grpc::CallbackServerContext* c, const api::InitRequest* req,
                                 api::InitResponse* resp) override {
    auto* r = c->DefaultReactor();
    host_->Init(*req, resp, [r](const Status& st) { r->Finish(ToGrpc(st)); });
    return r;
  }
  grpc::ServerUnaryReactor* Join(grpc::CallbackServerContext* c, const api::JoinRequest* req,
                                 api::JoinResponse* resp) override {
    auto* r = c->DefaultReactor();
    host_->Join(*req, resp, [r](const Status& st) { r->Finish(ToGrpc(st)); });
    return r;
  }
  grpc::ServerUnaryReactor* Leave(grpc::CallbackServerContext* c, const api::LeaveRequest* req,
                                  api::Empty*) override {
    auto* r = c->DefaultReactor();
    host_->Leave(*req, [r](const Status& st) { r->Finish(ToGrpc(st)); });
    return r;
  }
  grpc::ServerUnaryReactor* Info(grpc::CallbackServerContext* c, const api::Empty*,
                                 api::InfoResponse* resp) override {
    auto* r = c->DefaultReactor();
    host_->Info(resp, [r](const Status& st) { r->Finish(ToGrpc(st)); });
    return r;
  }
  grpc::ServerUnaryReactor* Login(grpc::CallbackServerContext* c, const api::LoginRequest* req,
                                  api::LoginResponse* resp) override {
    auto* r = c->DefaultReactor();
    host_->Login(*req, resp, [r](const Status& st) { r->Finish(ToGrpc(st)); });
    return r;
  }

 private:
  Host::Impl* host_;
};

}  // namespace

void Host::Impl::Show() {
  absl::MutexLock lock(&mu_);
  shown_.in_swarm = state_.has_value();
  shown_.role = state_ ? state_->role() : api::ROLE_WORKER;
  shown_.error = error_;
  shown_.manager = manager_;
}

Status Host::Impl::LocalManager(std::shared_ptr<manager::Manager>* out) const {
  absl::MutexLock lock(&mu_);
  if (!shown_.in_swarm) {
    return FailedPrecondition(
        "This node is not a swarm manager. Use \"skep swarm init\" or \"skep swarm join\" to "
        "connect this node to a swarm and try again.");
  }
  if (!shown_.manager && shown_.role == api::ROLE_MANAGER) {
    return Unavailable("this node's manager is not running: " +
                       (shown_.error.empty() ? std::string("see skepd's log") : shown_.error));
  }
  if (!shown_.manager) {
    return FailedPrecondition(
        "This node is not a swarm manager. Worker nodes can't be used to view or modify "
        "cluster state. Run this command on a manager node or promote this node to a "
        "manager.");
  }
  *out = shown_.manager;
  return Status::Ok();
}

// ---- start and stop ---------------------------------------------------------------------------

void Host::Impl::Start() {
  guard_.emplace(asio::make_work_guard(io_));
  for (int i = 0; i < 2; ++i) {
    threads_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "host-io");
      io_.run();
    });
  }
  const node::DataDir& dir = node_.dir();
  fs::create_directories(dir.path());
  fs::permissions(dir.path(), fs::perms::owner_all, fs::perm_options::replace);
  state_ = dir.LoadState();
  if (state_) {
    // A crash between a renewed certificate and the state file leaves them disagreeing; the
    // certificate is what the swarm issued, so it wins.
    try {
      const pki::CertInfo cert = pki::ParseCertificate(dir.ReadFile(dir.Certs().cert));
      const api::NodeRole role =
          cert.role == pki::kManagerRole ? api::ROLE_MANAGER : api::ROLE_WORKER;
      if (role != state_->role()) {
        SKEP_LOG(warn, "node", "the node certificate says {}; following it", cert.role);
        state_->set_role(role);
        dir.SaveState(*state_);
      }
    } catch (const std::exception& e) {
      throw std::runtime_error("cannot read this node's certificate in " + dir.CertDir() + ": " +
                               e.what());
    }
    SKEP_LOG(info, "node", "resuming node {} of swarm {} as a {}", state_->node_id(),
             state_->cluster_id(), state_->role() == api::ROLE_MANAGER ? "manager" : "worker");
    if (state_->role() == api::ROLE_MANAGER) {
      manager_ = MakeManager(manager::ManagerOptions::Start::kResume,
                             {state_->managers().begin(), state_->managers().end()});
    }
  }
  // The rest of the state is the strand's from now on.
  std::promise<void> started;
  asio::post(strand_, [&] {
    if (state_) StartNode();
    Show();
    started.set_value();
  });
  started.get_future().wait();

  const std::string& socket = node_.options().control_socket;
  fs::create_directories(fs::path(socket).parent_path());
  std::error_code ec;
  fs::remove(socket, ec);  // left by a skepd that did not stop cleanly
  local_node_service_ = std::make_unique<LocalNodeService>(this);
  // The CLI's control calls go to this node's manager (any manager serves them).
  local_control_service_ = std::make_unique<manager::ControlService>(
      [weak = weak_from_this()](const grpc::ServerContextBase&, manager::ControlTarget* t) {
        auto self = weak.lock();
        if (!self) return Unavailable("skepd is stopping");
        std::shared_ptr<manager::Manager> m;
        if (Status st = self->LocalManager(&m); !st.ok()) return st;
        t->api = &m->control();
        t->keep_alive = m;
        return Status::Ok();
      });
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket, grpc::InsecureServerCredentials());
  builder.RegisterService(local_node_service_.get());
  builder.RegisterService(local_control_service_.get());
  const mode_t old = umask(077);  // the socket is for root only
  server_ = builder.BuildAndStart();
  umask(old);
  if (!server_) throw std::runtime_error("cannot listen on the control socket " + socket);
  SKEP_LOG(info, "node", "control socket {}", socket);
}

void Host::Impl::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + 2s);
    server_.reset();
  }
  // The parts are taken from the strand and stopped here: stopping blocks (threads end).
  std::shared_ptr<manager::Manager> mgr;
  std::promise<void> taken;
  asio::post(strand_, [&] {
    stopping_ = true;
    mgr = std::move(manager_);
    Show();
    taken.set_value();
  });
  if (!threads_.empty()) taken.get_future().wait();
  node_.Stop();
  if (mgr) mgr->Stop();
  blocking_.join();
  // A manager that an operation under way started meanwhile (a promotion) goes too.
  if (!threads_.empty()) {
    std::promise<void> late;
    asio::post(strand_, [&] {
      mgr = std::move(manager_);
      late.set_value();
    });
    late.get_future().wait();
    if (mgr) mgr->Stop();
  }
  guard_.reset();
  io_.stop();
  for (auto& t : threads_)
    t.join();
  threads_.clear();
}

std::shared_ptr<manager::Manager> Host::Impl::MakeManager(manager::ManagerOptions::Start mode,
                                                          std::vector<api::ManagerPeer> peers,
                                                          std::vector<api::StoreAction> initial) {
  manager::ManagerOptions mo;
  mo.data_dir = node_.dir().path();
  mo.registry = node_.Registries();
  mo.node_id = state_->node_id();
  mo.raft_id = state_->raft_id();
  mo.advertise_addr = state_->advertise_addr();
  mo.listen_addr = state_->listen_addr();
  mo.tls = node_.dir().Certs();
  mo.start = mode;
  mo.peers = std::move(peers);
  mo.initial_objects = std::move(initial);
  auto m = std::make_shared<manager::Manager>(std::move(mo));
  m->Start();
  return m;
}

void Host::Impl::StartNode() {
  node::SessionCallbacks cb;
  std::weak_ptr<Impl> weak = weak_from_this();
  cb.on_session = [weak](const api::SessionMessage& msg) {
    if (auto self = weak.lock()) asio::post(self->strand_, [self, msg] { self->OnSession(msg); });
  };
  cb.on_role = [weak](api::NodeRole role) {
    if (auto self = weak.lock()) asio::post(self->strand_, [self, role] { self->OnRole(role); });
  };
  cb.on_removed = [weak](const std::string& why) {
    if (auto self = weak.lock()) asio::post(self->strand_, [self, why] { self->removed_ = why; });
  };
  node_.Start(*state_, std::move(cb));
}

void Host::Impl::SaveState() {
  // Replaced atomically on disk, off the strand, in the order of the changes.
  asio::post(state_writes_, [dir = node_.dir(), st = *state_] {
    try {
      dir.SaveState(st);
    } catch (const std::exception& e) {
      SKEP_LOG(error, "node", "cannot save the node's state: {}", e.what());
    }
  });
}

// ---- session news -----------------------------------------------------------------------------

void Host::Impl::OnSession(const api::SessionMessage& msg) {
  removed_.clear();  // a session means the swarm knows this node
  if (!state_ || msg.managers_size() == 0) return;
  const auto& was = state_->managers();
  const bool same = was.size() == msg.managers().size() &&
                    std::equal(was.begin(), was.end(), msg.managers().begin(),
                               [](const auto& a, const auto& b) { return SameMessage(a, b); });
  if (same) return;
  // Kept on disk so that after a restart the node knows where the managers are.
  *state_->mutable_managers() = msg.managers();
  SaveState();
}

void Host::Impl::Idle() {
  busy_ = false;
  if (!pending_role_) return;
  // After the completion that called this is done with the state.
  asio::post(strand_, [self = shared_from_this(), role = *pending_role_] { self->OnRole(role); });
  pending_role_.reset();
}

void Host::Impl::OnRole(api::NodeRole role) {
  if (stopping_ || !state_ || state_->role() == role) return;
  if (busy_) {
    pending_role_ = role;  // applied once the operation under way is over
    return;
  }
  busy_ = true;
  state_->set_role(role);
  SaveState();
  if (role == api::ROLE_MANAGER) {
    SKEP_LOG(info, "node", "promoted: starting the manager");
    std::vector<api::ManagerPeer> peers(state_->managers().begin(), state_->managers().end());
    OffStrand(
        [self = shared_from_this(), peers]() -> std::pair<std::shared_ptr<manager::Manager>, std::string> {
          try {
            self->node_.dir().WipeRaft();
            return {self->MakeManager(manager::ManagerOptions::Start::kJoin, peers), ""};
          } catch (const std::exception& e) {
            return {nullptr, e.what()};
          }
        },
        [self = shared_from_this()](std::pair<std::shared_ptr<manager::Manager>, std::string> r) {
          self->Idle();
          self->manager_ = std::move(r.first);
          self->error_ = r.second.empty() ? "" : "the manager did not start: " + r.second;
          if (!self->error_.empty()) SKEP_LOG(error, "node", "{}", self->error_);
          self->Show();
        });
    return;
  }
  SKEP_LOG(info, "node", "demoted: stopping the manager");
  auto mgr = std::move(manager_);
  Show();
  OffStrand(
      [self = shared_from_this(), mgr]() {
        if (mgr) mgr->Stop();
        self->node_.dir().WipeRaft();
        return true;
      },
      [self = shared_from_this()](bool) { self->Idle(); });
}

// ---- init -------------------------------------------------------------------------------------

void Host::Impl::Init(const api::InitRequest& req, api::InitResponse* resp, Finish finish) {
  asio::post(strand_, [self = shared_from_this(), req, resp, finish = std::move(finish)] {
    if (self->busy_) return finish(FailedPrecondition(kBusy));
    if (req.force_new_cluster()) return self->ForceNewCluster(resp, finish);
    if (self->state_) return finish(FailedPrecondition(kAlreadyInSwarm));
    self->InitNew(req, resp, finish);
  });
}

void Host::Impl::InitNew(const api::InitRequest& req, api::InitResponse* resp, Finish finish) {
  node::Addresses addresses;
  if (Status st = node::ChooseAddresses(req.listen_addr(), req.advertise_addr(),
                                        req.data_path_addr(), "", &addresses);
      !st.ok()) {
    return finish(st);
  }
  busy_ = true;
  api::LocalState st;
  st.set_node_id(pki::RandomId());
  st.set_raft_id(node::NewRaftId());
  st.set_role(api::ROLE_MANAGER);
  st.set_advertise_addr(addresses.advertise);
  st.set_listen_addr(addresses.listen);
  st.set_data_path_addr(addresses.data_path);
  api::ManagerPeer* me = st.add_managers();
  me->set_node_id(st.node_id());
  me->set_raft_id(st.raft_id());
  me->set_addr(addresses.advertise);
  struct Made {
    Status status;
    manager::NewSwarm swarm;
    std::shared_ptr<manager::Manager> manager;
  };
  state_ = st;
  // The swarm's CA is made, its certificates written and its first manager started (the raft
  // log opened) off the strand.
  OffStrand(
      [self = shared_from_this(), req, st]() {
        Made made;
        made.status = manager::Bootstrap(req, st.node_id(), st.raft_id(), st.advertise_addr(),
                                         self->node_.Describe(), NowNanos(), &made.swarm);
        if (!made.status.ok()) return made;
        try {
          self->node_.dir().WipeRaft();
          self->node_.dir().SaveCertificates(made.swarm.node_key_pem, made.swarm.node_cert_pem,
                                             made.swarm.ca_cert_pem);
          made.manager = self->MakeManager(manager::ManagerOptions::Start::kNewCluster, {},
                                           made.swarm.Objects());
        } catch (const std::exception& e) {
          made.status = Internal(e.what());
        }
        return made;
      },
      [self = shared_from_this(), resp, finish](Made made) {
        auto failed = [self, finish](Status why, std::shared_ptr<manager::Manager> m) {
          self->state_.reset();
          self->OffStrand(
              [self, m] {
                if (m) m->Stop();
                self->node_.dir().Wipe();
                return true;
              },
              [self, finish, why](bool) {
                self->Idle();
                finish(why);
              });
        };
        if (!made.status.ok()) return failed(made.status, made.manager);
        self->state_->set_cluster_id(made.swarm.cluster.id());
        auto m = made.manager;
        m->WhenReady(10s, [self, resp, finish, failed, made = std::move(made)](const Status& st) {
          asio::post(self->strand_, [self, resp, finish, failed, made, st] {
            if (!st.ok()) return failed(st, made.manager);
            self->manager_ = made.manager;
            self->SaveState();
            self->StartNode();
            self->Show();
            self->Idle();
            SKEP_LOG(info, "node", "initialized swarm {} with this node {} as its manager at {}",
                     made.swarm.cluster.id(), self->state_->node_id(),
                     self->state_->advertise_addr());
            resp->set_node_id(self->state_->node_id());
            resp->set_worker_token(made.swarm.cluster.root_ca().join_tokens().worker());
            resp->set_manager_addr(self->state_->advertise_addr());
            finish(Status::Ok());
          });
        });
      });
}

void Host::Impl::ForceNewCluster(api::InitResponse* resp, Finish finish) {
  if (!state_ || state_->role() != api::ROLE_MANAGER) {
    return finish(FailedPrecondition(
        "--force-new-cluster recovers a swarm from one of its managers, and this node is not a "
        "manager of any swarm"));
  }
  busy_ = true;
  auto old = std::move(manager_);
  Show();
  OffStrand(
      [self = shared_from_this(),
       old]() mutable -> std::pair<std::shared_ptr<manager::Manager>, std::string> {
        if (old) old->Stop();
        old.reset();
        try {
          return {self->MakeManager(manager::ManagerOptions::Start::kForceNewCluster, {}), ""};
        } catch (const std::exception& e) {
          return {nullptr, std::string("cannot force a new cluster: ") + e.what()};
        }
      },
      [self = shared_from_this(), resp, finish](
          std::pair<std::shared_ptr<manager::Manager>, std::string> r) {
        if (!r.first) {
          self->Idle();
          self->error_ = r.second;
          self->Show();
          return finish(Internal(r.second));
        }
        self->manager_ = r.first;
        self->Show();
        r.first->WhenReady(10s, [self, resp, finish, m = r.first](const Status& st) {
          asio::post(self->strand_, [self, resp, finish, m, st] {
            self->Idle();
            if (!st.ok()) return finish(st);
            self->state_->clear_managers();
            api::ManagerPeer* me = self->state_->add_managers();
            me->set_node_id(self->state_->node_id());
            me->set_raft_id(self->state_->raft_id());
            me->set_addr(self->state_->advertise_addr());
            self->SaveState();
            resp->set_node_id(self->state_->node_id());
            if (auto c = m->store().GetCluster()) {
              resp->set_worker_token(c->root_ca().join_tokens().worker());
            }
            resp->set_manager_addr(self->state_->advertise_addr());
            finish(Status::Ok());
          });
        });
      });
}

// ---- join -------------------------------------------------------------------------------------

void Host::Impl::Join(const api::JoinRequest& req, api::JoinResponse* resp, Finish finish) {
  asio::post(strand_, [self = shared_from_this(), req, resp, finish = std::move(finish)] {
    if (self->busy_) return finish(FailedPrecondition(kBusy));
    if (self->state_) return finish(FailedPrecondition(kAlreadyInSwarm));
    self->busy_ = true;
    // The calls to the swarm's manager hold nothing: their answers come back to the strand.
    node::JoinSwarm(self->strand_, req, self->node_.Describe(),
                    [self, resp, finish](const Status& st, node::Joined j) {
                      if (!st.ok()) {
                        self->Idle();
                        return finish(st);
                      }
                      self->Joined(std::move(j), resp, finish);
                    });
  });
}

void Host::Impl::Joined(node::Joined j, api::JoinResponse* resp, Finish finish) {
  api::LocalState state;
  state.set_node_id(j.answer.node_id());
  state.set_cluster_id(j.answer.cluster_id());
  state.set_raft_id(j.raft_id);
  state.set_role(j.answer.role());
  state.set_advertise_addr(j.addresses.advertise);
  state.set_listen_addr(j.addresses.listen);
  state.set_data_path_addr(j.addresses.data_path);
  *state.mutable_managers() = j.answer.managers();
  state_ = state;
  const bool manager = j.answer.role() == api::ROLE_MANAGER;
  struct Started {
    Status status;
    std::shared_ptr<manager::Manager> manager;
  };
  OffStrand(
      [self = shared_from_this(), j, state, manager]() {
        Started s;
        try {
          self->node_.dir().WipeRaft();
          self->node_.dir().SaveCertificates(j.key.key_pem, j.answer.cert_pem(), j.ca_pem);
          self->node_.dir().SaveState(state);
        } catch (const std::exception& e) {
          s.status = Internal(e.what());
          return s;
        }
        if (manager) {
          try {
            s.manager = self->MakeManager(
                manager::ManagerOptions::Start::kJoin,
                {state.managers().begin(), state.managers().end()});
          } catch (const std::exception& e) {
            s.status = Internal(std::string("joined, but the manager did not start: ") + e.what());
          }
        }
        return s;
      },
      [self = shared_from_this(), resp, finish, j, manager](Started s) {
        if (!s.status.ok() && !manager) {
          self->state_.reset();
          self->Idle();
          return finish(s.status);
        }
        self->manager_ = s.manager;
        if (!s.status.ok()) self->error_ = s.status.message();
        self->StartNode();
        self->Show();
        auto done = [self, resp, finish, j, status = s.status] {
          self->Idle();
          if (!status.ok()) return finish(status);
          SKEP_LOG(info, "node", "joined swarm {} as {} ({})", j.answer.cluster_id(),
                   j.answer.node_id(),
                   j.answer.role() == api::ROLE_MANAGER ? "manager" : "worker");
          resp->set_node_id(j.answer.node_id());
          resp->set_role(j.answer.role());
          finish(Status::Ok());
        };
        if (!s.manager) return done();
        // A new manager starts as a learner; it counts toward quorum once it has caught up and
        // the leader promoted it. `swarm join` returns then, as Docker's does once the node is
        // in raft.
        self->AwaitVoter(j.raft_id, done);
      });
}

void Host::Impl::AwaitVoter(uint64_t raft_id, std::function<void()> then) {
  struct Wait : std::enable_shared_from_this<Wait> {
    std::function<void()> then;
    bool done = false;  // on the strand
    Subscription watch;
    std::unique_ptr<Timer> timer;
    void Finish() {
      if (done) return;
      done = true;
      watch.Cancel();
      timer.reset();
      then();
    }
  };
  auto w = std::make_shared<Wait>();
  w->then = std::move(then);
  auto check = [self = shared_from_this(), w, raft_id](const raft::NodeStatus& st) {
    if (!raft::IsVoter(st.conf, raft_id)) return;
    asio::post(self->strand_, [w] { w->Finish(); });
  };
  w->watch = manager_->WatchStatus(check);
  w->timer = SystemClock().After(strand_, kVoterWait, [w] { w->Finish(); });
  check(manager_->RaftStatus());
}

// ---- leave, info, login -----------------------------------------------------------------------

void Host::Impl::Leave(const api::LeaveRequest& req, Finish finish) {
  asio::post(strand_, [self = shared_from_this(), req, finish = std::move(finish)] {
    if (self->busy_) return finish(FailedPrecondition(kBusy));
    if (!self->state_) return finish(FailedPrecondition(kNotInSwarm));
    if (self->manager_ && !req.force()) {
      const raft::NodeStatus st = self->manager_->RaftStatus();
      const int managers = st.conf.voters_size();
      return finish(FailedPrecondition(
          "You are attempting to leave the swarm on a node that is participating as a manager. "
          "Demote it first ('skep node demote " +
          self->node_.options().hostname + "' on another manager), " +
          "or use --force to leave anyway: removing this node leaves " +
          std::to_string(managers - 1) + " managers out of " + std::to_string(managers) +
          ", and a swarm that loses its raft quorum can only be restored with " +
          "'skep swarm init --force-new-cluster'."));
    }
    self->busy_ = true;
    auto mgr = std::move(self->manager_);
    self->state_.reset();
    self->error_.clear();
    self->removed_.clear();
    self->Show();
    self->OffStrand(
        [self, mgr] {
          self->node_.Leave(30s);
          if (mgr) mgr->Stop();
          self->node_.dir().Wipe();
          return true;
        },
        [self, finish](bool) {
          self->Idle();
          SKEP_LOG(info, "node", "left the swarm");
          finish(Status::Ok());
        });
  });
}

void Host::Impl::Info(api::InfoResponse* resp, Finish finish) {
  asio::post(strand_, [self = shared_from_this(), resp, finish = std::move(finish)] {
    resp->set_engine_version(std::string(Version()));
    if (!self->state_) {
      resp->set_local_state("inactive");
      return finish(Status::Ok());
    }
    resp->set_local_state(!self->error_.empty()          ? "error"
                          : !self->node_.Manager().empty() ? "active"
                                                           : "pending");
    resp->set_error(self->error_);
    resp->set_node_id(self->state_->node_id());
    resp->set_cluster_id(self->state_->cluster_id());
    resp->set_role(self->state_->role());
    resp->set_node_addr(self->state_->advertise_addr());
    *resp->mutable_managers() = self->state_->managers();
    resp->set_is_leader(self->manager_ && self->manager_->leadership().leader);
    finish(Status::Ok());
  });
}

void Host::Impl::Login(const api::LoginRequest& req, api::LoginResponse* resp, Finish finish) {
  // The registry is asked off the strand.
  asio::post(blocking_, [self = shared_from_this(), req, resp, finish = std::move(finish)] {
    finish(self->node_.Login(req, resp));
  });
}

// ---------------------------------------------------------------------------------------------

Host::Host(node::NodeOptions options) : impl_(std::make_shared<Impl>(std::move(options))) {}

Host::~Host() {
  Stop();
}

void Host::Start() {
  impl_->Start();
}

void Host::Stop() {
  if (impl_) impl_->Stop();
}

}  // namespace skep::host
