// The leader's log broker: `skep service logs` on any manager ends up here. A request becomes a
// subscription naming, per node, the tasks whose logs it wants; each node hears of it in its
// dispatcher session and answers with PublishLogs. The broker adds what it knows of each task
// (service, slot, node) to the lines and hands them to the request's feed. Without --follow a
// request ends once every node that was asked has closed its answer; a node that is down or
// whose session ends first is named in a warning instead. With --follow the subscription stays
// until the client goes, and tasks the service gets meanwhile are added to it.
//
// Thread-safe, under a lock of its own: the dispatcher calls it from its strand, its sessions'
// strands (For) and the nodes' log streams (Publish). Methods that change which subscriptions a
// node must serve return those nodes, for the dispatcher to send them a new session message.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "control.pb.h"
#include "daemon/common/mutex.h"
#include "daemon/common/status.h"
#include "dispatcher.pb.h"

namespace skep::manager {

class Store;
class StoreEvent;

// Where a log request's lines go: a stream to the client, or to the manager that forwarded it.
// Thread-safe; once finished, further calls are ignored.
class LogFeed {
 public:
  virtual ~LogFeed() = default;
  virtual void Push(api::ServiceLogsMessage m) = 0;
  virtual void Finish(const Status& status) = 0;
};

class LogBroker {
 public:
  using Nodes = std::set<std::string>;
  // `connected` tells whether a node has a dispatcher session now.
  LogBroker(const Store* store, std::function<bool(const std::string& node_id)> connected);

  // The tasks: every task of `service_id`, or just `task_id`. Returns the nodes to notify.
  Nodes Subscribe(const std::string& id, const std::string& service_id, const std::string& task_id,
                  const api::ServiceLogsRequest& req, std::shared_ptr<LogFeed> feed);
  Nodes Unsubscribe(const std::string& id);

  // What the node is to answer, for its session message.
  std::vector<api::LogSubscription> For(const std::string& node_id) const;
  // A node's answer. An error status means the node should stop answering that subscription.
  Status Publish(const std::string& node_id, const api::PublishLogsMessage& msg, Nodes* notify);
  // A task was created or moved: a following subscription of its service takes it in.
  Nodes OnTask(const api::Task& task);
  // A node's session ended: what it had not sent yet will not come.
  Nodes OnSessionEnded(const std::string& node_id);
  // Leadership went: every request ends, to be made again to the new leader.
  void EndAll(const Status& status);

 private:
  struct Subscription {
    std::string service_id;
    std::string task_id;
    api::ServiceLogsRequest req;
    std::map<std::string, std::set<std::string>> tasks;  // by node
    std::set<std::string> open;                          // nodes that have not closed yet
    std::shared_ptr<LogFeed> feed;
  };
  void Decorate(const std::string& node_id, api::LogMessage* m) const;
  // Without --follow, a subscription no node owes anything any more is over.
  void MaybeComplete(const std::string& id, Nodes* notify,
                     std::vector<std::shared_ptr<LogFeed>>* done) SKEP_REQUIRES(mu_);

  const Store* store_;
  std::function<bool(const std::string&)> connected_;
  mutable Mutex mu_;
  std::map<std::string, Subscription> subs_ SKEP_GUARDED_BY(mu_);
};

}  // namespace skep::manager
