#include "daemon/manager/log_broker.h"

#include "daemon/manager/store.h"

namespace skep::manager {

namespace {

// The store is never read with the broker's lock held: its watchers (OnTask) run while it
// applies, and take that lock.
std::string HostnameOf(const Store& store, const std::string& node_id) {
  auto n = store.GetNode(node_id);
  return n && !n->description().hostname().empty() ? n->description().hostname() : node_id;
}

}  // namespace

LogBroker::LogBroker(const Store* store, std::function<bool(const std::string&)> connected)
    : store_(store), connected_(std::move(connected)) {}

LogBroker::Nodes LogBroker::Subscribe(const std::string& id, const std::string& service_id,
                                      const std::string& task_id,
                                      const api::ServiceLogsRequest& req,
                                      std::shared_ptr<LogFeed> feed) {
  Subscription sub;
  sub.service_id = service_id;
  sub.task_id = task_id;
  sub.req = req;
  sub.feed = feed;
  store_->View([&](const ReadTx& tx) {
    std::vector<const api::Task*> tasks;
    if (!task_id.empty()) {
      if (const auto* t = tx.task(task_id)) tasks.push_back(t);
    } else {
      tasks = tx.tasks_of_service(service_id);
    }
    for (const auto* t : tasks) {
      // A task that never reached a node has no log.
      if (t->node_id().empty() || t->status().state() < api::TASK_ASSIGNED) continue;
      sub.tasks[t->node_id()].insert(t->id());
    }
  });
  std::vector<std::string> warnings;
  Nodes notify;
  for (const auto& [node, tasks] : sub.tasks) {
    if (connected_(node)) {
      notify.insert(node);
      sub.open.insert(node);
    } else {
      warnings.push_back("node " + HostnameOf(*store_, node) +
                         " is not connected: the logs of its " + std::to_string(tasks.size()) +
                         (tasks.size() == 1 ? " task are" : " tasks are") + " not available");
    }
  }
  for (const auto& w : warnings) {
    api::ServiceLogsMessage m;
    m.set_warning(w);
    feed->Push(std::move(m));
  }
  if (!req.follow() && sub.open.empty()) {
    feed->Finish(Status::Ok());
    return {};
  }
  MutexLock lock(mu_);
  subs_[id] = std::move(sub);
  return notify;
}

LogBroker::Nodes LogBroker::Unsubscribe(const std::string& id) {
  MutexLock lock(mu_);
  auto it = subs_.find(id);
  if (it == subs_.end()) return {};
  Nodes nodes;
  for (const auto& [node, tasks] : it->second.tasks)
    nodes.insert(node);
  subs_.erase(it);
  return nodes;
}

std::vector<api::LogSubscription> LogBroker::For(const std::string& node_id) const {
  MutexLock lock(mu_);
  std::vector<api::LogSubscription> out;
  for (const auto& [id, sub] : subs_) {
    auto it = sub.tasks.find(node_id);
    if (it == sub.tasks.end()) continue;
    if (!sub.req.follow() && !sub.open.count(node_id)) continue;  // it answered already
    api::LogSubscription s;
    s.set_id(id);
    for (const auto& t : it->second)
      s.add_task_ids(t);
    s.set_follow(sub.req.follow());
    s.set_tail(sub.req.tail());
    s.set_since_ns(sub.req.since_ns());
    out.push_back(std::move(s));
  }
  return out;
}

Status LogBroker::Publish(const std::string& node_id, const api::PublishLogsMessage& msg,
                          Nodes* notify) {
  std::shared_ptr<LogFeed> feed;
  api::ServiceLogsMessage out;
  {
    MutexLock lock(mu_);
    auto it = subs_.find(msg.subscription_id());
    if (it == subs_.end()) {
      return NotFound("log subscription " + msg.subscription_id() + " ended");
    }
    auto tasks = it->second.tasks.find(node_id);
    if (tasks == it->second.tasks.end()) {
      return {Code::kPermissionDenied,
              "log subscription " + msg.subscription_id() + " was not sent to node " + node_id};
    }
    feed = it->second.feed;
    for (const auto& m : msg.messages()) {
      if (tasks->second.count(m.task_id())) *out.add_messages() = m;  // only its own tasks
    }
  }
  const std::string hostname = HostnameOf(*store_, node_id);
  store_->View([&](const ReadTx& tx) {
    for (auto& m : *out.mutable_messages()) {
      m.set_node_id(node_id);
      m.set_node_hostname(hostname);
      if (const auto* t = tx.task(m.task_id())) {
        m.set_service_id(t->service_id());
        m.set_service_name(t->service_name());
        m.set_slot(t->slot());
      }
    }
  });
  if (!msg.error().empty()) out.set_warning("node " + hostname + ": " + msg.error());
  if (out.messages_size() > 0 || !out.warning().empty()) feed->Push(std::move(out));
  if (!msg.close()) return Status::Ok();
  std::vector<std::shared_ptr<LogFeed>> done;
  {
    MutexLock lock(mu_);
    auto it = subs_.find(msg.subscription_id());
    if (it != subs_.end()) {
      it->second.open.erase(node_id);
      notify->insert(node_id);
      MaybeComplete(msg.subscription_id(), notify, &done);
    }
  }
  for (auto& f : done)
    f->Finish(Status::Ok());
  return Status::Ok();
}

void LogBroker::MaybeComplete(const std::string& id, Nodes* notify,
                              std::vector<std::shared_ptr<LogFeed>>* done) {
  auto it = subs_.find(id);
  if (it == subs_.end() || it->second.req.follow() || !it->second.open.empty()) return;
  for (const auto& [node, tasks] : it->second.tasks)
    notify->insert(node);
  done->push_back(it->second.feed);
  subs_.erase(it);
}

LogBroker::Nodes LogBroker::OnTask(const api::Task& task) {
  if (task.node_id().empty() || task.status().state() < api::TASK_ASSIGNED) return {};
  MutexLock lock(mu_);
  Nodes notify;
  for (auto& [id, sub] : subs_) {
    if (!sub.req.follow() || sub.service_id.empty() || sub.service_id != task.service_id()) {
      continue;
    }
    if (sub.tasks[task.node_id()].insert(task.id()).second) notify.insert(task.node_id());
  }
  return notify;
}

LogBroker::Nodes LogBroker::OnSessionEnded(const std::string& node_id) {
  Nodes notify;
  std::vector<std::shared_ptr<LogFeed>> warn, done;
  {
    MutexLock lock(mu_);
    std::vector<std::string> ids;
    for (auto& [id, sub] : subs_) {
      if (sub.req.follow() || !sub.open.erase(node_id)) continue;
      warn.push_back(sub.feed);
      ids.push_back(id);
    }
    for (const auto& id : ids)
      MaybeComplete(id, &notify, &done);
  }
  if (!warn.empty()) {
    const std::string msg = "node " + HostnameOf(*store_, node_id) +
                            " lost its session with the leader: its logs may be incomplete";
    for (auto& f : warn) {
      api::ServiceLogsMessage m;
      m.set_warning(msg);
      f->Push(std::move(m));
    }
  }
  for (auto& f : done)
    f->Finish(Status::Ok());
  return notify;
}

void LogBroker::EndAll(const Status& status) {
  std::map<std::string, Subscription> subs;
  {
    MutexLock lock(mu_);
    subs.swap(subs_);
  }
  for (auto& [id, sub] : subs)
    sub.feed->Finish(status);
}

}  // namespace skep::manager
