#include "daemon/manager/manager.h"

#include <grpcpp/grpcpp.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include "daemon/common/log.h"
#include "daemon/common/mutex.h"
#include "daemon/common/pki.h"
#include "daemon/manager/allocator/component.h"
#include "daemon/manager/awaitable.h"
#include "daemon/manager/ca_service.h"
#include "daemon/manager/control_api.h"
#include "daemon/manager/defaults.h"
#include "daemon/manager/dispatcher.h"
#include "daemon/manager/group.h"
#include "daemon/manager/network_keys.h"
#include "daemon/manager/orchestrator/orchestrator.h"
#include "daemon/manager/raft_node.h"
#include "daemon/manager/raft_transport.h"
#include "daemon/manager/task_scheduler.h"
#include "raft/conf.h"
#include "raft/rocks_storage.h"

namespace skep::manager {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// Raft runs on a 10 ms clock; the cluster's settings are converted to ticks of it. A follower's
// election timeout is drawn among the ticks between one and two timeouts: 40 of them at 400 ms,
// where 50 ms ticks gave 8 and the two followers of a dead leader often timed out together
// (raft's pre-candidate stand-down keeps them from splitting the vote when they still do).
constexpr std::chrono::milliseconds kTick(10);
// A leader steps down after this many election timeouts without a quorum's answers: a leader
// busy with a thousand nodes reads its followers' answers hundreds of milliseconds late, and
// stepping down then costs a new leader's ramp-up (every node's session and resync) while the
// followers still hear it. A leader cut off from the others is replaced as soon (they elect
// after one timeout); it only notices later.
constexpr int kCheckQuorumTimeouts = 3;
// A request waits at most this many election timeouts for a leader (or for this one to serve):
// enough for an election after a leader is lost, and for a cut-off leader to step down.
constexpr int kLeaderWaitTimeouts = 10;

int ToTicks(int64_t ms) {
  return static_cast<int>(std::max<int64_t>(1, ms / kTick.count()));
}

std::string CleanupMarker(const ManagerOptions& o) {
  return o.data_dir + "/force-new-cluster.pending";
}

}  // namespace

Status FromRaft(const raft::Status& st) {
  switch (st.code()) {
    case raft::ErrorCode::kOk:
      return Status::Ok();
    case raft::ErrorCode::kNotLeader:
      return {Code::kNotLeader, st.message()};
    case raft::ErrorCode::kOutcomeUnknown:
      return {Code::kOutcomeUnknown, st.message()};
    case raft::ErrorCode::kTransferInProgress:
    case raft::ErrorCode::kConfChangePending:
    case raft::ErrorCode::kNotCaughtUp:
      return {Code::kUnavailable, st.message()};
    case raft::ErrorCode::kInvalidConfChange:
    case raft::ErrorCode::kInvalidArgument:
      return {Code::kInvalidArgument, st.message()};
  }
  return {Code::kInternal, st.message()};
}

class Manager::Impl {
 public:
  explicit Impl(Manager* m) : m(m) {}
  void RewriteForNewCluster();
  asio::awaitable<Status> Ready(std::chrono::milliseconds timeout);
  void OnLeaderChange(raft::NodeId lead, raft::Term term, bool self, raft::Term led);

  Manager* m;
  Store store;
  // The components' strands and the gRPC-free work run on two threads.
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::vector<std::thread> threads;
  // The raft node's clock and serializer have a thread of their own: ticks and heartbeats are
  // not queued behind the components' passes and the dispatcher's session messages on `io`.
  asio::io_context raft_io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> raft_guard;
  std::thread raft_thread;
  // Registry requests block (the registry client is synchronous): they run here.
  std::optional<asio::thread_pool> blocking;

  std::unique_ptr<raft::RocksStorage> storage;
  std::unique_ptr<GrpcRaftTransport> transport;
  std::unique_ptr<RaftNode> raft;
  std::unique_ptr<Group> group;
  std::shared_ptr<Dispatcher> dispatcher;
  std::unique_ptr<ControlApi> control;
  std::unique_ptr<ControlService> control_service;
  std::unique_ptr<CAService> ca_service;
  std::unique_ptr<RaftService> raft_service;
  std::unique_ptr<DispatcherService> dispatcher_service;
  std::unique_ptr<grpc::Server> server;
  std::shared_ptr<grpc::ChannelCredentials> credentials;

  Mutex channels_mu;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels SKEP_GUARDED_BY(channels_mu);

  std::atomic<bool> stopped{false};
  // --force-new-cluster: set once the managers it left out are demoted.
  std::atomic<bool> cleanup_pending{false};
  Observers<> cleaned_up;
};

// ---------------------------------------------------------------------------------------------

Manager::Manager(ManagerOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>(this)) {
  self_.node_id = options_.node_id;
  self_.raft_id = options_.raft_id;
  self_.advertise_addr = options_.advertise_addr;
}

Manager::~Manager() {
  Stop();
}

ControlApi& Manager::control() {
  return *impl_->control;
}

void Manager::Impl::RewriteForNewCluster() {
  // Everything this manager holds counts as committed, and a configuration entry makes it the
  // only member (§4.1: the latest configuration in the log is the one in force).
  const raft::Index last = storage->LastIndex();
  const raft::Term term =
      std::max<raft::Term>(storage->HardState().term(), storage->TermAt(last).value_or(0)) + 1;
  raftpb::ConfChange cc;
  cc.set_type(raftpb::CONF_REMOVE);
  *cc.mutable_result() = raft::MakeConfState({m->options_.raft_id});
  raftpb::Entry e;
  e.set_index(last + 1);
  e.set_term(term);
  e.set_type(raftpb::ENTRY_CONF_CHANGE);
  e.set_data(cc.SerializeAsString());
  raftpb::HardState hs;
  hs.set_term(term);
  hs.set_vote(m->options_.raft_id);
  hs.set_commit(last + 1);
  storage->Save(&hs, {e}, nullptr);
  // Until the other managers are demoted in the store (the first thing this manager does as
  // leader), a restart must not forget that they have to be.
  std::ofstream(CleanupMarker(m->options_))
      << "demote the managers left out by --force-new-cluster\n";
  SKEP_LOG(warn, "manager",
           "forced a new cluster: this manager is now the only raft member "
           "(log up to index {} kept)",
           last);
}

void Manager::Impl::OnLeaderChange(raft::NodeId lead, raft::Term term, bool self, raft::Term led) {
  SKEP_LOG(info, "raft", "leader is now {} (term {}){}", lead, term, self ? ", this node" : "");
  if (led == term && !self && lead == raft::kNoNode) {
    // Check-quorum: no quorum answered in time. Whether the answers reached this process at
    // all (its network threads) tells a lost peer from a busy one.
    const raft::NodeStatus st = raft->GetStatus();
    std::vector<uint64_t> others;
    for (uint64_t v : st.conf.voters()) {
      if (v != m->options_.raft_id) others.push_back(v);
    }
    const auto silent = transport->Silent(others, group->ElectionTimeout());
    SKEP_LOG(warn, "raft",
             "stepped down in term {}: no quorum of managers answered within {} election "
             "timeouts; {} of {} were heard from within the last one",
             term, kCheckQuorumTimeouts, others.size() - silent.size(), others.size());
  }
  group->OnLeaderChange(lead, term, self);
}

void Manager::Start() {
  OpenLog();
  AddComponents(StartRaft());
  MakeServices();
  RunThreads();
  Listen();
}

// Opens the raft log, and checks it against how this manager starts.
void Manager::OpenLog() {
  const ManagerOptions& o = options_;
  const auto opening = std::chrono::steady_clock::now();
  impl_->storage = raft::RocksStorage::Open(o.data_dir + "/raft");
  if (!impl_->storage->Empty()) {
    SKEP_LOG(info, "raft", "log opened in {} ms: entries {}-{}, a snapshot of {} bytes",
             std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now() - opening)
                 .count(),
             impl_->storage->FirstIndex(), impl_->storage->LastIndex(),
             impl_->storage->Snapshot()->data().size());
  }
  switch (o.start) {
    case ManagerOptions::Start::kNewCluster:
      if (!impl_->storage->Empty()) {
        throw std::runtime_error("the raft log in " + o.data_dir + "/raft already holds a cluster");
      }
      impl_->storage->Bootstrap(raft::MakeConfState({o.raft_id}));
      break;
    case ManagerOptions::Start::kJoin:
      if (!impl_->storage->Empty()) {
        throw std::runtime_error("the raft log in " + o.data_dir + "/raft is not empty");
      }
      break;
    case ManagerOptions::Start::kForceNewCluster:
      impl_->RewriteForNewCluster();
      break;
    case ManagerOptions::Start::kResume:
      break;
  }
  impl_->cleanup_pending = std::filesystem::exists(CleanupMarker(o));
}

// The raft transport and node (not started yet).
std::map<uint64_t, std::string> Manager::StartRaft() {
  const ManagerOptions& o = options_;
  impl_->credentials = tls::NodeCredentials(o.tls);
  impl_->transport =
      std::make_unique<GrpcRaftTransport>(asio::any_io_executor(impl_->io.get_executor()),
                                          impl_->credentials, o.raft_id, o.advertise_addr);
  std::map<uint64_t, std::string> known;
  for (const auto& p : o.peers) {
    if (p.raft_id() != o.raft_id && !p.addr().empty()) {
      known[p.raft_id()] = p.addr();
      impl_->transport->SetPeer(p.raft_id(), p.addr());
    }
  }

  RaftNodeOptions ro;
  ro.raft.id = o.raft_id;
  ro.raft.seed = o.raft_id ^ static_cast<uint64_t>(NowNanos());
  ro.raft.heartbeat_tick = ToTicks(kRaftHeartbeatMs);
  ro.raft.election_tick = ToTicks(kElectionTimeoutMs);
  ro.tick = kTick;
  // Appends of up to 1 MB each, at most 32 unacknowledged to a follower: a slow follower is not
  // sent (and this manager does not queue) hundreds of megabytes of log ahead of its reads.
  ro.raft.max_inflight_msgs = 32;
  ro.raft.check_quorum_timeouts = kCheckQuorumTimeouts;
  ro.snapshot_every = 10000;
  ro.snapshot_keep = 2000;
  // A large service's batches: a start reads at most about 20 MB of log and replays 16 MB.
  ro.snapshot_bytes = 16 << 20;
  ro.snapshot_keep_bytes = 4 << 20;
  ro.inline_callers = false;  // all of it on the raft thread (below)
  // The store's apply waits for its readers (a pass over 100,000 tasks): never the raft
  // thread, whose heartbeats keep the followers from electing.
  ro.apply_thread = true;
  impl_->raft = std::make_unique<RaftNode>(impl_->raft_io, ro, impl_->storage.get(),
                                           impl_->transport.get(), &impl_->store);
  impl_->raft->OnFatal([](const std::string& why) {
    // A manager that can no longer write its log must not go on looking like a member (or a
    // leader): exit, and let the next start report the damage.
    SKEP_LOG(critical, "raft", "the raft log failed; skepd exits: {}", why);
    spdlog::shutdown();
    std::_Exit(1);
  });

  return known;
}

// The manager group and the components it runs.
void Manager::AddComponents(std::map<uint64_t, std::string> known) {
  const ManagerOptions& o = options_;
  Group::Options go;
  go.self = self_;
  go.known_peers = std::move(known);
  go.heartbeat_ms = kRaftHeartbeatMs;
  go.election_ms = kElectionTimeoutMs;
  go.ticks = ToTicks;
  impl_->group = std::make_unique<Group>(MakeStrand(), go, impl_->store, *impl_->raft,
                                         *impl_->transport, clock());
  impl_->raft->OnLeaderChange(
      [this, led = raft::Term{0}](raft::NodeId lead, raft::Term term, bool self) mutable {
        impl_->OnLeaderChange(lead, term, self, led);
        led = self ? term : 0;  // the term this node leads
      });
  impl_->raft->OnStatusChange(
      [this](const raft::NodeStatus& st) { impl_->group->OnStatusChange(st); });
  impl_->transport->OnPeerAddress([this] { impl_->group->OnPeerAnnounced(); });

  impl_->group->Add(orchestrator::MakeOrchestrator(*this));
  impl_->group->Add(MakeAllocator(*this));
  impl_->group->Add(MakeTaskScheduler(*this));
  impl_->group->Add(MakeNetworkKeyRotation(*this));
  MembershipOptions mo;
  mo.self = o.raft_id;
  mo.cleanup_marker = CleanupMarker(o);
  mo.on_cleanup_done = [this] {
    impl_->cleanup_pending = false;
    impl_->cleaned_up.Notify();
  };
  mo.set_peer = [this](uint64_t id, const std::string& addr) {
    impl_->transport->SetPeer(id, addr);
  };
  impl_->group->Add(MakeMembership(*this, *this, std::move(mo)));
}

// The gRPC services, and the dispatcher behind one of them.
void Manager::MakeServices() {
  impl_->dispatcher = std::make_shared<Dispatcher>(*this);
  impl_->control = std::make_unique<ControlApi>(*this, impl_->dispatcher);
  impl_->control_service = std::make_unique<ControlService>(PeerResolver(*this, *impl_->control));
  impl_->ca_service = std::make_unique<CAService>(*this);
  impl_->raft_service = std::make_unique<RaftService>(
      impl_->raft.get(), impl_->transport.get(),
      [this](const std::string& node_id) {
        RaftPeerCheck check;
        if (auto n = impl_->store.GetNode(node_id)) {
          check.verdict = n->role() == api::ROLE_MANAGER ? RaftPeerCheck::Verdict::kManager
                                                         : RaftPeerCheck::Verdict::kNotManager;
          check.raft_id = n->raft_id();
        }
        return check;
      },
      impl_->io.get_executor());
  impl_->dispatcher_service = std::make_unique<DispatcherService>(impl_->dispatcher.get());
}

// The manager's threads, the group, the dispatcher and raft.
void Manager::RunThreads() {
  impl_->blocking.emplace(2);
  impl_->guard.emplace(asio::make_work_guard(impl_->io));
  for (int i = 0; i < 2; ++i)
    impl_->threads.emplace_back([this] {
      pthread_setname_np(pthread_self(), "manager-io");
      impl_->io.run();
    });
  impl_->raft_guard.emplace(asio::make_work_guard(impl_->raft_io));
  impl_->raft_thread = std::thread([this] {
    pthread_setname_np(pthread_self(), "raft");
    // Ahead of the process's other threads for the CPU (as etcd's operators renice etcd):
    // a leader whose clock runs late under load loses its followers, and the swarm its leader.
    // Needs CAP_SYS_NICE; without it the thread runs at the usual priority.
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), -10) != 0) {
      SKEP_LOG(debug, "raft", "the raft thread keeps the usual priority: {}", std::strerror(errno));
    }
    impl_->raft_io.run();
  });
  impl_->group->Start();
  impl_->dispatcher->Start();
  impl_->raft->Start();
}

void Manager::Listen() {
  const ManagerOptions& o = options_;
  grpc::ServerBuilder builder;
  tls::ConfigureServer(builder);
  builder.AddListeningPort(o.listen_addr, tls::ServerCredentials(o.tls));
  builder.RegisterService(impl_->raft_service.get());
  builder.RegisterService(impl_->control_service.get());
  builder.RegisterService(impl_->ca_service.get());
  builder.RegisterService(impl_->dispatcher_service.get());
  impl_->server = builder.BuildAndStart();
  if (!impl_->server) {
    Stop();
    throw std::runtime_error("cannot listen on " + o.listen_addr +
                             " (is another skepd or process using the port?)");
  }
  if (o.start == ManagerOptions::Start::kNewCluster ||
      o.start == ManagerOptions::Start::kForceNewCluster) {
    impl_->raft->Campaign();  // a group of one: no need to wait for a timeout
  }
  SKEP_LOG(info, "manager", "manager {} (raft id {}) listening on {}", o.node_id, o.raft_id,
           o.listen_addr);
}

asio::awaitable<Status> Manager::Impl::Ready(std::chrono::milliseconds timeout) {
  const Clock::Steady deadline = m->clock().SteadyNow() + timeout;
  auto serving = AwaitLeadership(
      *m, [](const Leadership& x) { return x.serving; }, deadline);
  const Leadership l = co_await std::move(serving);
  if (!l.serving) co_return Unavailable("this manager did not become the leader in time");
  if (m->options_.start == ManagerOptions::Start::kNewCluster && !store.GetCluster()) {
    api::StoreBatch batch;
    for (const auto& a : m->options_.initial_objects)
      *batch.add_actions() = a;
    auto write = ProposeUntil(*m, std::move(batch), l.term, deadline);
    co_return co_await std::move(write);
  }
  if (cleanup_pending) {
    // The left-out managers are demoted by membership, the first thing it does as leader.
    auto cleaned = Await<bool>([this, deadline](Completion<bool> complete) {
      struct Wait : std::enable_shared_from_this<Wait> {
        explicit Wait(Completion<bool> c) : complete(std::move(c)) {}
        Completion<bool> complete;
        std::atomic<bool> once{false};
        Subscription sub;
        std::unique_ptr<Timer> timer;
        void Finish(bool ok) {
          if (once.exchange(true)) return;
          asio::post(complete.executor(), [self = shared_from_this()] {
            self->sub.Cancel();
            self->timer.reset();
          });
          complete(ok);
        }
      };
      auto w = std::make_shared<Wait>(complete);
      w->sub = cleaned_up.Add([weak = std::weak_ptr<Wait>(w)] {
        if (auto me = weak.lock()) me->Finish(true);
      });
      w->timer = m->clock().At(complete.executor(), deadline, [w] { w->Finish(false); });
      if (!cleanup_pending) w->Finish(true);
    });
    co_await std::move(cleaned);
    if (cleanup_pending) {
      co_return Unavailable(
          "the other managers could not be demoted yet; this manager keeps "
          "trying");
    }
  }
  co_return Status::Ok();
}

void Manager::WhenReady(std::chrono::milliseconds timeout, Done done) {
  Spawn(MakeStrand(), impl_->Ready(timeout), std::move(done));
}

void Manager::Stop() {
  if (!impl_ || !impl_->raft || impl_->stopped.exchange(true)) return;
  if (impl_->group) impl_->group->Stop();
  // Sessions end now rather than at the server's deadline.
  if (impl_->dispatcher) impl_->dispatcher->Stop();
  // Raft first: its pending proposals fail (outcome unknown), so that no call waits for a
  // commit that cannot come any more (the server's shutdown waits for every call to finish).
  impl_->raft->Stop();
  if (impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + 1s);
    impl_->server.reset();
  }
  // The log is closed now (its lock freed): a new manager may open it in this process.
  impl_->storage.reset();
  if (impl_->transport) impl_->transport->Stop();
  if (impl_->guard) impl_->guard.reset();
  impl_->io.stop();
  for (auto& t : impl_->threads)
    t.join();
  impl_->threads.clear();
  if (impl_->blocking) {
    impl_->blocking->stop();  // what is queued is dropped; a request under way ends first
    impl_->blocking->join();
  }
  if (impl_->raft_guard) impl_->raft_guard.reset();
  impl_->raft_io.stop();
  if (impl_->raft_thread.joinable()) impl_->raft_thread.join();
}

// ---- the context ------------------------------------------------------------------------------

const Store& Manager::store() const {
  return impl_->store;
}

void Manager::Propose(api::StoreBatch batch, Done done, uint64_t term) {
  const Leadership l = leadership();
  if (!l.leader || (term != 0 && l.term != term)) {
    if (l.Reachable()) {
      done(Status::NotLeader("this manager is not the leader", l.leader_info->addr));
    } else {
      done(NoLeaderStatus());
    }
    return;
  }
  if (Status pre = impl_->store.Validate(batch); !pre.ok()) {
    done(pre);
    return;
  }
  batch.set_request_id(pki::RandomId());
  batch.set_proposed_at(clock().Now());
  // Exactly one of the two paths reports: the store when the entry is applied, or raft when
  // it can no longer be.
  auto once = std::make_shared<std::atomic<bool>>(false);
  auto shared_done = std::make_shared<Done>(std::move(done));
  impl_->store.ExpectOutcome(batch.request_id(), [once, shared_done](const Status& r) {
    if (!once->exchange(true)) (*shared_done)(r);
  });
  impl_->raft->Propose(
      batch.SerializeAsString(),
      [this, once, shared_done, id = batch.request_id()](const raft::Status& st) {
        if (st.ok()) return;  // the store reports the outcome
        impl_->store.ForgetOutcome(id);
        if (!once->exchange(true)) (*shared_done)(FromRaft(st));
      },
      term);
}

Strand Manager::MakeStrand() {
  return asio::make_strand(asio::any_io_executor(impl_->io.get_executor()));
}

Clock& Manager::clock() {
  return SystemClock();
}

Leadership Manager::leadership() const {
  return impl_->group ? impl_->group->leadership() : Leadership();
}

Subscription Manager::WatchLeadership(std::function<void(const Leadership&)> f) {
  return impl_->group->WatchLeadership(std::move(f));
}

std::vector<api::ManagerPeer> Manager::Managers() const {
  return impl_->group->Managers();
}

Subscription Manager::WatchManagers(std::function<void()> f) {
  return impl_->group->WatchManagers(std::move(f));
}

const ServiceContext::Identity& Manager::self() const {
  return self_;
}

std::string Manager::ManagerStatusOf(const api::Node& node) const {
  return impl_->group->ManagerStatusOf(node);
}

std::optional<std::string> Manager::QuorumRiskOfRemoving(uint64_t raft_id,
                                                         const std::string& what) const {
  return impl_->group->QuorumRiskOfRemoving(raft_id, what);
}

Status Manager::NoLeaderStatus() const {
  return impl_->group->NoLeaderStatus();
}

std::chrono::milliseconds Manager::LeaderWait() const {
  return std::max<std::chrono::milliseconds>(2s, ElectionTimeout() * kLeaderWaitTimeouts);
}

std::shared_ptr<grpc::Channel> Manager::ChannelTo(const std::string& addr) {
  MutexLock lock(impl_->channels_mu);
  auto& ch = impl_->channels[addr];
  if (!ch) ch = grpc::CreateCustomChannel(addr, impl_->credentials, tls::ChannelArgs());
  return ch;
}

const executor::RegistryConfig& Manager::registry() const {
  return options_.registry;
}

asio::any_io_executor Manager::blocking() {
  return impl_->blocking->get_executor();
}

// ---- raft membership --------------------------------------------------------------------------

raft::NodeStatus Manager::RaftStatus() const {
  return impl_->raft->GetStatus();
}

Subscription Manager::WatchStatus(std::function<void(const raft::NodeStatus&)> f) {
  return impl_->group->WatchStatus(std::move(f));
}

void Manager::ChangeMembers(raftpb::ConfChangeType type, uint64_t raft_id, std::string addr,
                            Done done) {
  impl_->raft->ProposeConfChange(
      type, raft_id, std::move(addr),
      [done = std::move(done)](const raft::Status& st) { done(FromRaft(st)); });
}

void Manager::TransferLeadership(uint64_t raft_id, Done done) {
  impl_->raft->TransferLeadership(
      raft_id, [done = std::move(done)](const raft::Status& st) { done(FromRaft(st)); });
}

bool Manager::Reachable(uint64_t raft_id) const {
  return impl_->group->Reachable(raft_id);
}

std::chrono::milliseconds Manager::ElectionTimeout() const {
  return impl_->group ? impl_->group->ElectionTimeout()
                      : std::chrono::milliseconds(kElectionTimeoutMs);
}

}  // namespace skep::manager
