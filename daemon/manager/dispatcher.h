// The leader's dispatcher: every node's agent holds a session with it, heartbeating; a node with
// a live session is READY, one whose heartbeats stop is marked DOWN. The session carries what
// the node must know: its own object (desired role, availability) and the list of managers,
// so that agents find the new leader when this one dies. Only the leader serves sessions; the
// other managers answer with the leader's address.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "daemon/manager/log_broker.h"
#include "daemon/manager/store.h"
#include "dispatcher.grpc.pb.h"

namespace skep::manager {

class Manager;

class Dispatcher {
 public:
  explicit Dispatcher(Manager* manager);

  grpc::Status Session(grpc::ServerContext* context, const api::SessionRequest& request,
                       grpc::ServerWriter<api::SessionMessage>* writer);
  grpc::Status Heartbeat(grpc::ServerContext* context, const api::HeartbeatRequest& request,
                         api::HeartbeatResponse* response);
  // A node reports what became of its tasks; a status only moves forward, and only for the
  // node's own tasks.
  grpc::Status UpdateTaskStatus(grpc::ServerContext* context,
                                const api::UpdateTaskStatusRequest& request,
                                api::UpdateTaskStatusResponse* response);

  // Log requests (`service logs`), served by the nodes through their sessions: every task of
  // the service, or the one task. Returns the subscription's ID, for UnsubscribeLogs.
  std::string SubscribeLogs(const std::string& service_id, const std::string& task_id,
                            const api::ServiceLogsRequest& req, std::shared_ptr<LogFeed> feed);
  void UnsubscribeLogs(const std::string& id);
  // A node's answer to a log subscription.
  grpc::ServerReadReactor<api::PublishLogsMessage>* PublishLogs(grpc::CallbackServerContext* c);

  void OnStoreEvent(const StoreEvent& event);
  // The raft group's members changed: every session hears the new list of managers.
  void OnManagersChanged();
  void OnLeadershipChange(bool leader);
  // Leader: marks down the nodes whose heartbeats stopped.
  void CheckNodes();
  void Stop();

  // The heartbeat period in force, and how long a node may stay silent before it is down.
  std::chrono::milliseconds Period() const;
  // The status of the leader, for answers to agents that reached a follower.
  grpc::Status NotLeader() const;

 private:
  struct SessionState {
    std::string id;
    std::string node_id;
    std::chrono::steady_clock::time_point last_heartbeat;
    bool dirty = false;  // something the node must hear of changed
  };
  api::SessionMessage Message(const SessionState& s) const;
  void MarkReady(const std::string& node_id, const std::string& addr);
  // Whether the node has a session with live heartbeats.
  bool Connected(const std::string& node_id) const;
  // The nodes must hear a new session message.
  void Touch(const LogBroker::Nodes& nodes);
  class LogReader;

  Manager* manager_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::shared_ptr<SessionState>> sessions_;  // by node ID
  std::chrono::steady_clock::time_point leader_since_;
  bool leader_ = false;
  bool stopped_ = false;
  LogBroker logs_;
};

class DispatcherService final
    : public api::Dispatcher::WithCallbackMethod_PublishLogs<api::Dispatcher::Service> {
 public:
  explicit DispatcherService(Dispatcher* d) : d_(d) {}
  grpc::Status Session(grpc::ServerContext* context, const api::SessionRequest* request,
                       grpc::ServerWriter<api::SessionMessage>* writer) override {
    return d_->Session(context, *request, writer);
  }
  grpc::Status Heartbeat(grpc::ServerContext* context, const api::HeartbeatRequest* request,
                         api::HeartbeatResponse* response) override {
    return d_->Heartbeat(context, *request, response);
  }
  grpc::Status UpdateTaskStatus(grpc::ServerContext* context,
                                const api::UpdateTaskStatusRequest* request,
                                api::UpdateTaskStatusResponse* response) override {
    return d_->UpdateTaskStatus(context, *request, response);
  }
  grpc::ServerReadReactor<api::PublishLogsMessage>* PublishLogs(
      grpc::CallbackServerContext* context, api::PublishLogsResponse*) override {
    return d_->PublishLogs(context);
  }

 private:
  Dispatcher* d_;
};

}  // namespace skep::manager
