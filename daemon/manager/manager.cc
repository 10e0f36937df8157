#include "daemon/manager/manager.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <thread>

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include "daemon/common/log.h"
#include "daemon/common/pki.h"
#include "daemon/common/proto_bytes.h"
#include "daemon/manager/allocator/component.h"
#include "daemon/manager/network_keys.h"
#include "daemon/manager/ca_service.h"
#include "daemon/manager/control_api.h"
#include "daemon/manager/defaults.h"
#include "daemon/manager/dispatcher.h"
#include "daemon/manager/orchestrator/orchestrator.h"
#include "daemon/manager/raft_transport.h"
#include "daemon/manager/task_scheduler.h"
#include "daemon/manager/raft_node.h"
#include "raft/conf.h"
#include "raft/quorum.h"
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

int ToTicks(int64_t ms) {
  return static_cast<int>(std::max<int64_t>(1, ms / kTick.count()));
}

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool Contains(const google::protobuf::RepeatedField<uint64_t>& ids, uint64_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

class Manager::Impl {
 public:
  explicit Impl(Manager* m) : m(m) {}

  void Housekeeping();
  void SyncPeers(const raft::NodeStatus& st);
  void ApplySettings();
  void Reconcile(const raft::NodeStatus& st);
  grpc::Status ForceNewClusterCleanup();
  // Runs the cleanup once this manager leads and has applied its log; true when done.
  bool MaybeCleanup(const raft::NodeStatus& st);
  std::string CleanupMarker() const { return m->options_.data_dir + "/force-new-cluster.pending"; }
  void RewriteForNewCluster();
  int64_t ElectionMs() const;
  bool Reachable(uint64_t raft_id) const;
  void OnLeadership(bool self, raft::Term term);
  void StopComponents();

  Manager* m;
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::vector<std::thread> threads;
  // The raft node's clock and serializer have a thread of their own: ticks and heartbeats are
  // not queued behind the components' passes and the dispatcher's session messages on `io`.
  asio::io_context raft_io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> raft_guard;
  std::thread raft_thread;
  // Housekeeping makes blocking raft writes, so it has a thread of its own rather than a place
  // on the io_context the raft node runs on.
  std::thread housekeeping;
  std::mutex housekeeping_mu;
  std::condition_variable housekeeping_cv;

  std::unique_ptr<raft::RocksStorage> storage;
  std::unique_ptr<GrpcRaftTransport> transport;
  std::unique_ptr<RaftNode> raft;
  std::unique_ptr<Dispatcher> dispatcher;
  std::unique_ptr<ControlApi> control;
  std::unique_ptr<ControlService> control_service;
  std::unique_ptr<CAService> ca_service;
  std::unique_ptr<RaftService> raft_service;
  std::unique_ptr<DispatcherService> dispatcher_service;
  std::unique_ptr<grpc::Server> server;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  Subscription dispatcher_events;

  // Leader-only components, started and stopped on the leadership strand.
  asio::strand<asio::io_context::executor_type> leadership{asio::make_strand(io)};
  std::vector<std::unique_ptr<LeaderComponent>> components;
  bool components_running = false;  // on the leadership strand
  raft::Term leading_term = 0;      // on the leadership strand

  std::mutex channels_mu;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels;

  std::atomic<bool> running{false};
  std::atomic<bool> cleanup_pending{false};
  // The term in which this manager, leading, first had applied everything committed.
  std::atomic<raft::Term> serving_term{0};
  std::mutex cleanup_mu;
  int64_t applied_heartbeat_ms = kRaftHeartbeatMs;
  int64_t applied_election_ms = kElectionTimeoutMs;
  std::map<uint64_t, std::string> known_peers;  // raft id -> addr, until the store has them
  std::string last_members;                     // the raft configuration last seen
  std::chrono::steady_clock::time_point last_transfer{};

  // Woken whenever raft reports a new leader (or none), for AwaitLeader.
  mutable std::mutex leader_mu;
  mutable std::condition_variable leader_cv;
  uint64_t leader_changes = 0;
};

// ---------------------------------------------------------------------------------------------

Manager::Manager(ManagerOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>(this)) {}

Manager::~Manager() {
  Stop();
}

Dispatcher& Manager::dispatcher() {
  return *impl_->dispatcher;
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
  std::ofstream(CleanupMarker()) << "demote the managers left out by --force-new-cluster\n";
  SKEP_LOG(warn, "manager",
           "forced a new cluster: this manager is now the only raft member "
           "(log up to index {} kept)",
           last);
}

void Manager::Start() {
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
      impl_->cleanup_pending = true;
      break;
    case ManagerOptions::Start::kResume:
      if (std::filesystem::exists(impl_->CleanupMarker())) impl_->cleanup_pending = true;
      break;
  }

  impl_->credentials = tls::NodeCredentials(o.tls);
  impl_->transport =
      std::make_unique<GrpcRaftTransport>(impl_->credentials, o.raft_id, o.advertise_addr);
  for (const auto& p : o.peers) {
    if (p.raft_id() != o.raft_id && !p.addr().empty()) {
      impl_->known_peers[p.raft_id()] = p.addr();
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
                                           impl_->transport.get(), &store_);
  impl_->raft->OnFatal([](const std::string& why) {
    // A manager that can no longer write its log must not go on looking like a member (or a
    // leader): exit, and let the next start report the damage.
    SKEP_LOG(critical, "raft", "the raft log failed; skepd exits: {}", why);
    spdlog::shutdown();
    std::_Exit(1);
  });
  impl_->raft->OnLeaderChange([this, led = raft::Term{0}](raft::NodeId lead, raft::Term term,
                                                          bool self) mutable {
    SKEP_LOG(info, "raft", "leader is now {} (term {}){}", lead, term, self ? ", this node" : "");
    if (led == term && !self && lead == raft::kNoNode) {
      // Check-quorum: no quorum answered in time. Whether the answers reached this process
      // at all (its network threads) tells a lost peer from a busy one.
      const raft::NodeStatus st = impl_->raft->GetStatus();
      std::vector<uint64_t> others;
      for (uint64_t v : st.conf.voters()) {
        if (v != options_.raft_id) others.push_back(v);
      }
      const auto silent =
          impl_->transport->Silent(others, std::chrono::milliseconds(impl_->ElectionMs()));
      SKEP_LOG(warn, "raft",
               "stepped down in term {}: no quorum of managers answered within {} election "
               "timeouts; {} of {} were heard from within the last one",
               term, kCheckQuorumTimeouts, others.size() - silent.size(), others.size());
    }
    led = self ? term : 0;  // the term this node leads
    {
      std::lock_guard lock(impl_->leader_mu);
      ++impl_->leader_changes;
    }
    impl_->leader_cv.notify_all();
    impl_->OnLeadership(self, term);
  });

  impl_->dispatcher = std::make_unique<Dispatcher>(this);
  impl_->dispatcher_events =
      store_.Watch([this](const StoreEvent& ev) { impl_->dispatcher->OnStoreEvent(ev); });
  impl_->control = std::make_unique<ControlApi>(this);
  impl_->control_service = std::make_unique<ControlService>(PeerResolver(this));
  impl_->ca_service = std::make_unique<CAService>(this);
  impl_->raft_service = std::make_unique<RaftService>(
      impl_->raft.get(), impl_->transport.get(), [this](const std::string& node_id) {
        RaftPeerCheck check;
        if (auto n = store_.GetNode(node_id)) {
          check.verdict = n->role() == api::ROLE_MANAGER ? RaftPeerCheck::Verdict::kManager
                                                         : RaftPeerCheck::Verdict::kNotManager;
          check.raft_id = n->raft_id();
        }
        return check;
      });
  impl_->dispatcher_service = std::make_unique<DispatcherService>(impl_->dispatcher.get());
  AddLeaderComponent(orchestrator::MakeOrchestrator(this));
  AddLeaderComponent(MakeAllocator(this));
  AddLeaderComponent(MakeTaskScheduler(this));
  AddLeaderComponent(MakeNetworkKeyRotation(this));

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
  impl_->raft->Start();

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
  impl_->running = true;
  if (o.start == ManagerOptions::Start::kNewCluster ||
      o.start == ManagerOptions::Start::kForceNewCluster) {
    impl_->raft->Campaign();  // a group of one: no need to wait for a timeout
  }
  impl_->housekeeping = std::thread([this] { impl_->Housekeeping(); });
  SKEP_LOG(info, "manager", "manager {} (raft id {}) listening on {}", o.node_id, o.raft_id,
           o.listen_addr);
}

grpc::Status Manager::WaitReady(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!IsLeader()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return {grpc::StatusCode::UNAVAILABLE, "this manager did not become the leader in time"};
    }
    std::this_thread::sleep_for(10ms);
  }
  if (options_.start == ManagerOptions::Start::kNewCluster && !store_.GetCluster()) {
    api::StoreBatch batch;
    auto* a = batch.add_actions();
    a->set_kind(api::StoreAction::CREATE);
    *a->mutable_cluster() = options_.initial_cluster;
    auto* b = batch.add_actions();
    b->set_kind(api::StoreAction::CREATE);
    *b->mutable_node() = options_.initial_node;
    for (const auto& n : options_.initial_networks) {
      auto* c = batch.add_actions();
      c->set_kind(api::StoreAction::CREATE);
      *c->mutable_network() = n;
    }
    return Write(batch, timeout);
  }
  if (options_.start == ManagerOptions::Start::kForceNewCluster && impl_->cleanup_pending) {
    // The whole log is applied first, so that the other managers are known and demoted before
    // anything else changes (a node joining now must not be mistaken for one of them).
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (grpc::Status st = WaitServing(std::max(left, 100ms)); !st.ok()) return st;
    // The demotion can lose a race with another change to those nodes (the dispatcher marking
    // them down): it is made again from their newer versions until the deadline.
    while (!impl_->MaybeCleanup(impl_->raft->GetStatus())) {
      if (std::chrono::steady_clock::now() > deadline) {
        return {grpc::StatusCode::UNAVAILABLE,
                "the other managers could not be demoted yet; this manager keeps trying"};
      }
      std::this_thread::sleep_for(50ms);
    }
  }
  return grpc::Status::OK;
}

void Manager::Stop() {
  if (!impl_) return;
  impl_->running = false;
  {
    std::lock_guard lock(impl_->housekeeping_mu);
    impl_->housekeeping_cv.notify_all();
  }
  // Housekeeping may be waiting on a raft write: the raft node stops after it.
  if (impl_->housekeeping.joinable()) impl_->housekeeping.join();
  // Sessions end now rather than at the server's deadline.
  if (impl_->dispatcher) impl_->dispatcher->Stop();
  if (impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + 1s);
    impl_->server.reset();
  }
  if (!impl_->threads.empty()) {
    // The components stop before raft does, so that none is left waiting on a proposal.
    std::promise<void> stopped;
    asio::post(impl_->leadership, [&] {
      impl_->StopComponents();
      stopped.set_value();
    });
    stopped.get_future().wait();
  }
  if (impl_->dispatcher) impl_->dispatcher->Stop();
  if (impl_->raft) impl_->raft->Stop();
  if (impl_->transport) impl_->transport->Stop();
  if (impl_->guard) impl_->guard.reset();
  impl_->io.stop();
  for (auto& t : impl_->threads)
    t.join();
  impl_->threads.clear();
  if (impl_->raft_guard) impl_->raft_guard.reset();
  impl_->raft_io.stop();
  if (impl_->raft_thread.joinable()) impl_->raft_thread.join();
}

bool Manager::IsLeader() const {
  return impl_->raft && impl_->raft->GetStatus().role == raft::Role::kLeader;
}

grpc::Status Manager::WaitServing(std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const raft::NodeStatus st = impl_->raft->GetStatus();
    if (st.role != raft::Role::kLeader) {
      return {grpc::StatusCode::FAILED_PRECONDITION, "this manager is not the leader"};
    }
    // Caught up once in a term is enough: later commits are this leader's own writes, and a
    // store a moment behind them under a steady stream of writes is still serving.
    if (impl_->serving_term.load() == st.term) return grpc::Status::OK;
    if (st.committed_in_term && store_.applied_index() >= st.commit) {
      impl_->serving_term.store(st.term);
      return grpc::Status::OK;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return {grpc::StatusCode::UNAVAILABLE, "the new leader is still catching up; try again"};
    }
    std::this_thread::sleep_for(5ms);
  }
}

std::optional<Manager::LeaderInfo> Manager::Leader() const {
  if (!impl_->raft) return std::nullopt;
  const raft::NodeStatus st = impl_->raft->GetStatus();
  if (st.lead == raft::kNoNode) return std::nullopt;
  LeaderInfo info;
  info.raft_id = st.lead;
  if (st.lead == options_.raft_id) {
    info.node_id = options_.node_id;
    info.addr = options_.advertise_addr;
    return info;
  }
  if (auto n = store_.NodeByRaftId(st.lead)) {
    info.node_id = n->id();
    info.addr = n->advertise_addr();
  } else {
    info.addr = impl_->transport->PeerAddr(st.lead);
  }
  if (info.addr.empty()) return std::nullopt;
  return info;
}

std::optional<Manager::LeaderInfo> Manager::AwaitLeader() const {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(2 * impl_->ElectionMs() + 500);
  for (;;) {
    uint64_t seen;
    {
      std::lock_guard lock(impl_->leader_mu);
      seen = impl_->leader_changes;
    }
    if (auto l = Leader()) return l;
    std::unique_lock lock(impl_->leader_mu);
    // The leader's address may come a little after the leader itself (from the store), so the
    // wait also ends every few milliseconds to look again.
    impl_->leader_cv.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + 50ms),
                                [&] { return impl_->leader_changes != seen; });
    if (std::chrono::steady_clock::now() >= deadline) {
      lock.unlock();
      return Leader();
    }
  }
}

int64_t Manager::Impl::ElectionMs() const {
  return applied_election_ms;
}

grpc::Status Manager::NoLeaderStatus() const {
  const raft::NodeStatus st = impl_->raft->GetStatus();
  std::vector<uint64_t> others;
  for (uint64_t v : st.conf.voters()) {
    if (v != options_.raft_id) others.push_back(v);
  }
  const auto silent =
      impl_->transport->Silent(others, std::chrono::milliseconds(2 * impl_->ElectionMs() + 500));
  const size_t total = static_cast<size_t>(st.conf.voters_size());
  const size_t need = raft::QuorumSize(total);
  if (total - silent.size() >= need) {
    return {grpc::StatusCode::UNAVAILABLE,
            "the swarm is electing a leader (" + std::to_string(total - silent.size()) + " of " +
                std::to_string(total) + " managers reachable); try again in a moment"};
  }
  std::string msg = "the swarm does not have a leader: " + std::to_string(silent.size()) + " of " +
                    std::to_string(total) + " managers " + (silent.size() == 1 ? "is" : "are") +
                    " unreachable, and electing one needs " + std::to_string(need) +
                    " of them online. If the unreachable managers are " +
                    "gone for good, run 'skep swarm init --force-new-cluster' on a surviving " +
                    "manager to recover";
  return {grpc::StatusCode::UNAVAILABLE, msg, std::string(kNoQuorumDetail)};
}

grpc::Status WriteResult::ToStatus() const {
  switch (code) {
    case Code::kOk:
      return grpc::Status::OK;
    case Code::kConflict:
    case Code::kExists:
    case Code::kNotFound:
    case Code::kNotLeader:
      return {grpc::StatusCode::FAILED_PRECONDITION, message};
    case Code::kInvalid:
      return {grpc::StatusCode::INVALID_ARGUMENT, message};
    case Code::kNoQuorum:
      return {grpc::StatusCode::UNAVAILABLE, message, std::string(kNoQuorumDetail)};
    case Code::kUnavailable:
      break;
  }
  return {grpc::StatusCode::UNAVAILABLE, message};
}

namespace {

WriteResult::Code CodeOf(ApplyResult::Code c) {
  switch (c) {
    case ApplyResult::Code::kOk:
      return WriteResult::Code::kOk;
    case ApplyResult::Code::kConflict:
      return WriteResult::Code::kConflict;
    case ApplyResult::Code::kExists:
      return WriteResult::Code::kExists;
    case ApplyResult::Code::kNotFound:
      return WriteResult::Code::kNotFound;
    case ApplyResult::Code::kInvalid:
      break;
  }
  return WriteResult::Code::kInvalid;
}

WriteResult FromStatus(const grpc::Status& st) {
  if (st.ok()) return {};
  if (st.error_details() == kNoQuorumDetail) {
    return {WriteResult::Code::kNoQuorum, st.error_message()};
  }
  return {WriteResult::Code::kUnavailable, st.error_message()};
}

}  // namespace

void Manager::Propose(api::StoreBatch batch, std::function<void(const WriteResult&)> done) {
  if (!IsLeader()) {
    if (Leader()) {
      done({WriteResult::Code::kNotLeader, "this manager is not the leader"});
    } else {
      done(FromStatus(NoLeaderStatus()));
    }
    return;
  }
  if (ApplyResult pre = store_.Validate(batch); !pre.ok()) {
    done({CodeOf(pre.code), pre.error});
    return;
  }
  batch.set_request_id(pki::RandomId());
  batch.set_proposed_at(NowNanos());
  // Exactly one of the two paths reports: the store when the entry is applied, or raft when
  // it can no longer be.
  auto once = std::make_shared<std::atomic<bool>>(false);
  auto shared_done = std::make_shared<std::function<void(const WriteResult&)>>(std::move(done));
  store_.ExpectOutcome(batch.request_id(), [this, once, shared_done](const ApplyResult& r) {
    if (once->exchange(true)) return;
    WriteResult w{CodeOf(r.code), r.error};
    w.index = store_.applied_index();
    (*shared_done)(w);
  });
  impl_->raft->Propose(batch.SerializeAsString(),
                       [this, once, shared_done, id = batch.request_id()](const raft::Status& st) {
                         if (st.ok()) return;  // the store reports the outcome
                         store_.ForgetOutcome(id);
                         if (once->exchange(true)) return;
                         (*shared_done)({WriteResult::Code::kUnavailable, st.message()});
                       });
}

WriteResult Manager::WriteAndWait(api::StoreBatch batch, std::chrono::milliseconds timeout) {
  if (!IsLeader()) {
    if (AwaitLeader() && !IsLeader()) {
      return {WriteResult::Code::kNotLeader, "this manager is not the leader"};
    }
    if (!IsLeader()) return FromStatus(NoLeaderStatus());
  }
  struct Outcome {
    std::mutex mu;
    std::optional<WriteResult> result;
    std::condition_variable cv;
  };
  auto outcome = std::make_shared<Outcome>();
  Propose(std::move(batch), [outcome](const WriteResult& r) {
    std::lock_guard lock(outcome->mu);
    outcome->result = r;
    outcome->cv.notify_all();
  });
  std::unique_lock lock(outcome->mu);
  if (!outcome->cv.wait_for(lock, timeout, [&] { return outcome->result.has_value(); })) {
    lock.unlock();
    if (!IsLeader()) return FromStatus(NoLeaderStatus());
    return {WriteResult::Code::kUnavailable,
            "the change was not confirmed in time (too few managers reachable?); it may still "
            "be applied"};
  }
  return *outcome->result;
}

grpc::Status Manager::Write(api::StoreBatch batch, std::chrono::milliseconds timeout) {
  return WriteAndWait(std::move(batch), timeout).ToStatus();
}

void Manager::AddLeaderComponent(std::unique_ptr<LeaderComponent> component) {
  impl_->components.push_back(std::move(component));
}

asio::io_context& Manager::io() {
  return impl_->io;
}

void Manager::Impl::OnLeadership(bool self, raft::Term term) {
  // Leadership changes are handled in order on one strand, never in raft's serializer (a
  // leader that steps down ends a thousand sessions: not on the thread whose heartbeats keep
  // the followers from electing).
  asio::post(leadership, [this, self, term] {
    dispatcher->OnLeadershipChange(self);
    if (!self || term != leading_term) StopComponents();
    if (!self) return;
    leading_term = term;
    // A read index returns once this manager has applied everything committed before the
    // call, which for a new leader includes an entry of its own term: the state the
    // components start from is complete.
    raft->ReadIndex([this, term](const raft::Status& st) {
      asio::post(leadership, [this, term, ok = st.ok()] {
        if (!ok || term != leading_term || components_running || !running) return;
        if (raft->GetStatus().role != raft::Role::kLeader) return;
        components_running = true;
        for (auto& c : components)
          c->Start();
        SKEP_LOG(info, "manager", "leader components started (term {})", term);
      });
    });
  });
}

void Manager::Impl::StopComponents() {
  if (!components_running) return;
  components_running = false;
  for (auto& c : components)
    c->Stop();
  SKEP_LOG(info, "manager", "leader components stopped");
}

namespace {

// The read-modify-write loop of UpdateNode and UpdateCluster.
template <class T>
grpc::Status Update(Manager* m, const std::function<std::optional<T>()>& read,
                    const std::function<void(api::StoreAction*, const T&)>& set,
                    const std::function<grpc::Status(T&)>& modify, const std::string& what,
                    T* updated) {
  for (int attempt = 0;; ++attempt) {
    std::optional<T> obj = read();
    if (!obj) return {grpc::StatusCode::NOT_FOUND, what + " not found"};
    const std::string before = CanonicalBytes(*obj);
    if (grpc::Status st = modify(*obj); !st.ok()) return st;
    if (CanonicalBytes(*obj) == before) {
      if (updated != nullptr) *updated = *obj;
      return grpc::Status::OK;
    }
    api::StoreBatch batch;
    auto* a = batch.add_actions();
    a->set_kind(api::StoreAction::UPDATE);
    set(a, *obj);
    grpc::Status st = m->Write(batch);
    const bool conflict = st.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
                          st.error_message().rfind("update out of sequence", 0) == 0;
    if (conflict && attempt < 3) continue;
    if (st.ok() && updated != nullptr) {
      if (auto now = read()) *updated = *now;
    }
    return st;
  }
}

}  // namespace

grpc::Status Manager::UpdateNode(const std::string& id,
                                 const std::function<grpc::Status(api::Node&)>& modify,
                                 api::Node* updated) {
  return Update<api::Node>(
      this, [&] { return store_.GetNode(id); },
      [](api::StoreAction* a, const api::Node& n) { *a->mutable_node() = n; }, modify, "node " + id,
      updated);
}

void Manager::UpdateNodeAsync(const std::string& id, std::function<grpc::Status(api::Node&)> modify,
                              std::function<void(const grpc::Status&)> done) {
  struct Attempt {
    Manager* m;
    std::string id;
    std::function<grpc::Status(api::Node&)> modify;
    std::function<void(const grpc::Status&)> done;
    int tries = 0;
    void Finish(const grpc::Status& st) {
      if (done) done(st);
    }
    static void Run(std::shared_ptr<Attempt> a) {
      std::optional<api::Node> n = a->m->store_.GetNode(a->id);
      if (!n) return a->Finish({grpc::StatusCode::NOT_FOUND, "node " + a->id + " not found"});
      const std::string before = CanonicalBytes(*n);
      if (grpc::Status st = a->modify(*n); !st.ok()) return a->Finish(st);
      if (CanonicalBytes(*n) == before) return a->Finish(grpc::Status::OK);
      api::StoreBatch batch;
      auto* action = batch.add_actions();
      action->set_kind(api::StoreAction::UPDATE);
      *action->mutable_node() = std::move(*n);
      a->m->Propose(std::move(batch), [a](const WriteResult& r) {
        if (r.code == WriteResult::Code::kConflict && ++a->tries < 4) {
          // Made from an outdated copy: again from the newer one, off the raft serializer.
          asio::post(a->m->io(), [a] { Run(a); });
          return;
        }
        a->Finish(r.ToStatus());
      });
    }
  };
  Attempt::Run(std::make_shared<Attempt>(Attempt{this, id, std::move(modify), std::move(done)}));
}

grpc::Status Manager::UpdateCluster(const std::function<grpc::Status(api::Cluster&)>& modify) {
  return Update<api::Cluster>(
      this, [&] { return store_.GetCluster(); },
      [](api::StoreAction* a, const api::Cluster& c) { *a->mutable_cluster() = c; }, modify,
      "the cluster", nullptr);
}

raft::NodeStatus Manager::RaftStatus() const {
  return impl_->raft->GetStatus();
}

bool Manager::Impl::Reachable(uint64_t raft_id) const {
  if (raft_id == m->options_.raft_id) return true;
  // Heard from within two election timeouts: raft's own activity flags are reset every
  // election timeout, so a reading taken just after a reset would call everyone unreachable.
  return transport->Silent({raft_id}, std::chrono::milliseconds(2 * applied_election_ms + 500))
      .empty();
}

std::string Manager::ManagerStatusOf(const api::Node& node) const {
  const raft::NodeStatus st = impl_->raft->GetStatus();
  if (node.raft_id() == 0 || !raft::IsMember(st.conf, node.raft_id())) return "";
  if (node.raft_id() == st.lead) return "Leader";
  return impl_->Reachable(node.raft_id()) ? "Reachable" : "Unreachable";
}

std::vector<api::ManagerPeer> Manager::Managers() const {
  const raft::NodeStatus st = impl_->raft->GetStatus();
  std::vector<api::ManagerPeer> out;
  for (uint64_t id : raft::Members(st.conf)) {
    api::ManagerPeer p;
    p.set_raft_id(id);
    if (id == options_.raft_id) {
      p.set_node_id(options_.node_id);
      p.set_addr(options_.advertise_addr);
    } else if (auto n = store_.NodeByRaftId(id)) {
      p.set_node_id(n->id());
      p.set_addr(n->advertise_addr());
    } else {
      p.set_addr(impl_->transport->PeerAddr(id));
    }
    if (!p.addr().empty()) out.push_back(p);
  }
  return out;
}

std::optional<std::string> Manager::QuorumRiskOfRemoving(uint64_t raft_id,
                                                         const std::string& what) const {
  const raft::NodeStatus st = impl_->raft->GetStatus();
  if (!Contains(st.conf.voters(), raft_id)) return std::nullopt;
  const size_t remaining = static_cast<size_t>(st.conf.voters_size()) - 1;
  if (remaining == 0) return "can't " + what + ": it is the last manager of the swarm";
  size_t reachable = 0;
  for (uint64_t v : st.conf.voters()) {
    if (v == raft_id) continue;
    if (impl_->Reachable(v)) ++reachable;
  }
  const size_t need = raft::QuorumSize(remaining);
  if (reachable >= need) return std::nullopt;
  return "can't " + what + ": the " + std::to_string(remaining) +
         " managers left would include only " + std::to_string(reachable) +
         " reachable, fewer than the " + std::to_string(need) +
         " a quorum needs; bring the unreachable managers back first";
}

std::shared_ptr<grpc::Channel> Manager::ChannelTo(const std::string& addr) {
  std::lock_guard lock(impl_->channels_mu);
  auto& ch = impl_->channels[addr];
  if (!ch) ch = grpc::CreateCustomChannel(addr, impl_->credentials, tls::ChannelArgs());
  return ch;
}

// ---------------------------------------------------------------------------------------------
// Housekeeping, every 200 ms on its own thread

void Manager::Impl::Housekeeping() {
  std::unique_lock lock(housekeeping_mu);
  while (running) {
    lock.unlock();
    try {
      const raft::NodeStatus st = raft->GetStatus();
      SyncPeers(st);
      ApplySettings();
      // After --force-new-cluster, membership waits until the old managers are demoted.
      if (st.role == raft::Role::kLeader && (!cleanup_pending || MaybeCleanup(st))) {
        Reconcile(st);
        dispatcher->CheckNodes();
      }
    } catch (const std::exception& e) {
      SKEP_LOG(error, "manager", "housekeeping failed: {}", e.what());
    }
    lock.lock();
    housekeeping_cv.wait_for(lock, 200ms, [&] { return !running; });
  }
}

void Manager::Impl::SyncPeers(const raft::NodeStatus& st) {
  // Agents keep a list of the managers to fall back on: tell them when it changes.
  const std::string members = st.conf.SerializeAsString();
  if (members != last_members) {
    last_members = members;
    dispatcher->OnManagersChanged();
  }
  for (uint64_t id : raft::Members(st.conf)) {
    if (id == m->options_.raft_id) continue;
    std::string addr;
    if (auto n = m->store_.NodeByRaftId(id)) addr = n->advertise_addr();
    if (addr.empty()) {
      auto it = known_peers.find(id);
      if (it != known_peers.end()) addr = it->second;
    }
    if (!addr.empty()) transport->SetPeer(id, addr);
  }
}

void Manager::Impl::ApplySettings() {
  auto cluster = m->store_.GetCluster();
  if (!cluster) return;
  int64_t hb = cluster->spec().raft().heartbeat_period_ms();
  int64_t el = cluster->spec().raft().election_timeout_ms();
  if (hb <= 0) hb = kRaftHeartbeatMs;
  if (el <= 0) el = kElectionTimeoutMs;
  if (hb == applied_heartbeat_ms && el == applied_election_ms) return;
  applied_heartbeat_ms = hb;
  applied_election_ms = el;
  raft->SetTimeouts(ToTicks(el), ToTicks(hb));
  SKEP_LOG(info, "raft", "heartbeat period {} ms, election timeout {} ms", hb, el);
}

void Manager::Impl::Reconcile(const raft::NodeStatus& st) {
  // One membership change at a time: wait until the last one is committed.
  if (st.conf_index > st.commit) return;
  auto done = [](const char* what, uint64_t id) {
    return [what, id](const raft::Status& s) {
      if (s.ok()) {
        SKEP_LOG(info, "manager", "{} raft member {}", what, id);
      } else {
        SKEP_LOG(debug, "manager", "could not {} raft member {}: {}", what, id, s.message());
      }
    };
  };
  // Learners that caught up become voters.
  for (const auto& p : st.peers) {
    if (!p.voter && p.match >= st.commit) {
      raft->ProposeConfChange(raftpb::CONF_PROMOTE, p.id, "", done("promoted", p.id));
      return;
    }
  }
  for (const auto& n : m->store_.ListNodes()) {
    if (n.raft_id() == 0) continue;
    const bool member = raft::IsMember(st.conf, n.raft_id());
    if (n.spec().desired_role() == api::ROLE_WORKER && member) {
      if (n.raft_id() == m->options_.raft_id) {
        // Demoting the leader: hand leadership to a reachable voter that holds the whole log,
        // which then removes us. While a transfer runs the leader takes no writes, so one is
        // started only now and then, and only toward a voter able to take over.
        if (std::chrono::steady_clock::now() - last_transfer < 2s) return;
        for (const auto& p : st.peers) {
          if (p.id == n.raft_id() || !p.voter || p.match < st.last_index || !Reachable(p.id)) {
            continue;
          }
          last_transfer = std::chrono::steady_clock::now();
          raft->TransferLeadership(p.id, [](const raft::Status&) {});
          return;
        }
        continue;
      }
      if (m->QuorumRiskOfRemoving(n.raft_id(), "demote")) continue;  // wait for the others
      raft->ProposeConfChange(raftpb::CONF_REMOVE, n.raft_id(), "", done("removed", n.raft_id()));
      return;
    }
    if (n.spec().desired_role() == api::ROLE_MANAGER && n.role() == api::ROLE_MANAGER && !member &&
        !n.advertise_addr().empty()) {
      transport->SetPeer(n.raft_id(), n.advertise_addr());
      raft->ProposeConfChange(raftpb::CONF_ADD_LEARNER, n.raft_id(), n.advertise_addr(),
                              done("added as a learner", n.raft_id()));
      return;
    }
  }
}

bool Manager::Impl::MaybeCleanup(const raft::NodeStatus& st) {
  std::lock_guard lock(cleanup_mu);  // WaitReady and housekeeping may both try
  if (!cleanup_pending) return true;
  if (st.role != raft::Role::kLeader || !st.committed_in_term ||
      m->store_.applied_index() < st.commit) {
    return false;
  }
  if (grpc::Status s = ForceNewClusterCleanup(); !s.ok()) {
    SKEP_LOG(warn, "manager", "cannot demote the old managers yet: {}", s.error_message());
    return false;
  }
  std::error_code ec;
  std::filesystem::remove(CleanupMarker(), ec);
  cleanup_pending = false;
  return true;
}

grpc::Status Manager::Impl::ForceNewClusterCleanup() {
  // The other managers are no longer raft members; show them as workers that are down, so
  // that they can be removed and joined again.
  const raft::NodeStatus st = raft->GetStatus();
  api::StoreBatch batch;
  for (auto n : m->store_.ListNodes()) {
    if (n.raft_id() == m->options_.raft_id || raft::IsMember(st.conf, n.raft_id())) continue;
    if (n.role() != api::ROLE_MANAGER && n.spec().desired_role() != api::ROLE_MANAGER) continue;
    n.set_role(api::ROLE_WORKER);
    n.mutable_spec()->set_desired_role(api::ROLE_WORKER);
    n.mutable_status()->set_state(api::NODE_STATE_DOWN);
    n.mutable_status()->set_message("removed from the managers by --force-new-cluster");
    auto* a = batch.add_actions();
    a->set_kind(api::StoreAction::UPDATE);
    *a->mutable_node() = n;
  }
  if (batch.actions_size() == 0) return grpc::Status::OK;
  return m->Write(batch);
}

}  // namespace skep::manager
