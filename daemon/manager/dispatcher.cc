#include "daemon/manager/dispatcher.h"

#include "daemon/common/log.h"
#include "daemon/common/pki.h"
#include "daemon/common/tls.h"
#include "daemon/manager/defaults.h"
#include "daemon/manager/manager.h"

namespace skep::manager {

using namespace std::chrono_literals;

namespace {

// A node is down after this many periods without a heartbeat (Docker's grace multiplier).
constexpr int kGracePeriods = 3;

}  // namespace

Dispatcher::Dispatcher(Manager* manager)
    : manager_(manager),
      logs_(&manager->store(), [this](const std::string& node_id) { return Connected(node_id); }) {}

bool Dispatcher::Connected(const std::string& node_id) const {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(node_id);
  return leader_ && it != sessions_.end() &&
         std::chrono::steady_clock::now() - it->second->last_heartbeat < Period() * kGracePeriods;
}

void Dispatcher::Touch(const LogBroker::Nodes& nodes) {
  if (nodes.empty()) return;
  std::lock_guard lock(mu_);
  for (const auto& n : nodes) {
    if (auto it = sessions_.find(n); it != sessions_.end()) it->second->dirty = true;
  }
  cv_.notify_all();
}

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

namespace {
class Refusal final : public grpc::ServerReadReactor<api::PublishLogsMessage> {
 public:
  explicit Refusal(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};
}  // namespace

grpc::ServerReadReactor<api::PublishLogsMessage>* Dispatcher::PublishLogs(
    grpc::CallbackServerContext* c) {
  const tls::Peer peer = tls::PeerOf(*c);
  if (!peer.has_certificate) {
    return new Refusal({grpc::StatusCode::UNAUTHENTICATED, "logs need the node's certificate"});
  }
  if (!manager_->IsLeader()) return new Refusal(NotLeader());
  return new LogReader(this, peer.node_id);
}

std::chrono::milliseconds Dispatcher::Period() const {
  auto c = manager_->store().GetCluster();
  int64_t ms = c ? c->spec().dispatcher().heartbeat_period_ms() : 0;
  return std::chrono::milliseconds(ms > 0 ? ms : kDispatcherHeartbeatMs);
}

grpc::Status Dispatcher::NotLeader() const {
  auto leader = manager_->Leader();
  if (!leader) return manager_->NoLeaderStatus();
  return {grpc::StatusCode::FAILED_PRECONDITION, "not the leader; the leader is at " + leader->addr,
          leader->addr};
}

api::SessionMessage Dispatcher::Message(const SessionState& s) const {
  api::SessionMessage msg;
  msg.set_session_id(s.id);
  for (const auto& p : manager_->Managers())
    *msg.add_managers() = p;
  if (auto n = manager_->store().GetNode(s.node_id)) *msg.mutable_node() = *n;
  msg.set_heartbeat_period_ms(Period().count());
  if (auto l = manager_->Leader()) msg.set_leader_addr(l->addr);
  manager_->store().View([&](const ReadTx& tx) {
    for (const auto* t : tx.tasks_on_node(s.node_id)) {
      if (t->status().state() < api::TASK_ASSIGNED) continue;  // not scheduled yet
      const bool terminal = t->status().state() > api::TASK_RUNNING;
      if (terminal && t->desired_state() > api::TASK_RUNNING) {  // settled, in the history
        msg.add_kept_task_ids(t->id());
        continue;
      }
      api::Task* out = msg.add_tasks();
      *out = *t;
      out->clear_status();
      out->clear_meta();
      out->clear_scheduling_error();
    }
  });
  msg.set_tasks_known(true);
  for (auto& sub : logs_.For(s.node_id))
    *msg.add_log_subscriptions() = std::move(sub);
  return msg;
}

grpc::Status Dispatcher::UpdateTaskStatus(grpc::ServerContext* context,
                                          const api::UpdateTaskStatusRequest& request,
                                          api::UpdateTaskStatusResponse*) {
  const tls::Peer peer = tls::PeerOf(*context);
  if (!peer.has_certificate) {
    return {grpc::StatusCode::UNAUTHENTICATED, "task status needs the node's certificate"};
  }
  if (!manager_->IsLeader()) return NotLeader();
  for (int attempt = 0;; ++attempt) {
    api::StoreBatch batch;
    manager_->store().View([&](const ReadTx& tx) {
      for (const auto& u : request.updates()) {
        const api::Task* t = tx.task(u.task_id());
        // A task removed meanwhile, or another node's, is not this node's to report.
        if (t == nullptr || t->node_id() != peer.node_id) continue;
        if (u.status().state() < t->status().state()) continue;  // states only move forward
        if (u.status().SerializeAsString() == t->status().SerializeAsString()) continue;
        auto* a = batch.add_actions();
        a->set_kind(api::StoreAction::UPDATE);
        *a->mutable_task() = *t;
        *a->mutable_task()->mutable_status() = u.status();
      }
    });
    if (batch.actions_size() == 0) return grpc::Status::OK;
    WriteResult r = manager_->WriteAndWait(std::move(batch));
    if (r.code == WriteResult::Code::kConflict && attempt < 5) continue;  // re-read, again
    return r.ToStatus();
  }
}

void Dispatcher::MarkReady(const std::string& node_id, const std::string& addr) {
  (void)manager_->UpdateNode(node_id, [&](api::Node& n) {
    n.mutable_status()->set_state(api::NODE_STATE_READY);
    n.mutable_status()->set_message("");
    n.mutable_status()->set_addr(addr);
    return grpc::Status::OK;
  });
}

grpc::Status Dispatcher::Session(grpc::ServerContext* context, const api::SessionRequest& request,
                                 grpc::ServerWriter<api::SessionMessage>* writer) {
  const tls::Peer peer = tls::PeerOf(*context);
  if (!peer.has_certificate) {
    return {grpc::StatusCode::UNAUTHENTICATED, "a session needs the node's certificate"};
  }
  if (!manager_->IsLeader()) return NotLeader();
  if (grpc::Status st = manager_->WaitServing(); !st.ok()) {
    return st.error_code() == grpc::StatusCode::FAILED_PRECONDITION ? NotLeader() : st;
  }
  auto node = manager_->store().GetNode(peer.node_id);
  if (!node) {
    return {grpc::StatusCode::NOT_FOUND,
            "node " + peer.node_id + " is not a member of this swarm (it was removed)"};
  }
  auto s = std::make_shared<SessionState>();
  s->id = pki::RandomId();
  s->node_id = peer.node_id;
  s->last_heartbeat = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    sessions_[peer.node_id] = s;
  }
  // What the node reports about itself (hostname, version, labels) is kept up to date.
  (void)manager_->UpdateNode(peer.node_id, [&](api::Node& n) {
    *n.mutable_description() = request.description();
    return grpc::Status::OK;
  });
  MarkReady(peer.node_id, peer.address);
  SKEP_LOG(debug, "dispatcher", "session {} opened for node {} from {}", s->id, peer.node_id,
           peer.address);
  if (!writer->Write(Message(*s))) return grpc::Status::OK;
  std::string last_sent;
  for (;;) {
    bool send = false;
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, 1s, [&] { return stopped_ || s->dirty || !leader_; });
      if (stopped_) return {grpc::StatusCode::UNAVAILABLE, "the manager is shutting down"};
      auto it = sessions_.find(peer.node_id);
      if (it == sessions_.end() || it->second != s) {
        return {grpc::StatusCode::ABORTED, "a newer session replaced this one"};
      }
      if (!leader_) {
        sessions_.erase(it);
        break;
      }
      send = s->dirty;
      s->dirty = false;
    }
    if (context->IsCancelled()) break;
    if (send) {
      api::SessionMessage msg = Message(*s);
      std::string bytes = msg.SerializeAsString();
      if (bytes != last_sent && !writer->Write(msg)) break;
      last_sent = std::move(bytes);
    }
  }
  bool current;
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(peer.node_id);
    current = it != sessions_.end() && it->second == s;  // not replaced by a newer one
  }
  if (current) Touch(logs_.OnSessionEnded(peer.node_id));
  if (!manager_->IsLeader()) return NotLeader();
  return grpc::Status::OK;
}

grpc::Status Dispatcher::Heartbeat(grpc::ServerContext* context,
                                   const api::HeartbeatRequest& request,
                                   api::HeartbeatResponse* response) {
  const tls::Peer peer = tls::PeerOf(*context);
  if (!peer.has_certificate) {
    return {grpc::StatusCode::UNAUTHENTICATED, "a heartbeat needs the node's certificate"};
  }
  if (!manager_->IsLeader()) return NotLeader();
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(peer.node_id);
    if (it == sessions_.end() || it->second->id != request.session_id()) {
      return {grpc::StatusCode::NOT_FOUND, "no such session; open a new one"};
    }
    it->second->last_heartbeat = std::chrono::steady_clock::now();
  }
  response->set_period_ms(Period().count());
  // A node marked down (a race with the check, a shortened period) is ready again the moment
  // it heartbeats.
  auto node = manager_->store().GetNode(peer.node_id);
  if (node && node->status().state() != api::NODE_STATE_READY) {
    MarkReady(peer.node_id, peer.address);
  }
  return grpc::Status::OK;
}

void Dispatcher::OnStoreEvent(const StoreEvent& event) {
  if (const api::Task* task = event.task()) Touch(logs_.OnTask(*task));
  std::lock_guard lock(mu_);
  if (const api::Task* task = event.task()) {
    const api::Task* old = event.old_as<api::Task>();
    for (auto& [id, s] : sessions_) {
      if (id == task->node_id() || (old && id == old->node_id())) s->dirty = true;
    }
  } else if (const api::Node* node = event.node()) {
    // A node's own object changed, or the set of managers may have.
    for (auto& [id, s] : sessions_) {
      if (id == node->id() || node->role() == api::ROLE_MANAGER ||
          node->spec().desired_role() == api::ROLE_MANAGER) {
        s->dirty = true;
      }
    }
  } else if (event.cluster()) {
    for (auto& [id, s] : sessions_)
      s->dirty = true;
  }
  cv_.notify_all();
}

void Dispatcher::OnManagersChanged() {
  std::lock_guard lock(mu_);
  for (auto& [id, s] : sessions_)
    s->dirty = true;
  cv_.notify_all();
}

void Dispatcher::OnLeadershipChange(bool leader) {
  if (!leader) {
    logs_.EndAll({grpc::StatusCode::UNAVAILABLE, "the leader stepped down; ask again"});
  }
  std::lock_guard lock(mu_);
  leader_ = leader;
  if (leader) {
    // Nodes get a full grace period to find the new leader before they count as down.
    leader_since_ = std::chrono::steady_clock::now();
  }
  // Each session notices and ends itself, telling its agent where the new leader is.
  for (auto& [id, s] : sessions_)
    s->dirty = true;
  cv_.notify_all();
}

void Dispatcher::CheckNodes() {
  const auto grace = Period() * kGracePeriods;
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::string> down;
  {
    std::lock_guard lock(mu_);
    if (!leader_ || now - leader_since_ < grace) return;
    for (const auto& n : manager_->store().ListNodes()) {
      if (n.status().state() == api::NODE_STATE_DOWN) continue;
      auto it = sessions_.find(n.id());
      if (it != sessions_.end() && now - it->second->last_heartbeat < grace) continue;
      down.push_back(n.id());
    }
  }
  for (const auto& id : down) {
    bool marked = false;
    api::Node n;
    grpc::Status st = manager_->UpdateNode(
        id,
        [&](api::Node& node) {
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
          marked = true;
          return grpc::Status::OK;
        },
        &n);
    if (st.ok() && marked) {
      SKEP_LOG(info, "dispatcher", "node {} ({}) is down: no heartbeat for {} ms", id,
               n.description().hostname(),
               std::chrono::duration_cast<std::chrono::milliseconds>(grace).count());
    }
  }
}

void Dispatcher::Stop() {
  std::lock_guard lock(mu_);
  stopped_ = true;
  cv_.notify_all();
}

}  // namespace skep::manager
