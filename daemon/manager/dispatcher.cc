#include "daemon/manager/dispatcher.h"

#include <boost/asio/post.hpp>
#include <optional>
#include <set>

#include "daemon/common/log.h"
#include "daemon/common/pki.h"
#include "daemon/common/proto_bytes.h"
#include "daemon/common/tls.h"
#include "daemon/manager/defaults.h"
#include "daemon/manager/manager.h"
#include "daemon/manager/registry_auth.h"
#include "daemon/manager/store_driven.h"

namespace skep::manager {

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

grpc::Status NoCertificate(const std::string& what) {
  return {grpc::StatusCode::UNAUTHENTICATED, what + " needs the node's certificate"};
}

// A unary call answered at once.
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* c, grpc::Status st) {
  auto* r = c->DefaultReactor();
  r->Finish(std::move(st));
  return r;
}

template <class Msg>
class RefusedWrite final : public grpc::ServerWriteReactor<Msg> {
 public:
  explicit RefusedWrite(grpc::Status status) { this->Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

template <class Msg>
class RefusedRead final : public grpc::ServerReadReactor<Msg> {
 public:
  explicit RefusedRead(grpc::Status status) { this->Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

// One node's session. The dispatcher's lock guards last_heartbeat; the session's own lock the
// stream's state. `sent` and `header` belong to whoever holds `writing`.
struct Dispatcher::SessionState {
  std::string id;
  std::string node_id;
  std::chrono::steady_clock::time_point last_heartbeat;  // under Dispatcher::mu_

  std::mutex mu;
  SessionStream* stream = nullptr;  // null once the stream is done
  bool dirty = true;                // something the node must hear of changed
  bool scheduled = false;           // a WriteNext is posted
  bool writing = false;             // composing or writing a message
  bool finished = false;            // Finish was called on the stream
  std::optional<grpc::Status> finish;
  api::SessionMessage current;  // the message being written

  bool first = true;  // the next message is the full list
  struct Sent {
    uint64_t version = 0;  // of the store's task
    std::string bytes;     // the task as last sent
  };
  std::map<std::string, Sent> sent;  // by task ID
  std::string header;                // the rest of the last message, as sent
};

class Dispatcher::SessionStream final : public grpc::ServerWriteReactor<api::SessionMessage> {
 public:
  SessionStream(Dispatcher* d, SessionPtr s) : d_(d), s_(std::move(s)) {}
  void OnWriteDone(bool ok) override {
    std::unique_lock lock(s_->mu);
    s_->writing = false;
    // Written: the message is not kept until the next (a node's full list of tasks, a thousand
    // sessions: the leader held a copy of every task).
    s_->current = api::SessionMessage();
    if (!ok && !s_->finish) s_->finish = grpc::Status::OK;  // the agent went away
    if (s_->finish) {
      FinishLocked(lock);
      return;
    }
    const bool again = s_->dirty;
    lock.unlock();
    if (again) d_->Wake(s_);
  }
  void OnCancel() override { d_->End(s_, grpc::Status::CANCELLED); }
  void OnDone() override {
    {
      std::lock_guard lock(s_->mu);
      s_->stream = nullptr;
      s_->finished = true;
    }
    d_->Ended(s_);
    delete this;
  }
  // With s_->mu held, no write outstanding and a status to finish with.
  void FinishLocked(std::unique_lock<std::mutex>& lock) {
    if (s_->finished) return;
    s_->finished = true;
    const grpc::Status st = *s_->finish;
    lock.unlock();
    Finish(st);
  }

 private:
  Dispatcher* d_;
  SessionPtr s_;
};

Dispatcher::Dispatcher(Manager* manager)
    : manager_(manager),
      logs_(&manager->store(), [this](const std::string& node_id) { return Connected(node_id); }) {}

Dispatcher::~Dispatcher() {
  Stop();
}

std::chrono::milliseconds Dispatcher::Period() const {
  // Every heartbeat asks; the cluster object (keys and certificates) is copied only when it
  // changed.
  uint64_t changes;
  {
    std::lock_guard lock(period_mu_);
    if (period_ms_ > 0) return std::chrono::milliseconds(period_ms_);
    changes = period_changes_;
  }
  auto c = manager_->store().GetCluster();
  int64_t ms = c ? c->spec().dispatcher().heartbeat_period_ms() : 0;
  if (ms <= 0) ms = kDispatcherHeartbeatMs;
  std::lock_guard lock(period_mu_);
  if (c && changes == period_changes_) period_ms_ = ms;
  return std::chrono::milliseconds(ms);
}

grpc::Status Dispatcher::NotLeader() const {
  auto leader = manager_->Leader();
  if (!leader) return manager_->NoLeaderStatus();
  return {grpc::StatusCode::FAILED_PRECONDITION, "not the leader; the leader is at " + leader->addr,
          leader->addr};
}

// ---- sessions ---------------------------------------------------------------------------------

bool Dispatcher::Compose(SessionState& s, api::SessionMessage* msg) {
  api::SessionMessage& m = *msg;
  m.set_session_id(s.id);
  for (const auto& p : manager_->Managers())
    *m.add_managers() = p;
  m.set_heartbeat_period_ms(Period().count());
  if (auto l = manager_->Leader()) m.set_leader_addr(l->addr);
  for (auto& sub : logs_.For(s.node_id))
    *m.add_log_subscriptions() = std::move(sub);
  // The node's tasks as they go out, the ones whose version was not sent yet: a session is
  // composed after every batch that touches one of the node's tasks, and a node runs many.
  std::map<std::string, SessionState::Sent> sent;
  std::map<std::string, api::Task> fresh;
  manager_->store().View([&](const ReadTx& tx) {
    const api::Node* self = tx.node(s.node_id);
    if (self != nullptr) *m.mutable_node() = *self;
    std::string auth_key;
    if (const api::Cluster* c = tx.cluster()) {
      m.set_data_path_port(c->spec().networks().data_path_port());
      for (const auto& k : c->network_keys())
        m.add_network_keys(k.key());
      auth_key = c->registry_auth_key();
    }
    std::set<std::string> nets, services;
    for (const auto* t : tx.tasks_on_node(s.node_id)) {
      if (t->status().state() < api::TASK_ASSIGNED) continue;  // not scheduled yet
      const bool terminal = t->status().state() > api::TASK_RUNNING;
      if (terminal && t->desired_state() > api::TASK_RUNNING) {  // settled, in the history
        m.add_kept_task_ids(t->id());
        continue;
      }
      for (const auto& a : t->networks())
        nets.insert(a.network_id());
      services.insert(t->service_id());
      auto was = s.sent.find(t->id());
      if (!s.first && was != s.sent.end() && was->second.version == t->meta().version()) {
        sent.emplace(t->id(), std::move(was->second));  // the key stays: not removed
        continue;
      }
      api::Task out = *t;
      out.clear_status();  // the node's own to report
      out.clear_meta();
      out.clear_scheduling_error();
      fresh.emplace(t->id(), std::move(out));
      sent[t->id()].version = t->meta().version();
    }
    // Every node is on the ingress network, for the routing mesh.
    if (self != nullptr) {
      for (const auto& a : self->attachments())
        nets.insert(a.network_id());
    }
    for (const auto& id : nets) {
      if (const api::Network* n = tx.network(id)) *m.add_networks() = *n;
    }
    // The logins of the services it runs tasks of, and no other.
    for (const auto& id : services) {
      const api::Service* svc = tx.service(id);
      if (svc == nullptr || svc->sealed_registry_auth().empty()) continue;
      if (auto auth = OpenRegistryAuth(auth_key, svc->sealed_registry_auth())) {
        (*m.mutable_registry_auth())[svc->id()] = std::move(*auth);
      } else {
        SKEP_LOG(warn, "dispatcher", "the registry login of service {} does not open", svc->id());
      }
    }
  });
  m.set_tasks_known(true);
  const std::string header = CanonicalBytes(m);

  // A new version of a task goes out only if what the node sees of it changed (a report of
  // its own, say, changes nothing it is sent).
  for (auto& [id, t] : fresh) {
    std::string bytes = CanonicalBytes(t);
    auto was = s.sent.find(id);
    if (s.first || was == s.sent.end() || was->second.bytes != bytes) *m.add_tasks() = t;
    sent[id].bytes = std::move(bytes);
  }
  if (!s.first) {
    m.set_incremental(true);
    for (const auto& [id, bytes] : s.sent) {
      if (!sent.count(id)) m.add_removed_task_ids(id);
    }
  }
  const bool changed =
      s.first || header != s.header || m.tasks_size() > 0 || m.removed_task_ids_size() > 0;
  s.first = false;
  s.sent = std::move(sent);
  s.header = header;
  return changed;
}

void Dispatcher::Wake(const SessionPtr& s) {
  {
    std::lock_guard lock(s->mu);
    s->dirty = true;
    if (s->writing || s->finished || s->scheduled) return;
    s->scheduled = true;
  }
  // Composing reads the store: never on the thread that applies it or holds a lock.
  boost::asio::post(manager_->io(), [this, s] { WriteNext(s); });
}

void Dispatcher::WriteNext(const SessionPtr& s) {
  {
    std::lock_guard lock(s->mu);
    s->scheduled = false;
    if (s->writing || s->finished || s->finish || !s->dirty) return;
    s->dirty = false;
    s->writing = true;  // `sent` and `header` are this thread's until it is cleared
  }
  api::SessionMessage msg;
  const bool changed = Compose(*s, &msg);
  std::unique_lock lock(s->mu);
  if (!changed || s->finished || s->finish) {
    s->writing = false;
    if (s->finish && s->stream) {
      s->stream->FinishLocked(lock);
      return;
    }
    const bool again = s->dirty;
    lock.unlock();
    if (again) Wake(s);
    return;
  }
  s->current = std::move(msg);
  SessionStream* stream = s->stream;
  lock.unlock();
  stream->StartWrite(&s->current);
}

void Dispatcher::End(const SessionPtr& s, grpc::Status status) {
  std::unique_lock lock(s->mu);
  if (s->finish || s->finished) return;
  s->finish = std::move(status);
  if (!s->writing && s->stream) s->stream->FinishLocked(lock);
}

void Dispatcher::Ended(const SessionPtr& s) {
  bool current;
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(s->node_id);
    current = it != sessions_.end() && it->second == s;  // not replaced by a newer one
  }
  SKEP_LOG(debug, "dispatcher", "session {} of node {} ended", s->id, s->node_id);
  if (current) Touch(logs_.OnSessionEnded(s->node_id));
}

void Dispatcher::WakeAll() {
  std::vector<SessionPtr> all;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, s] : sessions_)
      all.push_back(s);
  }
  for (auto& s : all)
    Wake(s);
}

void Dispatcher::Touch(const LogBroker::Nodes& nodes) {
  if (nodes.empty()) return;
  std::vector<SessionPtr> touched;
  {
    std::lock_guard lock(mu_);
    for (const auto& n : nodes) {
      if (auto it = sessions_.find(n); it != sessions_.end()) touched.push_back(it->second);
    }
  }
  for (auto& s : touched)
    Wake(s);
}

bool Dispatcher::Connected(const std::string& node_id) const {
  const auto grace = Period() * kGracePeriods;
  std::lock_guard lock(mu_);
  auto it = sessions_.find(node_id);
  return leader_ && it != sessions_.end() &&
         std::chrono::steady_clock::now() - it->second->last_heartbeat < grace;
}

void Dispatcher::MarkReady(const std::string& node_id, const std::string& addr) {
  manager_->UpdateNodeAsync(node_id, [addr](api::Node& n) {
    n.mutable_status()->set_state(api::NODE_STATE_READY);
    n.mutable_status()->set_message("");
    n.mutable_status()->set_addr(addr);
    return grpc::Status::OK;
  });
}

grpc::ServerWriteReactor<api::SessionMessage>* Dispatcher::Session(
    grpc::CallbackServerContext* context, const api::SessionRequest* request) {
  using Refused = RefusedWrite<api::SessionMessage>;
  const tls::Peer peer = tls::PeerOf(*context);
  if (!peer.has_certificate) return new Refused(NoCertificate("a session"));
  if (!manager_->IsLeader()) return new Refused(NotLeader());
  if (grpc::Status st = manager_->WaitServing(0ms); !st.ok()) {
    return new Refused(st.error_code() == grpc::StatusCode::FAILED_PRECONDITION ? NotLeader() : st);
  }
  if (!manager_->store().GetNode(peer.node_id)) {
    return new Refused(
        {grpc::StatusCode::NOT_FOUND,
         "node " + peer.node_id + " is not a member of this swarm (it was removed)"});
  }
  auto s = std::make_shared<SessionState>();
  s->id = pki::RandomId();
  s->node_id = peer.node_id;
  s->last_heartbeat = std::chrono::steady_clock::now();
  auto* stream = new SessionStream(this, s);
  s->stream = stream;
  SessionPtr replaced;
  {
    std::lock_guard lock(mu_);
    if (stopped_) {
      delete stream;
      return new Refused({grpc::StatusCode::UNAVAILABLE, "the manager is shutting down"});
    }
    auto& slot = sessions_[peer.node_id];
    replaced = std::move(slot);
    slot = s;
  }
  if (replaced) End(replaced, {grpc::StatusCode::ABORTED, "a newer session replaced this one"});
  // What the node reports about itself (hostname, version, labels) is kept up to date.
  manager_->UpdateNodeAsync(peer.node_id, [description = request->description()](api::Node& n) {
    *n.mutable_description() = description;
    return grpc::Status::OK;
  });
  MarkReady(peer.node_id, peer.address);
  SKEP_LOG(debug, "dispatcher", "session {} opened for node {} from {}", s->id, peer.node_id,
           peer.address);
  Wake(s);
  return stream;
}

grpc::ServerUnaryReactor* Dispatcher::Heartbeat(grpc::CallbackServerContext* context,
                                                const api::HeartbeatRequest* request,
                                                api::HeartbeatResponse* response) {
  const tls::Peer peer = tls::PeerOf(*context);
  if (!peer.has_certificate) return Answer(context, NoCertificate("a heartbeat"));
  if (!manager_->IsLeader()) return Answer(context, NotLeader());
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(peer.node_id);
    if (it == sessions_.end() || it->second->id != request->session_id()) {
      return Answer(context, {grpc::StatusCode::NOT_FOUND, "no such session; open a new one"});
    }
    it->second->last_heartbeat = std::chrono::steady_clock::now();
  }
  response->set_period_ms(Period().count());
  // A node marked down (a race with the check, a shortened period) is ready again the moment
  // it heartbeats.
  bool ready = true;
  manager_->store().View([&](const ReadTx& tx) {
    const api::Node* n = tx.node(peer.node_id);
    ready = n == nullptr || n->status().state() == api::NODE_STATE_READY;
  });
  if (!ready) MarkReady(peer.node_id, peer.address);
  return Answer(context, grpc::Status::OK);
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
  if (!manager_->IsLeader()) return Answer(context, NotLeader());
  auto* reactor = context->DefaultReactor();
  QueueStatus(std::make_shared<StatusCall>(StatusCall{reactor, request, peer.node_id}));
  return reactor;
}

void Dispatcher::QueueStatus(std::shared_ptr<StatusCall> call) {
  {
    std::lock_guard lock(status_mu_);
    status_queue_.push_back(std::move(call));
    if (status_in_flight_) return;  // the write in flight takes them next
    status_in_flight_ = true;
  }
  boost::asio::post(manager_->io(), [this] { FlushStatus(); });
}

// With status_in_flight_ set: proposes what is queued, or clears it when nothing is.
void Dispatcher::FlushStatus() {
  std::vector<std::shared_ptr<StatusCall>> calls;
  {
    std::lock_guard lock(status_mu_);
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
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  // The tasks are taken under the store's lock and the batch made after it.
  std::vector<std::pair<Shared<api::Task>, const api::TaskStatus*>> reported;
  manager_->store().View([&](const ReadTx& tx) {
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
    StatusWritten(std::move(calls), WriteResult{});
    return;
  }
  manager_->Propose(std::move(batch), [this, calls = std::move(calls)](const WriteResult& r) {
    boost::asio::post(manager_->io(), [this, calls, r] { StatusWritten(calls, r); });
  });
}

void Dispatcher::StatusWritten(std::vector<std::shared_ptr<StatusCall>> calls,
                               const WriteResult& r) {
  const grpc::Status st = r.ToStatus();
  std::vector<std::shared_ptr<StatusCall>> again;
  for (auto& c : calls) {
    // A task changed since the batch was read (the scheduler, the orchestrator): the reports
    // go again, first, made from the newer tasks; a few times, then the node is told.
    if (r.code == WriteResult::Code::kConflict && ++c->conflicts < 5) {
      again.push_back(std::move(c));
    } else {
      c->reactor->Finish(st);
    }
  }
  if (!again.empty()) {
    std::lock_guard lock(status_mu_);
    status_queue_.insert(status_queue_.begin(), again.begin(), again.end());
  }
  FlushStatus();
}

// ---- logs -------------------------------------------------------------------------------------

std::string Dispatcher::SubscribeLogs(const std::string& service_id, const std::string& task_id,
                                      const api::ServiceLogsRequest& req,
                                      std::shared_ptr<LogFeed> feed) {
  const std::string id = pki::RandomId();
  Touch(logs_.Subscribe(id, service_id, task_id, req, std::move(feed)));
  return id;
}

void Dispatcher::UnsubscribeLogs(const std::string& id) {
  Touch(logs_.Unsubscribe(id));
}

// Reads one node's answer to log subscriptions; the node is the one its certificate names.
class Dispatcher::LogReader final : public grpc::ServerReadReactor<api::PublishLogsMessage> {
 public:
  LogReader(Dispatcher* d, std::string node_id) : d_(d), node_id_(std::move(node_id)) {
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
        d_->Touch(notify);
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
    grpc::Status st = d_->logs_.Publish(node_id_, msg_, &notify);
    d_->Touch(notify);
    if (!st.ok()) {
      open_.erase(msg_.subscription_id());
      Finish(st);
      return;
    }
    msg_.Clear();
    StartRead(&msg_);
  }
  void OnDone() override { delete this; }

 private:
  Dispatcher* d_;
  std::string node_id_;
  api::PublishLogsMessage msg_;
  std::set<std::string> open_;  // subscriptions answered on this stream and not closed yet
};

grpc::ServerReadReactor<api::PublishLogsMessage>* Dispatcher::PublishLogs(
    grpc::CallbackServerContext* c) {
  using Refused = RefusedRead<api::PublishLogsMessage>;
  const tls::Peer peer = tls::PeerOf(*c);
  if (!peer.has_certificate) return new Refused(NoCertificate("logs"));
  if (!manager_->IsLeader()) return new Refused(NotLeader());
  return new LogReader(this, peer.node_id);
}

// ---- events -----------------------------------------------------------------------------------

void Dispatcher::OnStoreEvent(const StoreEvent& event) {
  LogBroker::Nodes nodes;
  bool all = false;
  if (const api::Task* task = event.task()) {
    nodes = logs_.OnTask(*task);
    nodes.insert(task->node_id());
    if (const api::Task* old = event.old_as<api::Task>()) nodes.insert(old->node_id());
  } else if (const api::Node* node = event.node()) {
    // A node's own object changed, or the set of managers may have.
    all = node->role() == api::ROLE_MANAGER || node->spec().desired_role() == api::ROLE_MANAGER;
    nodes.insert(node->id());
  } else if (event.cluster()) {
    {
      std::lock_guard lock(period_mu_);
      period_ms_ = 0;  // read again
      ++period_changes_;
    }
    all = true;
  } else if (const api::Service* svc = event.service()) {
    // A new registry login goes to the nodes running the service's tasks.
    const api::Service* old = event.old_as<api::Service>();
    if (old != nullptr && old->sealed_registry_auth() != svc->sealed_registry_auth()) {
      manager_->store().View([&](const ReadTx& tx) {
        for (const auto* t : tx.tasks_of_service(svc->id()))
          nodes.insert(t->node_id());
      });
    }
  }
  if (all) {
    WakeAll();
  } else {
    Touch(nodes);
  }
}

void Dispatcher::OnManagersChanged() {
  WakeAll();
}

void Dispatcher::OnLeadershipChange(bool leader) {
  if (!leader) {
    logs_.EndAll({grpc::StatusCode::UNAVAILABLE, "the leader stepped down; ask again"});
  }
  std::map<std::string, SessionPtr> sessions;
  {
    std::lock_guard lock(mu_);
    leader_ = leader;
    serving_since_.reset();
    if (leader) return;
    sessions.swap(sessions_);
  }
  // Each agent is told where the new leader is, and opens a session there.
  for (auto& [id, s] : sessions)
    End(s, NotLeader());
}

void Dispatcher::CheckNodes() {
  const auto grace = Period() * kGracePeriods;
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::string> down;
  // Sessions are refused until the new leader has applied its log, so the nodes' grace to find
  // it starts only then.
  const bool serving = manager_->WaitServing(0ms).ok();
  std::chrono::steady_clock::time_point since;
  {
    std::lock_guard lock(mu_);
    if (!leader_) return;
    if (!serving) {
      serving_since_.reset();
      return;
    }
    if (!serving_since_) serving_since_ = now;
    since = *serving_since_;
  }
  manager_->store().View([&](const ReadTx& tx) {
    const auto nodes = tx.nodes();
    if (now - since < grace * kLeaderChangeGraces + kLeaderChangePerNode * nodes.size()) return;
    std::lock_guard lock(mu_);
    for (const auto* n : nodes) {
      if (n->status().state() == api::NODE_STATE_DOWN) continue;
      auto it = sessions_.find(n->id());
      if (it != sessions_.end() && now - it->second->last_heartbeat < grace) continue;
      down.push_back(n->id());
    }
  });
  for (const auto& id : down) {
    manager_->UpdateNodeAsync(id, [this, id, grace](api::Node& node) {
      if (node.status().state() == api::NODE_STATE_DOWN) return grpc::Status::OK;
      {
        // A session may have opened (and marked the node ready) since the check above.
        std::lock_guard lock(mu_);
        auto it = sessions_.find(id);
        if (it != sessions_.end() &&
            std::chrono::steady_clock::now() - it->second->last_heartbeat < grace) {
          return grpc::Status::OK;
        }
      }
      node.mutable_status()->set_state(api::NODE_STATE_DOWN);
      node.mutable_status()->set_message("heartbeat failure");
      SKEP_LOG(info, "dispatcher", "node {} ({}) is down: no heartbeat for {} ms", id,
               node.description().hostname(),
               std::chrono::duration_cast<std::chrono::milliseconds>(grace).count());
      return grpc::Status::OK;
    });
  }
}

void Dispatcher::Stop() {
  std::map<std::string, SessionPtr> sessions;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    sessions.swap(sessions_);
  }
  for (auto& [id, s] : sessions)
    End(s, {grpc::StatusCode::UNAVAILABLE, "the manager is shutting down"});
}

}  // namespace skep::manager
