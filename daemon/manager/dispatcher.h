// The leader's dispatcher: every node's agent holds a session with it, heartbeating; a node with
// a live session is READY, one whose heartbeats stop is marked DOWN. The session carries what
// the node must know: its own object (desired role, availability), the list of managers (so
// that agents find the new leader when this one dies), its tasks and the log requests it is to
// answer. Only the leader serves sessions; the other managers answer with the leader's address.
//
// All of it is on gRPC's callback API: a session is a write reactor woken by store events, not
// a thread. Its first message lists every task of the node (a full resync, after every
// reconnection); later ones only the tasks that changed and the IDs of those that are no
// longer the node's. Heartbeats live in the leader's memory: only a change of a node's state is
// a raft write, proposed without waiting.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "daemon/manager/log_broker.h"
#include "daemon/manager/store.h"
#include "dispatcher.grpc.pb.h"

namespace skep::manager {

class Manager;
struct WriteResult;

class Dispatcher {
 public:
  explicit Dispatcher(Manager* manager);
  ~Dispatcher();

  grpc::ServerWriteReactor<api::SessionMessage>* Session(grpc::CallbackServerContext* context,
                                                         const api::SessionRequest* request);
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const api::HeartbeatRequest* request,
                                      api::HeartbeatResponse* response);
  // A node reports what became of its tasks; a status only moves forward, and only for the
  // node's own tasks.
  grpc::ServerUnaryReactor* UpdateTaskStatus(grpc::CallbackServerContext* context,
                                             const api::UpdateTaskStatusRequest* request,
                                             api::UpdateTaskStatusResponse* response);
  // A node's answer to a log subscription.
  grpc::ServerReadReactor<api::PublishLogsMessage>* PublishLogs(grpc::CallbackServerContext* c);

  // Log requests (`service logs`), served by the nodes through their sessions: every task of
  // the service, or the one task. Returns the subscription's ID, for UnsubscribeLogs.
  std::string SubscribeLogs(const std::string& service_id, const std::string& task_id,
                            const api::ServiceLogsRequest& req, std::shared_ptr<LogFeed> feed);
  void UnsubscribeLogs(const std::string& id);

  void OnStoreEvent(const StoreEvent& event);
  // The raft group's members changed: every session hears the new list of managers.
  void OnManagersChanged();
  void OnLeadershipChange(bool leader);
  // Leader: marks down the nodes whose heartbeats stopped.
  void CheckNodes();
  // Ends every session (before the server shuts down).
  void Stop();

  // The heartbeat period in force, and how long a node may stay silent before it is down.
  std::chrono::milliseconds Period() const;
  // The status of the leader, for answers to agents that reached a follower.
  grpc::Status NotLeader() const;

 private:
  struct SessionState;
  class SessionStream;
  class LogReader;
  using SessionPtr = std::shared_ptr<SessionState>;

  // Builds the session's next message: everything on the first, then only what changed.
  // False when nothing changed since the last one.
  bool Compose(SessionState& s, api::SessionMessage* msg);
  // The session has news: its stream writes the next message, off the caller's thread.
  void Wake(const SessionPtr& s);
  void WriteNext(const SessionPtr& s);
  void End(const SessionPtr& s, grpc::Status status);
  void Ended(const SessionPtr& s);
  void WakeAll();
  void MarkReady(const std::string& node_id, const std::string& addr);
  // Whether the node has a session with live heartbeats.
  bool Connected(const std::string& node_id) const;
  // The nodes must hear a new session message.
  void Touch(const LogBroker::Nodes& nodes);
  // Task status reports from every node go out together, one proposal at a time: the next
  // carries all that arrived while the last was in flight (as SwarmKit's dispatcher batches
  // them), so that a hundred thousand tasks starting are not as many raft entries.
  struct StatusCall;
  void QueueStatus(std::shared_ptr<StatusCall> call);
  void FlushStatus();
  void StatusWritten(std::vector<std::shared_ptr<StatusCall>> calls, const WriteResult& r);

  Manager* manager_;
  // The heartbeat period from the cluster object, read again after it changes (0: to read);
  // a read that a change overtook is not kept.
  mutable std::mutex period_mu_;
  mutable int64_t period_ms_ = 0;
  uint64_t period_changes_ = 0;
  mutable std::mutex mu_;
  std::map<std::string, SessionPtr> sessions_;  // by node ID; the last one each node opened
  // Since when this manager, leading, has taken sessions (CheckNodes sees it first).
  std::optional<std::chrono::steady_clock::time_point> serving_since_;
  bool leader_ = false;
  bool stopped_ = false;
  LogBroker logs_;
  std::mutex status_mu_;
  std::deque<std::shared_ptr<StatusCall>> status_queue_;  // not yet in a proposal
  bool status_in_flight_ = false;
};

class DispatcherService final : public api::Dispatcher::CallbackService {
 public:
  explicit DispatcherService(Dispatcher* d) : d_(d) {}
  grpc::ServerWriteReactor<api::SessionMessage>* Session(
      grpc::CallbackServerContext* context, const api::SessionRequest* request) override {
    return d_->Session(context, request);
  }
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const api::HeartbeatRequest* request,
                                      api::HeartbeatResponse* response) override {
    return d_->Heartbeat(context, request, response);
  }
  grpc::ServerUnaryReactor* UpdateTaskStatus(grpc::CallbackServerContext* context,
                                             const api::UpdateTaskStatusRequest* request,
                                             api::UpdateTaskStatusResponse* response) override {
    return d_->UpdateTaskStatus(context, request, response);
  }
  grpc::ServerReadReactor<api::PublishLogsMessage>* PublishLogs(
      grpc::CallbackServerContext* context, api::PublishLogsResponse*) override {
    return d_->PublishLogs(context);
  }

 private:
  Dispatcher* d_;
};

}  // namespace skep::manager
