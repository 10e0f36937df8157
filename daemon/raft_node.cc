#include "daemon/raft_node.h"

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "raft/conf.h"

namespace skep {

namespace asio = boost::asio;
using raft::ErrorCode;
using raft::Index;
using raft::Status;

// A single thread that performs the synced storage writes in order.
class StorageWriter {
 public:
  StorageWriter() : thread_([this] { Run(); }) {}
  ~StorageWriter() { Close(); }
  void Post(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      if (closed_) return;
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }
  // Runs what is queued, then refuses further jobs.
  void Close() {
    {
      std::lock_guard lock(mu_);
      if (closed_) return;
      closed_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  void Run() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return closed_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool closed_ = false;
  std::thread thread_;
};

class RaftNode::Impl : public std::enable_shared_from_this<RaftNode::Impl> {
 public:
  Impl(asio::io_context& io, const RaftNodeOptions& options, raft::Storage* storage,
       RaftTransport* transport, RaftStateMachine* sm)
      : options(options),
        strand(asio::make_strand(io)),
        timer(strand),
        storage(storage),
        transport(transport),
        sm(sm) {}

  // Everything below runs on the strand.
  void Pump();
  void Persisted(std::shared_ptr<raft::Ready> rd);
  void ApplyEntry(const raftpb::Entry& e);
  void MaybeSnapshot();
  void ServeReads();
  void Tick();
  void Fail(const std::string& why);
  void PublishStatus();

  RaftNodeOptions options;
  Executor strand;
  asio::steady_timer timer;
  raft::Storage* storage;
  RaftTransport* transport;
  RaftStateMachine* sm;
  std::unique_ptr<raft::Node> node;
  StorageWriter writer;

  std::atomic<bool> running{false};
  bool failed = false;
  bool persisting = false;
  Index applied = 0;
  Index snapshot_index = 0;
  raftpb::ConfState applied_conf;
  raft::SoftState soft;

  struct Pending {
    raft::Term term;
    Done done;
  };
  std::map<Index, Pending> proposals;  // by log index
  uint64_t next_read = 1;
  std::map<uint64_t, Done> reads_waiting_index;  // by read id
  std::multimap<Index, Done> reads_waiting_apply;

  std::function<void(raft::NodeId, raft::Term, bool)> on_leader_change;
  std::function<void(const std::string&)> on_fatal;

  mutable std::mutex status_mu;
  raft::NodeStatus status;
};

void RaftNode::Impl::PublishStatus() {
  raft::NodeStatus st = node->GetStatus();
  std::lock_guard lock(status_mu);
  status = std::move(st);
}

void RaftNode::Impl::Fail(const std::string& why) {
  if (failed) return;
  failed = true;
  running = false;
  timer.cancel();
  const Status err(ErrorCode::kNotLeader, "raft node stopped: " + why);
  for (auto& [i, p] : proposals)
    p.done(err);
  proposals.clear();
  for (auto& [i, d] : reads_waiting_index)
    d(err);
  reads_waiting_index.clear();
  for (auto& [i, d] : reads_waiting_apply)
    d(err);
  reads_waiting_apply.clear();
  if (on_fatal) on_fatal(why);
}

void RaftNode::Impl::Pump() {
  if (!running || persisting || !node->HasReady()) return;
  auto rd = std::make_shared<raft::Ready>(node->GetReady());
  if (rd->soft_state) {
    const raft::SoftState old = soft;
    soft = *rd->soft_state;
    if (soft.role != raft::Role::kLeader && old.role == raft::Role::kLeader) {
      // Proposals made while leading may still commit under the next leader; those that do not
      // fail when their index is applied with another term. Reads must be confirmed again.
      const Status err(ErrorCode::kNotLeader, "leadership lost before the read was confirmed");
      for (auto& [id, d] : reads_waiting_index)
        d(err);
      reads_waiting_index.clear();
    }
    if (on_leader_change && (soft.lead != old.lead || soft.role != old.role)) {
      on_leader_change(soft.lead, node->GetStatus().term, soft.role == raft::Role::kLeader);
    }
  }
  for (auto& m : rd->messages)
    transport->Send(std::move(m));
  rd->messages.clear();
  persisting = true;
  if (!rd->MustPersist()) {
    Persisted(std::move(rd));
    return;
  }
  auto self = shared_from_this();
  writer.Post([self, rd] {
    std::string error;
    try {
      self->storage->Save(rd->hard_state ? &*rd->hard_state : nullptr, rd->entries,
                          rd->snapshot.get());
    } catch (const std::exception& e) {
      error = e.what();
    }
    asio::post(self->strand, [self, rd, error] {
      if (!error.empty()) {
        self->Fail(error);
        return;
      }
      self->Persisted(rd);
    });
  });
}

void RaftNode::Impl::Persisted(std::shared_ptr<raft::Ready> rd) {
  if (failed) return;
  for (auto& m : rd->persisted_messages)
    transport->Send(std::move(m));
  if (rd->snapshot) {
    sm->Restore(*rd->snapshot);
    applied = rd->snapshot->metadata().index();
    applied_conf = rd->snapshot->metadata().conf_state();
    snapshot_index = applied;
    // Proposals the snapshot covers can no longer be matched to their entries.
    const Status err(ErrorCode::kNotLeader, "replaced by a snapshot from the leader");
    for (auto it = proposals.begin(); it != proposals.end() && it->first <= applied;) {
      it->second.done(err);
      it = proposals.erase(it);
    }
  }
  for (const auto& e : rd->committed_entries)
    ApplyEntry(e);
  for (const auto& r : rd->read_states) {
    uint64_t id = 0;
    for (char c : r.context)
      id = (id << 8) | static_cast<unsigned char>(c);
    auto it = reads_waiting_index.find(id);
    if (it == reads_waiting_index.end()) continue;
    reads_waiting_apply.emplace(r.index, std::move(it->second));
    reads_waiting_index.erase(it);
  }
  node->Advance(*rd);
  persisting = false;
  ServeReads();
  MaybeSnapshot();
  PublishStatus();
  Pump();
}

void RaftNode::Impl::ApplyEntry(const raftpb::Entry& e) {
  if (e.type() == raftpb::ENTRY_CONF_CHANGE) {
    raftpb::ConfChange cc;
    if (cc.ParseFromString(e.data())) applied_conf = cc.result();
  }
  sm->Apply(e);
  applied = e.index();
  auto it = proposals.find(e.index());
  if (it == proposals.end()) return;
  Pending p = std::move(it->second);
  proposals.erase(it);
  if (p.term == e.term()) {
    p.done(Status::Ok());
  } else {
    p.done(Status(ErrorCode::kNotLeader, "a new leader replaced the entry before it committed"));
  }
}

void RaftNode::Impl::ServeReads() {
  while (!reads_waiting_apply.empty() && reads_waiting_apply.begin()->first <= applied) {
    Done d = std::move(reads_waiting_apply.begin()->second);
    reads_waiting_apply.erase(reads_waiting_apply.begin());
    d(Status::Ok());
  }
}

void RaftNode::Impl::MaybeSnapshot() {
  if (options.snapshot_every == 0 || applied < snapshot_index + options.snapshot_every) return;
  const Index at = applied;
  const Index compact_to = at > options.snapshot_keep ? at - options.snapshot_keep : 0;
  snapshot_index = at;
  auto data = std::make_shared<std::string>(sm->Snapshot());
  auto conf = applied_conf;
  auto self = shared_from_this();
  writer.Post([self, at, compact_to, data, conf] {
    try {
      self->storage->CreateSnapshot(at, conf, std::move(*data), compact_to);
    } catch (const std::exception& e) {
      std::string why = e.what();
      asio::post(self->strand, [self, why] { self->Fail(why); });
    }
  });
}

void RaftNode::Impl::Tick() {
  if (!running) return;
  node->Tick();
  Pump();
  PublishStatus();
  timer.expires_after(options.tick);
  timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->Tick();
  });
}

// ---------------------------------------------------------------------------------------------

RaftNode::RaftNode(asio::io_context& io, const RaftNodeOptions& options, raft::Storage* storage,
                   RaftTransport* transport, RaftStateMachine* state_machine)
    : impl_(std::make_shared<Impl>(io, options, storage, transport, state_machine)) {}

RaftNode::~RaftNode() {
  Stop();
}

RaftNode::Executor& RaftNode::executor() {
  return impl_->strand;
}

void RaftNode::Start() {
  auto snap = impl_->storage->Snapshot();
  raft::Config cfg = impl_->options.raft;
  cfg.applied = snap->metadata().index();
  impl_->node = std::make_unique<raft::Node>(cfg, impl_->storage);
  if (snap->metadata().index() > 0) impl_->sm->Restore(*snap);
  impl_->applied = snap->metadata().index();
  impl_->snapshot_index = snap->metadata().index();
  impl_->applied_conf = snap->metadata().conf_state();
  impl_->PublishStatus();
  impl_->running = true;
  asio::post(impl_->strand, [self = impl_] { self->Tick(); });
}

void RaftNode::Stop() {
  if (!impl_ || !impl_->node || !impl_->running.exchange(false)) return;
  asio::post(impl_->strand, [self = impl_] { self->timer.cancel(); });
  // Finishes the write in progress; the strand starts no new one once `running` is false.
  impl_->writer.Close();
}

void RaftNode::Step(raftpb::Message m) {
  asio::post(impl_->strand, [self = impl_, m = std::move(m)] {
    if (!self->running) return;
    (void)self->node->Step(m);  // a malformed message is dropped; the core changed nothing
    self->Pump();
  });
}

void RaftNode::Propose(std::string data, Done done) {
  asio::post(impl_->strand,
             [self = impl_, data = std::move(data), done = std::move(done)]() mutable {
               if (!self->running)
                 return done(Status(ErrorCode::kNotLeader, "raft node is not running"));
               Index index = 0;
               Status st = self->node->Propose(std::move(data), &index);
               if (!st.ok()) return done(st);
               self->proposals[index] = {self->node->GetStatus().term, std::move(done)};
               self->Pump();
             });
}

void RaftNode::ProposeConfChange(raftpb::ConfChangeType type, raft::NodeId node,
                                 std::string context, Done done) {
  asio::post(impl_->strand, [self = impl_, type, node, context = std::move(context),
                             done = std::move(done)]() mutable {
    if (!self->running) return done(Status(ErrorCode::kNotLeader, "raft node is not running"));
    Index index = 0;
    Status st = self->node->ProposeConfChange(type, node, std::move(context), &index);
    if (!st.ok()) return done(st);
    self->proposals[index] = {self->node->GetStatus().term, std::move(done)};
    self->Pump();
  });
}

void RaftNode::ReadIndex(Done done) {
  asio::post(impl_->strand, [self = impl_, done = std::move(done)]() mutable {
    if (!self->running) return done(Status(ErrorCode::kNotLeader, "raft node is not running"));
    const uint64_t id = self->next_read++;
    std::string ctx(8, '\0');
    for (int b = 0; b < 8; ++b)
      ctx[7 - b] = static_cast<char>((id >> (8 * b)) & 0xff);
    Status st = self->node->ReadIndex(ctx);
    if (!st.ok()) return done(st);
    self->reads_waiting_index[id] = std::move(done);
    self->Pump();
  });
}

void RaftNode::TransferLeadership(raft::NodeId target, Done done) {
  asio::post(impl_->strand, [self = impl_, target, done = std::move(done)] {
    if (!self->running) return done(Status(ErrorCode::kNotLeader, "raft node is not running"));
    Status st = self->node->TransferLeadership(target);
    self->Pump();
    done(st);
  });
}

void RaftNode::Campaign() {
  asio::post(impl_->strand, [self = impl_] {
    if (!self->running) return;
    (void)self->node->Campaign();
    self->Pump();
  });
}

raft::NodeStatus RaftNode::GetStatus() const {
  std::lock_guard lock(impl_->status_mu);
  return impl_->status;
}

void RaftNode::OnLeaderChange(std::function<void(raft::NodeId, raft::Term, bool)> f) {
  impl_->on_leader_change = std::move(f);
}

void RaftNode::OnFatal(std::function<void(const std::string&)> f) {
  impl_->on_fatal = std::move(f);
}

}  // namespace skep
