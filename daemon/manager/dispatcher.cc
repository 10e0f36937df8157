#include "daemon/manager/dispatcher.h"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <set>

#include "daemon/common/grpc_status.h"
#include "daemon/common/log.h"
#include "daemon/common/pki.h"
#include "daemon/common/proto_bytes.h"
#include "daemon/common/tls.h"
#include "daemon/manager/assignments.h"
#include "daemon/manager/defaults.h"
#include "daemon/manager/store_driven.h"
#include "daemon/manager/writes.h"

namespace skep::manager {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// A node is down after this many periods without a heartbeat (Docker's grace multiplier).
constexpr int kGracePeriods = 3;
// After a leader change, nodes have this many graces to open a session with the new leader,
// counted from when it takes sessions (SwarmKit gives nodes of unknown state twice the grace),
// and a little more for each node: they all come at once, and each is a TLS handshake. Marked
// down too soon, their tasks would be replaced, a storm of writes that can cost the new leader
// its own term.
constexpr int kLeaderChangeGraces = 2;
constexpr std::chrono::milliseconds kLeaderChangePerNode(10);
// How far ahead of the leader's clock a node's status timestamps may be.
constexpr int64_t kClockSkewNs = 60'000'000'000;

Status NoCertificate(const std::string& what) {
  return {Code::kUnauthenticated, what + " needs the node's certificate"};
}

// A unary call answered at once.
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* c, const Status& st) {
  auto* r = c->DefaultReactor();
  r->Finish(ToGrpc(st));
  return r;
}

template <class Msg>
class RefusedWrite final : public grpc::ServerWriteReactor<Msg> {
 public:
  explicit RefusedWrite(const Status& status) { this->Finish(ToGrpc(status)); }
  void OnDone() override { delete this; }
};

template <class Msg>
class RefusedRead final : public grpc::ServerReadReactor<Msg> {
 public:
  explicit RefusedRead(const Status& status) { this->Finish(ToGrpc(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

LivenessPlan PlanLiveness(const std::vector<NodeHeard>& nodes, Clock::Steady now,
                          Clock::duration grace, Clock::Steady quiet_until) {
  LivenessPlan plan;
  for (const auto& n : nodes) {
    if (n.down) continue;
    const Clock::Steady due = std::max(n.heard + grace, quiet_until);
    if (due <= now) {
      plan.down.push_back(n.id);
    } else if (!plan.next || due < *plan.next) {
      plan.next = due;
    }
  }
  return plan;
}

// One node's session: its stream and what was sent on it, on the session's strand.
struct Dispatcher::SessionState {
  SessionState(std::string session_id, std::string node, Strand s)
      : id(std::move(session_id)), node_id(node), strand(std::move(s)), assignments(node) {}
  const std::string id;
  const std::string node_id;
  Strand strand;

  SessionStream* stream = nullptr;  // unused once finish_called is set: it may be gone
  bool dirty = true;                // something the node must hear of changed
  bool writing = false;             // a message is being written
  bool finish_called = false;       // Finish was called on the stream
  std::optional<Status> finish;     // how the session is to end
  api::SessionMessage current;      // the message being written
  Assignments assignments;          // what the node was sent

  // With no write in flight and an end decided: finishes the stream.
  void FinishNow();
};

class Dispatcher::SessionStream final : public grpc::ServerWriteReactor<api::SessionMessage> {
 public:
  SessionStream(std::shared_ptr<Dispatcher> d, SessionPtr s) : d_(std::move(d)), s_(std::move(s)) {}
  void OnWriteDone(bool ok) override {
    asio::post(s_->strand, [d = d_, s = s_, ok] {
      s->writing = false;
      // Written: the message is not kept until the next (a node's full list of tasks, a
      // thousand sessions: the leader held a copy of every task).
      s->current = api::SessionMessage();
      if (!ok && !s->finish) s->finish = Status::Ok();  // the agent went away
      if (s->finish) {
        s->FinishNow();
        return;
      }
      if (s->dirty) d->WriteNext(s);
    });
  }
  void OnCancel() override { d_->End(s_, {Code::kCancelled, "the session was cancelled"}); }
  // After Finish (finish_called is set): nothing on the session's strand uses the stream now.
  void OnDone() override {
    asio::post(d_->strand_, [d = d_, s = s_] { d->Ended(s); });
    delete this;
  }

 private:
  std::shared_ptr<Dispatcher> d_;
  SessionPtr s_;
};

void Dispatcher::SessionState::FinishNow() {
  if (finish_called || writing || !finish) return;
  finish_called = true;
  stream->Finish(ToGrpc(*finish));
}

Dispatcher::Dispatcher(Context& ctx)
    : ctx_(ctx),
      strand_(ctx.MakeStrand()),
      status_strand_(ctx.MakeStrand()),
      period_ms_(kDispatcherHeartbeatMs),
      logs_(&ctx.store(), [this](const std::string& node_id) { return Connected(node_id); }) {}

Dispatcher::~Dispatcher() = default;

void Dispatcher::Start() {
  std::weak_ptr<Dispatcher> weak = weak_from_this();
  // The store's events are gathered per batch on the apply thread and handed over at its end.
  store_events_ = ctx_.store().Watch([this, weak](const StoreEvent& ev) {
    batch_events_.push_back(ev);
    if (!ev.last_in_batch) return;
    asio::post(strand_, [weak, events = std::move(batch_events_)] {
      if (auto me = weak.lock()) me->OnEvents(events);
    });
    batch_events_.clear();
  });
  leadership_ = ctx_.WatchLeadership([weak](const Leadership& l) {
    if (auto me = weak.lock()) asio::post(me->strand_, [me, l] { me->OnLeadership(l); });
  });
  managers_ = ctx_.WatchManagers([weak] {
    if (auto me = weak.lock()) asio::post(me->strand_, [me] { me->WakeAll(); });
  });
  asio::post(strand_, [self = shared_from_this()] {
    self->ReadPeriod();
    self->OnLeadership(self->ctx_.leadership());
  });
}

void Dispatcher::Stop() {
  store_events_.Cancel();
  leadership_.Cancel();
  managers_.Cancel();
  asio::post(strand_, [self = shared_from_this()] {
    self->stopped_ = true;
    self->serving_ = false;
    self->liveness_.reset();
    for (auto& [id, s] : self->sessions_)
      self->End(s, Unavailable("the manager is shutting down"));
    self->sessions_.clear();
    self->heard_.Clear();  // no heartbeat of an ended session is answered OK
  });
}

std::chrono::milliseconds Dispatcher::Period() const {
  return std::chrono::milliseconds(period_ms_.load());
}

Clock::duration Dispatcher::Grace() const {
  return Period() * kGracePeriods;
}

void Dispatcher::ReadPeriod() {
  auto c = ctx_.store().GetCluster();
  int64_t ms = c ? c->spec().dispatcher().heartbeat_period_ms() : 0;
  period_ms_ = ms > 0 ? ms : kDispatcherHeartbeatMs;
}

Status Dispatcher::NotLeader() const {
  const Leadership l = ctx_.leadership();
  if (l.leader) return Unavailable("the new leader is still catching up; try again");
  if (!l.Reachable()) return {Code::kNoLeader, "the swarm has no leader at the moment"};
  return Status::NotLeader("not the leader; the leader is at " + l.leader_info->addr,
                           l.leader_info->addr);
}

// ---- sessions ---------------------------------------------------------------------------------

bool Dispatcher::Compose(SessionState& s, api::SessionMessage* msg) {
  msg->set_session_id(s.id);
  for (const auto& p : ctx_.Managers())
    *msg->add_managers() = p;
  msg->set_heartbeat_period_ms(Period().count());
  if (const Leadership l = ctx_.leadership(); l.Reachable()) {
    msg->set_leader_addr(l.leader_info->addr);
  }
  for (auto& sub : logs_.For(s.node_id))
    *msg->add_log_subscriptions() = std::move(sub);
  return ctx_.store().View([&](const ReadTx& tx) { return s.assignments.Next(tx, msg); });
}

void Dispatcher::Wake(const SessionPtr& s) {
  asio::post(s->strand, [self = shared_from_this(), s] {
    s->dirty = true;
    self->WriteNext(s);
  });
}

void Dispatcher::WriteNext(const SessionPtr& s) {
  if (s->writing || s->finish_called || s->finish || !s->dirty) return;
  s->dirty = false;
  api::SessionMessage msg;
  if (!Compose(*s, &msg)) return;
  s->current = std::move(msg);
  s->writing = true;
  s->stream->StartWrite(&s->current);
}

void Dispatcher::End(const SessionPtr& s, Status status) {
  asio::post(s->strand, [s, status = std::move(status)] {
    if (s->finish || s->finish_called) return;
    s->finish = status;
    s->FinishNow();
  });
}

void Dispatcher::Ended(const SessionPtr& s) {
  SKEP_LOG(debug, "dispatcher", "session {} of node {} ended", s->id, s->node_id);
  auto it = sessions_.find(s->node_id);
  if (it == sessions_.end() || it->second != s) return;  // replaced by a newer one
  sessions_.erase(it);
  heard_.Close(s->node_id, s->id);
  Touch(logs_.OnSessionEnded(s->node_id));
}

void Dispatcher::WakeAll() {
  for (auto& [id, s] : sessions_)
    Wake(s);
}

void Dispatcher::Touch(const LogBroker::Nodes& nodes) {
  for (const auto& n : nodes) {
    if (auto it = sessions_.find(n); it != sessions_.end()) Wake(it->second);
  }
}

bool Dispatcher::Connected(const std::string& node_id) const {
  const std::optional<Clock::Steady> heard = heard_.Heard(node_id);
  return serving_ && sessions_.count(node_id) && heard &&
         ctx_.clock().SteadyNow() - *heard < Grace();
}

void Dispatcher::MarkReady(const std::string& node_id, const std::string& addr) {
  UpdateNode(ctx_, strand_, node_id, [addr](api::Node& n) {
    n.mutable_status()->set_state(api::NODE_STATE_READY);
    n.mutable_status()->set_message("");
    n.mutable_status()->set_addr(addr);
    return Status::Ok();
  }, {});
}

grpc::ServerWriteReactor<api::SessionMessage>* Dispatcher::Session(
    grpc::CallbackServerContext* context, const api::SessionRequest* request) {
  using Refused = RefusedWrite<api::SessionMessage>;
  const tls::Peer peer = tls::PeerOf(*context);
  if (!peer.has_certificate) return new Refused(NoCertificate("a session"));
  if (!ctx_.leadership().serving) return new Refused(NotLeader());
  // Whether the node is a member is asked on the strand (Register): not on gRPC's threads.
  auto s = std::make_shared<SessionState>(pki::RandomId(), peer.node_id, ctx_.MakeStrand());
  auto* stream = new SessionStream(shared_from_this(), s);
  s->stream = stream;
  asio::post(strand_, [self = shared_from_this(), s, description = request->description(),
                       addr = peer.address] { self->Register(s, description, addr); });
  return stream;
}

void Dispatcher::Register(const SessionPtr& s, const api::NodeDescription& description,
                          const std::string& addr) {
  // Leadership as the manager has it now: this strand may hear of the change a moment later.
  if (stopped_ || !ctx_.leadership().serving) {
    End(s, stopped_ ? Unavailable("the manager is shutting down") : NotLeader());
    return;
  }
  const std::optional<api::Node> node = ctx_.store().GetNode(s->node_id);
  if (!node) {
    End(s, NotFound("node " + s->node_id + " is not a member of this swarm (it was removed)"));
    return;
  }
  auto& slot = sessions_[s->node_id];
  if (slot) End(slot, {Code::kFailedPrecondition, "a newer session replaced this one"});
  slot = s;
  heard_.Open(s->node_id, s->id, ctx_.clock().SteadyNow());
  heard_.SetReady(s->node_id, node->status().state() == api::NODE_STATE_READY);
  // What the node reports about itself (hostname, version, labels) is kept up to date.
  UpdateNode(ctx_, strand_, s->node_id, [description](api::Node& n) {
    *n.mutable_description() = description;
    return Status::Ok();
  }, {});
  MarkReady(s->node_id, addr);
  SKEP_LOG(debug, "dispatcher", "session {} opened for node {} from {}", s->id, s->node_id, addr);
  Wake(s);
}

grpc::ServerUnaryReactor* Dispatcher::Heartbeat(grpc::CallbackServerContext* context,
                                                const api::HeartbeatRequest* request,
                                                api::HeartbeatResponse* response) {
  const tls::Peer peer = tls::PeerOf(*context);
  if (!peer.has_certificate) return Answer(context, NoCertificate("a heartbeat"));
  // Answered here, not on the strand (see the header).
  if (!ctx_.leadership().serving) return Answer(context, NotLeader());
  const HeardTable::BeatResult beat =
      heard_.Beat(peer.node_id, request->session_id(), ctx_.clock().SteadyNow());
  if (beat == HeardTable::BeatResult::kNoSession)
    return Answer(context, NotFound("no such session; open a new one"));
  response->set_period_ms(Period().count());
  // A node marked down (a race with the check, a shortened period) is ready again the moment
  // it heartbeats.
  if (beat == HeardTable::BeatResult::kNotReady) {
    asio::post(strand_, [self = shared_from_this(), node = peer.node_id, addr = peer.address] {
      self->MarkReady(node, addr);
    });
  }
  return Answer(context, Status::Ok());
}

// ---- liveness ---------------------------------------------------------------------------------

void HeardTable::Open(const std::string& node, const std::string& session, Clock::Steady now) {
  MutexLock lock(mu_);
  nodes_[node] = {session, now};
}

void HeardTable::Close(const std::string& node, const std::string& session) {
  MutexLock lock(mu_);
  if (auto it = nodes_.find(node); it != nodes_.end() && it->second.session == session)
    it->second.session.clear();
}

HeardTable::BeatResult HeardTable::Beat(const std::string& node, const std::string& session,
                                        Clock::Steady now) {
  MutexLock lock(mu_);
  auto it = nodes_.find(node);
  if (it == nodes_.end() || session.empty() || it->second.session != session)
    return BeatResult::kNoSession;
  it->second.heard = now;
  return it->second.ready ? BeatResult::kReady : BeatResult::kNotReady;
}

void HeardTable::SetReady(const std::string& node, bool ready) {
  MutexLock lock(mu_);
  if (auto it = nodes_.find(node); it != nodes_.end()) it->second.ready = ready;
}

Clock::Steady HeardTable::HeardOrNow(const std::string& node, Clock::Steady now) {
  MutexLock lock(mu_);
  return nodes_.try_emplace(node, Entry{"", now}).first->second.heard;
}

std::optional<Clock::Steady> HeardTable::Heard(const std::string& node) const {
  MutexLock lock(mu_);
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return std::nullopt;
  return it->second.heard;
}

void HeardTable::Forget(const std::string& node) {
  MutexLock lock(mu_);
  nodes_.erase(node);
}

void HeardTable::Clear() {
  MutexLock lock(mu_);
  nodes_.clear();
}

void Dispatcher::ArmLiveness(Clock::Steady at) {
  if (liveness_ && liveness_at_ <= at) return;
  liveness_at_ = at;
  liveness_ = ctx_.clock().At(strand_, at, [weak = weak_from_this()] {
    if (auto me = weak.lock()) {
      me->liveness_.reset();
      me->CheckNodes();
    }
  });
}

void Dispatcher::CheckNodes() {
  if (!serving_) return;
  const Clock::Steady now = ctx_.clock().SteadyNow();
  std::vector<NodeHeard> nodes;
  ctx_.store().View([&](const ReadTx& tx) {
    for (const auto* n : tx.nodes()) {
      // A node first seen now (it just joined) has a grace from now.
      nodes.push_back({n->id(), n->status().state() == api::NODE_STATE_DOWN,
                       heard_.HeardOrNow(n->id(), now)});
    }
  });
  const auto grace = Grace();
  const LivenessPlan plan = PlanLiveness(nodes, now, grace, quiet_until_);
  for (const auto& id : plan.down) {
    UpdateNode(ctx_, strand_, id, [this, id, grace](api::Node& node) {
      if (node.status().state() == api::NODE_STATE_DOWN) return Status::Ok();
      // Heard from since the check (a session opened, a heartbeat came): not down.
      const std::optional<Clock::Steady> heard = heard_.Heard(id);
      if (heard && ctx_.clock().SteadyNow() - *heard < grace) return Status::Ok();
      node.mutable_status()->set_state(api::NODE_STATE_DOWN);
      node.mutable_status()->set_message("heartbeat failure");
      SKEP_LOG(info, "dispatcher", "node {} ({}) is down: no heartbeat for {} ms", id,
               node.description().hostname(),
               std::chrono::duration_cast<std::chrono::milliseconds>(grace).count());
      return Status::Ok();
    }, {});
  }
  if (plan.next) ArmLiveness(*plan.next);
}

// ---- events -----------------------------------------------------------------------------------

void Dispatcher::OnLeadership(const Leadership& l) {
  if (stopped_) return;
  if (l.serving == serving_) return;
  serving_ = l.serving;
  if (!serving_) {
    logs_.EndAll(Unavailable("the leader stepped down; ask again"));
    // Each agent is told where the new leader is, and opens a session there.
    for (auto& [id, s] : sessions_)
      End(s, NotLeader());
    sessions_.clear();
    heard_.Clear();
    liveness_.reset();
    return;
  }
  // Sessions are refused until this leader serves, so the nodes' grace to find it starts now,
  // and is longer than a heartbeat's: they all come at once.
  const Clock::Steady now = ctx_.clock().SteadyNow();
  const size_t nodes = ctx_.store().View([](const ReadTx& tx) { return tx.nodes().size(); });
  quiet_until_ = now + Grace() * kLeaderChangeGraces + kLeaderChangePerNode * nodes;
  heard_.Clear();
  CheckNodes();
  ArmLiveness(quiet_until_);
}

void Dispatcher::OnEvents(const std::vector<StoreEvent>& events) {
  LogBroker::Nodes nodes;
  bool all = false;
  bool new_node = false;
  for (const auto& event : events) {
    if (const api::Task* task = event.task()) {
      auto more = logs_.OnTask(*task);
      nodes.insert(more.begin(), more.end());
      nodes.insert(task->node_id());
      if (const api::Task* old = event.old_as<api::Task>()) nodes.insert(old->node_id());
    } else if (const api::Node* node = event.node()) {
      // A node's own object changed, or the set of managers may have.
      all = all || node->role() == api::ROLE_MANAGER ||
            node->spec().desired_role() == api::ROLE_MANAGER;
      nodes.insert(node->id());
      if (event.kind == api::StoreAction::REMOVE) {
        heard_.Forget(node->id());
      } else {
        heard_.SetReady(node->id(), node->status().state() == api::NODE_STATE_READY);
        if (event.kind == api::StoreAction::CREATE) new_node = true;
      }
    } else if (event.cluster()) {
      ReadPeriod();
      all = true;
    } else if (const api::Service* svc = event.service()) {
      // A new registry login goes to the nodes running the service's tasks.
      const api::Service* old = event.old_as<api::Service>();
      if (old != nullptr && old->sealed_registry_auth() != svc->sealed_registry_auth()) {
        ctx_.store().View([&](const ReadTx& tx) {
          for (const auto* t : tx.tasks_of_service(svc->id()))
            nodes.insert(t->node_id());
        });
      }
    }
  }
  if (all) {
    WakeAll();
  } else {
    Touch(nodes);
  }
  // A node that joined is watched from now on.
  if (new_node && serving_) CheckNodes();
}

// ---- task status ------------------------------------------------------------------------------

struct Dispatcher::StatusCall {
  grpc::ServerUnaryReactor* reactor;
  const api::UpdateTaskStatusRequest* request;  // gRPC's, until the reactor finishes
  std::string node_id;                          // the reporting node's, from its certificate
  int conflicts = 0;                            // proposals of it that lost a race
};

grpc::ServerUnaryReactor* Dispatcher::UpdateTaskStatus(grpc::CallbackServerContext* context,
                                                       const api::UpdateTaskStatusRequest* request,
                                                       api::UpdateTaskStatusResponse*) {
  const tls::Peer peer = tls::PeerOf(*context);
  if (!peer.has_certificate) return Answer(context, NoCertificate("task status"));
  if (!ctx_.leadership().leader) return Answer(context, NotLeader());
  auto* reactor = context->DefaultReactor();
  auto call = std::make_shared<StatusCall>(StatusCall{reactor, request, peer.node_id});
  asio::post(status_strand_, [self = shared_from_this(), call] { self->QueueStatus(call); });
  return reactor;
}

// Task status reports from every node go out together, one proposal at a time: the next carries
// all that arrived while the last was in flight (as SwarmKit's dispatcher batches them), so that
// a hundred thousand tasks starting are not as many raft entries.
void Dispatcher::QueueStatus(std::shared_ptr<StatusCall> call) {
  status_queue_.push_back(std::move(call));
  if (status_in_flight_) return;  // the write in flight takes them next
  status_in_flight_ = true;
  FlushStatus();
}

// With status_in_flight_ set: proposes what is queued, or clears it when nothing is.
void Dispatcher::FlushStatus() {
  std::vector<std::shared_ptr<StatusCall>> calls;
  // Whole calls, up to a proposal's worth of reports (at least one call).
  int reports = 0;
  while (!status_queue_.empty() &&
         (calls.empty() ||
          reports + status_queue_.front()->request->updates_size() <= kMaxActionsPerProposal)) {
    reports += status_queue_.front()->request->updates_size();
    calls.push_back(std::move(status_queue_.front()));
    status_queue_.pop_front();
  }
  if (calls.empty()) {
    status_in_flight_ = false;
    return;
  }
  // The newest report of each task (states only move forward), checked against the store.
  std::map<std::string, std::pair<const api::TaskStatus*, const std::string*>> latest;
  for (const auto& c : calls) {
    for (const auto& u : c->request->updates()) {
      auto [it, fresh] = latest.try_emplace(u.task_id(), &u.status(), &c->node_id);
      if (!fresh && u.status().state() >= it->second.first->state()) {
        it->second = {&u.status(), &c->node_id};
      }
    }
  }
  const int64_t now = ctx_.clock().Now();
  // The tasks are taken under the store's lock and the batch made after it.
  std::vector<std::pair<Shared<api::Task>, const api::TaskStatus*>> reported;
  ctx_.store().View([&](const ReadTx& tx) {
    for (const auto& [task_id, report] : latest) {
      auto t = tx.share_task(task_id);
      // A task removed meanwhile, or another node's, is not this node's to report.
      if (t == nullptr || t->node_id() != *report.second) continue;
      reported.emplace_back(std::move(t), report.first);
    }
  });
  api::StoreBatch batch;
  for (const auto& [t, report] : reported) {
    if (report->state() < t->status().state()) continue;  // states only move forward
    if (SameMessage(*report, t->status())) continue;
    auto* action = batch.add_actions();
    action->set_kind(api::StoreAction::UPDATE);
    *action->mutable_task() = *t;
    api::TaskStatus* status = action->mutable_task()->mutable_status();
    *status = *report;
    // Restart delays and the update monitor count from this time: a node's clock far ahead (or
    // no time at all) gets the leader's instead.
    if (status->timestamp() <= 0 || status->timestamp() > now + kClockSkewNs) {
      status->set_timestamp(now);
    }
  }
  if (batch.actions_size() == 0) {
    StatusWritten(std::move(calls), Status::Ok());
    return;
  }
  ctx_.Propose(std::move(batch), [self = shared_from_this(), calls](const Status& r) {
    asio::post(self->status_strand_, [self, calls, r] { self->StatusWritten(calls, r); });
  });
}

void Dispatcher::StatusWritten(std::vector<std::shared_ptr<StatusCall>> calls, const Status& r) {
  std::vector<std::shared_ptr<StatusCall>> again;
  for (auto& c : calls) {
    // A task changed since the batch was read (the scheduler, the orchestrator): the reports
    // go again, first, made from the newer tasks; a few times, then the node is told.
    if (r.code() == Code::kConflict && ++c->conflicts < 5) {
      again.push_back(std::move(c));
    } else {
      c->reactor->Finish(ToGrpc(r));
    }
  }
  status_queue_.insert(status_queue_.begin(), again.begin(), again.end());
  FlushStatus();
}

// ---- logs -------------------------------------------------------------------------------------

std::string Dispatcher::SubscribeLogs(const std::string& service_id, const std::string& task_id,
                                      const api::ServiceLogsRequest& req,
                                      std::shared_ptr<LogFeed> feed) {
  std::string id = pki::RandomId();
  asio::post(strand_, [self = shared_from_this(), id, service_id, task_id, req, feed] {
    self->Touch(self->logs_.Subscribe(id, service_id, task_id, req, feed));
  });
  return id;
}

void Dispatcher::UnsubscribeLogs(const std::string& id) {
  asio::post(strand_, [self = shared_from_this(), id] { self->Touch(self->logs_.Unsubscribe(id)); });
}

// Reads one node's answer to log subscriptions; the node is the one its certificate names. The
// broker takes the lines under its own lock; the sessions to tell go through the strand.
class Dispatcher::LogReader final : public grpc::ServerReadReactor<api::PublishLogsMessage> {
 public:
  LogReader(std::shared_ptr<Dispatcher> d, std::string node_id)
      : d_(std::move(d)), node_id_(std::move(node_id)) {
    StartRead(&msg_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      // The stream ended (the node went, or its reader failed) before closing what it
      // answered: those requests are not kept waiting for it.
      for (const auto& id : open_) {
        api::PublishLogsMessage end;
        end.set_subscription_id(id);
        end.set_close(true);
        end.set_error("its logs stopped before all of them were sent");
        LogBroker::Nodes notify;
        (void)d_->logs_.Publish(node_id_, end, &notify);
        Touch(std::move(notify));
      }
      Finish(grpc::Status::OK);
      return;
    }
    if (msg_.close()) {
      open_.erase(msg_.subscription_id());
    } else {
      open_.insert(msg_.subscription_id());
    }
    LogBroker::Nodes notify;
    const Status st = d_->logs_.Publish(node_id_, msg_, &notify);
    Touch(std::move(notify));
    if (!st.ok()) {
      open_.erase(msg_.subscription_id());
      Finish(ToGrpc(st));
      return;
    }
    msg_.Clear();
    StartRead(&msg_);
  }
  void OnDone() override { delete this; }

 private:
  void Touch(LogBroker::Nodes nodes) {
    if (nodes.empty()) return;
    asio::post(d_->strand_, [d = d_, nodes = std::move(nodes)] { d->Touch(nodes); });
  }
  std::shared_ptr<Dispatcher> d_;
  std::string node_id_;
  api::PublishLogsMessage msg_;
  std::set<std::string> open_;  // subscriptions answered on this stream and not closed yet
};

grpc::ServerReadReactor<api::PublishLogsMessage>* Dispatcher::PublishLogs(
    grpc::CallbackServerContext* c) {
  using Refused = RefusedRead<api::PublishLogsMessage>;
  const tls::Peer peer = tls::PeerOf(*c);
  if (!peer.has_certificate) return new Refused(NoCertificate("logs"));
  if (!ctx_.leadership().leader) return new Refused(NotLeader());
  return new LogReader(shared_from_this(), peer.node_id);
}

}  // namespace skep::manager
