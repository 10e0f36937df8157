#include "daemon/manager/raft_node.h"

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <pthread.h>

#include "daemon/common/log.h"
#include "daemon/common/mutex.h"
#include "raft/conf.h"

namespace skep {

namespace asio = boost::asio;
using raft::ErrorCode;
using raft::Index;
using raft::Status;

// A single thread that performs the synced storage writes in order. `name` (15 characters at
// most) is the thread's, as top -H and perf show it.
class StorageWriter {
 public:
  explicit StorageWriter(const char* name)
      : thread_([this, name] {
          pthread_setname_np(pthread_self(), name);
          Run();
        }) {}
  ~StorageWriter() { Close(); }
  void Post(std::function<void()> job) {
    {
      MutexLock lock(mu_);
      if (closed_) return;
      jobs_.push_back(std::move(job));
    }
    cv_.NotifyOne();
  }
  // Runs what is queued, then refuses further jobs.
  void Close() {
    {
      MutexLock lock(mu_);
      if (closed_) return;
      closed_ = true;
    }
    cv_.NotifyOne();
    thread_.join();
  }

 private:
  void Run() {
    for (;;) {
      std::function<void()> job;
      {
        MutexLock lock(mu_);
        cv_.Wait(lock, [&] {
          mu_.AssertHeld();
          return closed_ || !jobs_.empty();
        });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> jobs_ SKEP_GUARDED_BY(mu_);
  bool closed_ SKEP_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Runs tasks one at a time, in the order they were submitted. A thread that submits a task while
// none runs runs it itself, at once, and then whatever others submitted meanwhile: a message
// from the network or a proposal reaches the raft core on the thread that brought it, without
// waking another thread (on a small virtual machine a wake-up costs 50-100 us, and a write
// crossed several). A thread that has drained for long hands what is left to the io_context.
class Serializer : public std::enable_shared_from_this<Serializer> {
 public:
  // `inline_callers` false: every task goes to the io_context, whose thread (a raft thread of
  // its own, at a higher priority) then does all the work; a caller preempted while draining
  // would hold everything queued behind it.
  Serializer(asio::io_context& io, bool inline_callers) : io_(io), inline_(inline_callers) {}
  // Runs the task here if none runs, then what others queued meanwhile; otherwise queues it.
  void Run(std::function<void()> task) { Submit(std::move(task), kBudget); }
  // The same, but leaves what others queued to an io_context thread: for a thread that has
  // other work waiting (the storage writer).
  void RunOne(std::function<void()> task) { Submit(std::move(task), 1); }
  // Queues the task for an io_context thread (or the thread draining now).
  void Post(std::function<void()> task) { Submit(std::move(task), 0); }

 private:
  static constexpr int kBudget = 256;
  void Submit(std::function<void()> task, int budget) {
    if (!inline_) budget = 0;
    {
      MutexLock lock(mu_);
      tasks_.push_back(std::move(task));
      if (busy_) return;
      busy_ = true;
    }
    if (budget == 0) {
      asio::post(io_, [self = shared_from_this()] { self->Drain(kBudget); });
    } else {
      Drain(budget);
    }
  }
  void Drain(int budget) {
    auto keep = shared_from_this();  // a task may drop the last other reference
    for (int n = 0;; ++n) {
      std::function<void()> task;
      {
        MutexLock lock(mu_);
        if (tasks_.empty()) {
          busy_ = false;
          return;
        }
        if (n == budget) {
          asio::post(io_, [self = shared_from_this()] { self->Drain(kBudget); });
          return;
        }
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }
  asio::io_context& io_;
  const bool inline_;
  Mutex mu_;
  std::deque<std::function<void()>> tasks_ SKEP_GUARDED_BY(mu_);
  bool busy_ SKEP_GUARDED_BY(mu_) = false;
};

class RaftNode::Impl : public std::enable_shared_from_this<RaftNode::Impl> {
 public:
  Impl(asio::io_context& io, const RaftNodeOptions& options, raft::Storage* storage,
       RaftTransport* transport, RaftStateMachine* sm)
      : options(options),
        serial(std::make_shared<Serializer>(io, options.inline_callers)),
        timer(io),
        storage(storage),
        transport(transport),
        sm(sm) {}

  // Everything below runs in the serializer.
  void Pump();
  // The Ready is on disk (or had nothing to write): applies what it committed and advances the
  // core. The caller pumps next.
  void Applied(std::shared_ptr<raft::Ready> rd);
  void Send(std::vector<raftpb::Message>& messages);
  // The serializer's side of an applied Ready: proposals answered, reads served.
  void Settle(const raft::Ready& rd);
  // The state machine's side (the applier thread, or the serializer without one): installs the
  // snapshot, applies the entries, and takes a snapshot when one is due.
  void ApplyToStateMachine(const raft::Ready& rd);
  void MaybeSnapshot();
  void ServeReads();
  void Tick();
  void Fail(const std::string& why);
  void PublishStatus();
  // Remembers who waits for the entry at `index`.
  void Track(Index index, Done done);
  void FailProposals(const Status& err);
  void FailReads(const Status& err);
  void ExpireReads();
  bool Live() const { return running && !failed; }

  RaftNodeOptions options;
  std::shared_ptr<Serializer> serial;
  asio::steady_timer timer;
  // When the clock last ticked, and when a late tick was last reported.
  std::chrono::steady_clock::time_point last_tick{}, late_reported{};
  std::chrono::steady_clock::time_point refused_reported{};  // a malformed message was logged
  raft::Storage* storage;
  RaftTransport* transport;
  RaftStateMachine* sm;
  std::unique_ptr<raft::Node> node;
  StorageWriter writer{"raft-log"};
  // Writes snapshots, which may be large, beside the log writes.
  StorageWriter snapshotter{"raft-snapshot"};
  std::optional<StorageWriter> applier;  // with options.apply_thread

  std::atomic<bool> running{false};
  std::atomic<bool> failed{false};
  bool persisting = false;
  Index applied = 0;  // the serializer's: what proposals and reads were answered for
  // The state machine's, owned by whichever thread applies: what it holds, and the last
  // snapshot taken of it.
  Index sm_applied = 0;
  Index snapshot_index = 0;
  uint64_t bytes_since_snapshot = 0;  // of the entries applied since
  // The commit index on disk at the start, and when the start began: the replay's length.
  Index replay_to = 0;
  std::chrono::steady_clock::time_point started;
  // The entries applied (index, bytes) that the log may still hold, for snapshot_keep_bytes.
  std::deque<std::pair<Index, uint64_t>> in_log;
  uint64_t in_log_bytes = 0;
  raftpb::ConfState applied_conf;
  raft::SoftState soft;

  struct Pending {
    raft::Term term;
    Done done;
  };
  std::map<Index, Pending> proposals;  // by log index
  uint64_t next_read = 1;
  struct PendingRead {
    std::chrono::steady_clock::time_point started;
    Done done;
  };
  std::map<uint64_t, PendingRead> reads_waiting_index;  // by read id
  std::multimap<Index, Done> reads_waiting_apply;

  std::function<void(raft::NodeId, raft::Term, bool)> on_leader_change;
  std::function<void(const raft::NodeStatus&)> on_status_change;
  std::string membership_digest;  // the serializer's: the last MembershipDigest published
  std::function<void(const std::string&)> on_fatal;

  mutable Mutex status_mu;
  raft::NodeStatus status SKEP_GUARDED_BY(status_mu);
};

namespace {

// What membership decisions depend on, as one string: the rest of the status (the indexes,
// the peers' progress) changes with every entry.
std::string MembershipDigest(const raft::NodeStatus& st) {
  std::string d = std::to_string(static_cast<int>(st.role)) + "/" + std::to_string(st.lead) +
                  "/" + std::to_string(st.term) + "/" + std::to_string(st.conf_index) + "/" +
                  (st.conf_index <= st.commit ? "c" : "p") + "/" + st.conf.SerializeAsString();
  for (const auto& p : st.peers) {
    if (!p.voter && p.match >= st.commit) d += "/caught-up:" + std::to_string(p.id);
  }
  return d;
}

}  // namespace

void RaftNode::Impl::PublishStatus() {
  raft::NodeStatus st = node->GetStatus();
  std::string digest = MembershipDigest(st);
  {
    MutexLock lock(status_mu);
    status = st;
  }
  // After the status is in place: a watcher's reaction reads it.
  if (digest != membership_digest) {
    membership_digest = std::move(digest);
    if (on_status_change) on_status_change(st);
  }
}

void RaftNode::Impl::Track(Index index, Done done) {
  // A proposal still waiting at this index was made in an earlier term and its entry was
  // replaced by a log this node later rewrote: whether it committed is unknown.
  auto it = proposals.find(index);
  if (it != proposals.end()) {
    Done old = std::move(it->second.done);
    proposals.erase(it);
    old(Status(ErrorCode::kOutcomeUnknown, "the log was rewritten before the entry was applied"));
  }
  proposals[index] = {node->term(), std::move(done)};
}

void RaftNode::Impl::FailProposals(const Status& err) {
  auto pending = std::move(proposals);
  proposals.clear();
  for (auto& [i, p] : pending)
    p.done(err);
}

void RaftNode::Impl::FailReads(const Status& err) {
  auto waiting = std::move(reads_waiting_index);
  reads_waiting_index.clear();
  for (auto& [id, r] : waiting)
    r.done(err);
}

void RaftNode::Impl::ExpireReads() {
  // The request or its answer may have been lost on the way to the leader; the caller retries.
  const auto now = std::chrono::steady_clock::now();
  for (auto it = reads_waiting_index.begin(); it != reads_waiting_index.end();) {
    if (now - it->second.started < std::chrono::seconds(5)) {
      ++it;
      continue;
    }
    Done d = std::move(it->second.done);
    it = reads_waiting_index.erase(it);
    d(Status(ErrorCode::kNotLeader, "the leader did not confirm the read in time"));
  }
}

void RaftNode::Impl::Fail(const std::string& why) {
  if (failed) return;
  failed = true;
  timer.cancel();
  FailProposals(Status(ErrorCode::kOutcomeUnknown, "raft node stopped: " + why));
  FailReads(Status(ErrorCode::kNotLeader, "raft node stopped: " + why));
  auto applying = std::move(reads_waiting_apply);
  reads_waiting_apply.clear();
  for (auto& [i, d] : applying)
    d(Status(ErrorCode::kNotLeader, "raft node stopped: " + why));
  if (on_fatal) on_fatal(why);
}

void RaftNode::Impl::Pump() {
  if (!Live()) return;
  if (persisting) {
    // The write in progress holds the Ready; what may leave at once still leaves, so that
    // heartbeats and appends keep flowing during a slow write.
    for (auto& m : node->TakeMessages())
      transport->Send(std::move(m));
    return;
  }
  if (!node->HasReady()) return;
  auto rd = std::make_shared<raft::Ready>(node->GetReady());
  if (rd->soft_state) {
    const raft::SoftState old = soft;
    soft = *rd->soft_state;
    if (soft.lead != old.lead || soft.role != old.role) {
      // Reads waiting for the old leader's confirmation will not get one. Proposals made while
      // leading may still commit under the next leader; those that do not fail when their
      // index is applied with another term.
      FailReads(Status(ErrorCode::kNotLeader, "the leader changed before the read was confirmed"));
      if (on_leader_change) {
        on_leader_change(soft.lead, node->GetStatus().term, soft.role == raft::Role::kLeader);
      }
    }
  }
  // The messages leave after the write has started (the leader's own write overlaps its
  // appends' journey) or, when nothing needs writing, after the committed entries are applied
  // (the clients waiting for them need not wait for the commit index to go out first).
  std::vector<raftpb::Message> messages = std::move(rd->messages);
  rd->messages.clear();
  persisting = true;
  if (!rd->must_sync) {
    // Nothing that must be durable: a commit index alone is recovered from the leader after a
    // crash, so it is not written now but with the next write that must be.
    Applied(std::move(rd));
    Send(messages);
    Pump();
    return;
  }
  auto self = shared_from_this();
  writer.Post([self, rd] {
    std::string error;
    try {
      self->storage->Save(rd->hard_state ? &*rd->hard_state : nullptr, rd->entries,
                          rd->snapshot.get());
      // Acknowledgements leave as soon as what they promise is on disk, from this thread: waiting
      // for the serializer would only delay the leader's commit.
      if (self->Live()) {
        for (auto& m : rd->persisted_messages)
          self->transport->Send(std::move(m));
      }
      rd->persisted_messages.clear();
    } catch (const std::exception& e) {
      error = e.what();
    }
    self->serial->RunOne([self, rd, error] {
      if (!self->Live()) return;
      if (!error.empty()) {
        self->Fail(error);
        return;
      }
      self->Applied(rd);
      self->Pump();
    });
  });
  Send(messages);
}

void RaftNode::Impl::Send(std::vector<raftpb::Message>& messages) {
  for (auto& m : messages)
    transport->Send(std::move(m));
}

void RaftNode::Impl::Applied(std::shared_ptr<raft::Ready> rd) {
  if (!Live()) return;
  for (auto& m : rd->persisted_messages)
    transport->Send(std::move(m));
  rd->persisted_messages.clear();
  for (const auto& r : rd->read_states) {
    uint64_t id = 0;
    for (char c : r.context)
      id = (id << 8) | static_cast<unsigned char>(c);
    auto it = reads_waiting_index.find(id);
    if (it == reads_waiting_index.end()) continue;
    reads_waiting_apply.emplace(r.index, std::move(it->second.done));
    reads_waiting_index.erase(it);
  }
  node->Advance(*rd);
  persisting = false;
  if (!applier) {
    ApplyToStateMachine(*rd);
    Settle(*rd);
    PublishStatus();
    return;
  }
  // The core goes on (its next Ready may commit more, queued behind this one); what waits for
  // these entries is answered once the applier has them in the state machine.
  if (rd->snapshot || !rd->committed_entries.empty()) {
    auto self = shared_from_this();
    applier->Post([self, rd] {
      if (!self->Live()) return;
      try {
        self->ApplyToStateMachine(*rd);
      } catch (const std::exception& e) {
        // An entry or snapshot this build cannot apply (a newer store format): the node stops
        // rather than apply part of the log.
        std::string why = e.what();
        self->serial->Run([self, why] {
          if (self->Live()) self->Fail(why);
        });
        return;
      }
      self->serial->Post([self, rd] {
        if (self->Live()) self->Settle(*rd);
      });
    });
  }
  ServeReads();
  PublishStatus();
}

void RaftNode::Impl::ApplyToStateMachine(const raft::Ready& rd) {
  if (rd.snapshot) {
    sm->Restore(*rd.snapshot);
    sm_applied = rd.snapshot->metadata().index();
    applied_conf = rd.snapshot->metadata().conf_state();
    snapshot_index = sm_applied;
    bytes_since_snapshot = 0;
    in_log.clear();  // the log now starts after the snapshot
    in_log_bytes = 0;
  }
  for (const auto& e : rd.committed_entries) {
    if (e.type() == raftpb::ENTRY_CONF_CHANGE) {
      raftpb::ConfChange cc;
      if (cc.ParseFromString(e.data())) applied_conf = cc.result();
    }
    sm->Apply(e);
    sm_applied = e.index();
    if (sm_applied == replay_to) {
      SKEP_LOG(info, "raft", "the log known committed at the start applied {} ms after it",
               std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - started)
                   .count());
    }
    bytes_since_snapshot += e.data().size();
    if (options.snapshot_keep_bytes != 0) {
      in_log.emplace_back(e.index(), e.data().size());
      in_log_bytes += e.data().size();
    }
  }
  MaybeSnapshot();
}

void RaftNode::Impl::Settle(const raft::Ready& rd) {
  if (rd.snapshot) {
    applied = std::max(applied, rd.snapshot->metadata().index());
    // Proposals the snapshot covers can no longer be matched to their entries: they may or may
    // not be in it.
    const Status unknown(ErrorCode::kOutcomeUnknown,
                         "a snapshot from the leader replaced the log before the entry applied");
    for (auto it = proposals.begin(); it != proposals.end() && it->first <= applied;) {
      Done d = std::move(it->second.done);
      it = proposals.erase(it);
      d(unknown);
    }
  }
  for (const auto& e : rd.committed_entries) {
    applied = e.index();
    auto it = proposals.find(e.index());
    if (it == proposals.end()) continue;
    Pending p = std::move(it->second);
    proposals.erase(it);
    if (p.term == e.term()) {
      p.done(Status::Ok());
    } else {
      p.done(Status(ErrorCode::kNotLeader, "a new leader replaced the entry before it committed"));
    }
  }
  ServeReads();
}

void RaftNode::Impl::ServeReads() {
  while (!reads_waiting_apply.empty() && reads_waiting_apply.begin()->first <= applied) {
    Done d = std::move(reads_waiting_apply.begin()->second);
    reads_waiting_apply.erase(reads_waiting_apply.begin());
    d(Status::Ok());
  }
}

void RaftNode::Impl::MaybeSnapshot() {
  // The state machine's view as of `sm_applied` is taken here, where it is applied; it is
  // serialized and written on a thread of its own, so that applying and the log writes go on
  // meanwhile.
  const bool by_count =
      options.snapshot_every != 0 && sm_applied >= snapshot_index + options.snapshot_every;
  const bool by_size = options.snapshot_bytes != 0 && sm_applied > snapshot_index &&
                       bytes_since_snapshot >= options.snapshot_bytes;
  if (!by_count && !by_size) return;
  const Index at = sm_applied;
  Index compact_to = at > options.snapshot_keep ? at - options.snapshot_keep : 0;
  if (options.snapshot_keep_bytes != 0) {
    while (!in_log.empty() &&
           (in_log.front().first <= compact_to || in_log_bytes > options.snapshot_keep_bytes)) {
      compact_to = std::max(compact_to, in_log.front().first);
      in_log_bytes -= in_log.front().second;
      in_log.pop_front();
    }
  }
  snapshot_index = at;
  bytes_since_snapshot = 0;
  auto serialize = sm->Snapshot();
  auto conf = applied_conf;
  auto self = shared_from_this();
  snapshotter.Post([self, at, compact_to, serialize = std::move(serialize), conf] {
    try {
      self->storage->CreateSnapshot(at, conf, serialize(), compact_to);
    } catch (const std::exception& e) {
      std::string why = e.what();
      self->serial->Run([self, why] {
        if (self->Live()) self->Fail(why);
      });
    }
  });
}

void RaftNode::Impl::Tick() {
  if (!Live()) return;
  // A clock that runs late (an overloaded process, a serializer stuck behind a long apply)
  // makes the followers of this leader, or this follower, time out: say so, now and then.
  const auto now = std::chrono::steady_clock::now();
  const auto late = std::max<std::chrono::steady_clock::duration>(4 * options.tick,
                                                                  std::chrono::milliseconds(200));
  if (last_tick != std::chrono::steady_clock::time_point{} && now - last_tick > late &&
      now - late_reported > std::chrono::seconds(5)) {
    late_reported = now;
    SKEP_LOG(warn, "raft", "the raft clock ran {} ms late (a tick is {} ms)",
             std::chrono::duration_cast<std::chrono::milliseconds>(now - last_tick - options.tick)
                 .count(),
             options.tick.count());
  }
  last_tick = now;
  node->Tick();
  ExpireReads();
  Pump();
  PublishStatus();
  timer.expires_after(options.tick);
  timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->serial->Run([self] { self->Tick(); });
  });
}

// ---------------------------------------------------------------------------------------------

RaftNode::RaftNode(asio::io_context& io, const RaftNodeOptions& options, raft::Storage* storage,
                   RaftTransport* transport, RaftStateMachine* state_machine)
    : impl_(std::make_shared<Impl>(io, options, storage, transport, state_machine)) {}

RaftNode::~RaftNode() {
  Stop();
}

void RaftNode::Start() {
  auto snap = impl_->storage->Snapshot();
  raft::Config cfg = impl_->options.raft;
  cfg.applied = snap->metadata().index();
  impl_->node = std::make_unique<raft::Node>(cfg, impl_->storage);
  if (snap->metadata().index() > 0) {
    const auto start = std::chrono::steady_clock::now();
    impl_->sm->Restore(*snap);
    SKEP_LOG(info, "raft", "state restored from the snapshot at entry {} ({} bytes) in {} ms",
             snap->metadata().index(), snap->data().size(),
             std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now() - start)
                 .count());
  }
  impl_->replay_to = impl_->storage->HardState().commit();
  impl_->started = std::chrono::steady_clock::now();
  impl_->applied = snap->metadata().index();
  impl_->sm_applied = snap->metadata().index();
  impl_->snapshot_index = snap->metadata().index();
  if (impl_->options.apply_thread) impl_->applier.emplace("raft-apply");
  impl_->applied_conf = snap->metadata().conf_state();
  impl_->PublishStatus();
  impl_->running = true;
  impl_->serial->Post([self = impl_] { self->Tick(); });
}

void RaftNode::Stop() {
  if (!impl_ || !impl_->node) return;
  if (impl_->running.exchange(false)) {
    // Waits for the task running in the serializer, if any, and tells whoever still waits that
    // the node stopped.
    auto done = std::make_shared<std::promise<void>>();
    auto fut = done->get_future();
    impl_->serial->Run([self = impl_, done] {
      self->timer.cancel();
      self->FailProposals(Status(ErrorCode::kOutcomeUnknown, "raft node stopped"));
      self->FailReads(Status(ErrorCode::kNotLeader, "raft node stopped"));
      done->set_value();
    });
    // If the io_context no longer runs nothing else will either: don't wait forever.
    fut.wait_for(std::chrono::seconds(5));
  }
  // Finishes the writes in progress (even after a failure); their completions find the node
  // stopped and do nothing.
  impl_->writer.Close();
  if (impl_->applier) impl_->applier->Close();  // before the snapshotter: it may post to it
  impl_->snapshotter.Close();
}

void RaftNode::Step(raftpb::Message m) {
  impl_->serial->Run([self = impl_, m = std::move(m)] {
    if (!self->Live()) return;
    // A malformed message is dropped, the core changed nothing; said now and then, not for
    // each one a faulty peer sends.
    if (const Status st = self->node->Step(m); !st.ok()) {
      const auto now = std::chrono::steady_clock::now();
      if (now - self->refused_reported > std::chrono::seconds(10)) {
        self->refused_reported = now;
        SKEP_LOG(warn, "raft", "refused a message of type {} from {} (term {}): {}",
                 static_cast<int>(m.type()), m.from(), m.term(), st.message());
      }
    }
    self->Pump();
  });
}

namespace {
const Status kNotRunning(ErrorCode::kNotLeader, "raft node is not running");
}

void RaftNode::Propose(std::string data, Done done, raft::Term term) {
  impl_->serial->Run([self = impl_, data = std::move(data), done = std::move(done),
                      term]() mutable {
    if (!self->Live()) return done(kNotRunning);
    if (term != 0 && self->node->term() != term) {
      return done(Status(ErrorCode::kNotLeader, "the term it was proposed for is over"));
    }
    Index index = 0;
    Status st = self->node->Propose(std::move(data), &index);
    if (!st.ok()) return done(st);
    self->Track(index, std::move(done));
    self->Pump();
  });
}

void RaftNode::ProposeConfChange(raftpb::ConfChangeType type, raft::NodeId node,
                                 std::string context, Done done) {
  impl_->serial->Run(
      [self = impl_, type, node, context = std::move(context), done = std::move(done)]() mutable {
        if (!self->Live()) return done(kNotRunning);
        Index index = 0;
        Status st = self->node->ProposeConfChange(type, node, std::move(context), &index);
        if (!st.ok()) return done(st);
        self->Track(index, std::move(done));
        self->Pump();
      });
}

void RaftNode::ReadIndex(Done done) {
  impl_->serial->Run([self = impl_, done = std::move(done)]() mutable {
    if (!self->Live()) return done(kNotRunning);
    const uint64_t id = self->next_read++;
    std::string ctx(8, '\0');
    for (int b = 0; b < 8; ++b)
      ctx[7 - b] = static_cast<char>((id >> (8 * b)) & 0xff);
    Status st = self->node->ReadIndex(ctx);
    if (!st.ok()) return done(st);
    self->reads_waiting_index[id] = {std::chrono::steady_clock::now(), std::move(done)};
    self->Pump();
  });
}

void RaftNode::TransferLeadership(raft::NodeId target, Done done) {
  impl_->serial->Run([self = impl_, target, done = std::move(done)] {
    if (!self->Live()) return done(kNotRunning);
    Status st = self->node->TransferLeadership(target);
    self->Pump();
    done(st);
  });
}

void RaftNode::Campaign() {
  impl_->serial->Run([self = impl_] {
    if (!self->Live()) return;
    (void)self->node->Campaign();
    self->Pump();
  });
}

void RaftNode::SetTimeouts(int election_tick, int heartbeat_tick) {
  impl_->serial->Run([self = impl_, election_tick, heartbeat_tick] {
    if (self->Live()) (void)self->node->SetTimeouts(election_tick, heartbeat_tick);
  });
}

raft::NodeStatus RaftNode::GetStatus() const {
  MutexLock lock(impl_->status_mu);
  return impl_->status;
}

void RaftNode::OnLeaderChange(std::function<void(raft::NodeId, raft::Term, bool)> f) {
  impl_->on_leader_change = std::move(f);
}

void RaftNode::OnStatusChange(std::function<void(const raft::NodeStatus&)> f) {
  impl_->on_status_change = std::move(f);
}

void RaftNode::OnFatal(std::function<void(const std::string&)> f) {
  impl_->on_fatal = std::move(f);
}

}  // namespace skep
