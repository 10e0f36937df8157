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
//
// Where things run: the dispatcher's state (the sessions by node, the liveness timer) is owned
// by its strand, which the gRPC reactors, the store's events and leadership changes post to.
// The task status reports waiting for a proposal have a strand of their own; heartbeats are
// answered on gRPC's threads against a table under a lock of its own (HeardTable): a strand busy
// with a large rollout never makes a node miss its heartbeat's deadline, nor holds up the
// reports. Each session has a strand of its own for its stream and what it last sent, so that
// composing a thousand nodes' messages is spread over the manager's threads. The log broker keeps its own
// lock (log_broker.h). Nothing blocks.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/common/mutex.h"
#include "daemon/manager/context.h"
#include "daemon/manager/log_broker.h"
#include "dispatcher.grpc.pb.h"

namespace skep::manager {

// Which nodes to mark down now, and when to look again: pure, for the dispatcher's liveness
// timer. A node is down once it has not been heard from (a heartbeat, its first sighting) for
// `grace`, and not before `quiet_until` (a new leader gives every node time to find it).
struct LivenessPlan {
  std::vector<std::string> down;
  std::optional<Clock::Steady> next;  // the earliest time another node may go down
};
struct NodeHeard {
  std::string id;
  bool down = false;  // the store says DOWN already: only a change is a write
  Clock::Steady heard;
};
LivenessPlan PlanLiveness(const std::vector<NodeHeard>& nodes, Clock::Steady now,
                          Clock::duration grace, Clock::Steady quiet_until);

// When each node was last heard from (a heartbeat, its session opening, its first sighting by
// the liveness check), which session it holds and whether the store has it READY: written on
// the dispatcher's strand and by heartbeats on gRPC's threads. Heartbeats read only this table:
// gRPC runs every callback of the process on a couple of threads, and one waiting for the
// store's lock (behind the raft node applying a batch, itself behind a long pass) holds up the
// raft messages from the other managers too, until the leader steps down for want of them.
class HeardTable {
 public:
  // A session opened (`now` counts as heard), or ended: the node keeps its last time.
  void Open(const std::string& node, const std::string& session, Clock::Steady now);
  void Close(const std::string& node, const std::string& session);
  // A heartbeat of `session`: kNoSession (and nothing recorded) if the node holds no such
  // session, else whether the store last said the node is READY (SetReady).
  enum class BeatResult { kNoSession, kReady, kNotReady };
  BeatResult Beat(const std::string& node, const std::string& session, Clock::Steady now);
  // What the store says of a node that is in the table: READY or not (a heartbeat then marks it
  // ready again), so that heartbeats never read the store.
  void SetReady(const std::string& node, bool ready);
  // The node's last time, or `now` for a node never heard from (its grace starts now).
  Clock::Steady HeardOrNow(const std::string& node, Clock::Steady now);
  std::optional<Clock::Steady> Heard(const std::string& node) const;
  void Forget(const std::string& node);
  void Clear();

 private:
  struct Entry {
    std::string session;  // empty: none open
    Clock::Steady heard;
    bool ready = true;  // the store's word, as the dispatcher last heard it
  };
  mutable Mutex mu_;
  std::map<std::string, Entry> nodes_ SKEP_GUARDED_BY(mu_);
};

class Dispatcher : public std::enable_shared_from_this<Dispatcher> {
 public:
  explicit Dispatcher(Context& ctx);
  ~Dispatcher();

  // Starts following the store and leadership; Stop ends every session (before the server
  // shuts down). Both return at once.
  void Start();
  void Stop();

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

  // The heartbeat period in force.
  std::chrono::milliseconds Period() const;
  // Where the leader is, for answers to agents that reached a follower.
  Status NotLeader() const;

 private:
  struct SessionState;
  class SessionStream;
  class LogReader;
  struct StatusCall;
  using SessionPtr = std::shared_ptr<SessionState>;

  // On strand_.
  void Register(const SessionPtr& s, const api::NodeDescription& description,
                const std::string& addr);
  void Ended(const SessionPtr& s);
  void OnEvents(const std::vector<StoreEvent>& events);
  void OnLeadership(const Leadership& l);
  void ReadPeriod();
  void Touch(const LogBroker::Nodes& nodes);
  void WakeAll();
  void MarkReady(const std::string& node_id, const std::string& addr);
  bool Connected(const std::string& node_id) const;
  void CheckNodes();
  void ArmLiveness(Clock::Steady at);
  Clock::duration Grace() const;

  // On status_strand_: the task status reports' queue is apart from the sessions' work, so
  // that a rollout's store events never hold up the reports that tell it tasks run.
  void QueueStatus(std::shared_ptr<StatusCall> call);
  void FlushStatus();
  void StatusWritten(std::vector<std::shared_ptr<StatusCall>> calls, const Status& r);

  // On the session's strand.
  void Wake(const SessionPtr& s);
  void WriteNext(const SessionPtr& s);
  void End(const SessionPtr& s, Status status);
  // Builds the session's next message: everything on the first, then only what changed.
  // False when nothing changed since the last one.
  bool Compose(SessionState& s, api::SessionMessage* msg);

  Context& ctx_;
  Strand strand_;
  Strand status_strand_;
  std::atomic<int64_t> period_ms_;  // written on strand_, read anywhere
  LogBroker logs_;
  Subscription store_events_;
  Subscription leadership_;
  Subscription managers_;
  // The apply thread's, between the events of one batch.
  std::vector<StoreEvent> batch_events_;

  // On strand_.
  bool serving_ = false;
  bool stopped_ = false;
  std::map<std::string, SessionPtr> sessions_;     // by node ID; the last one each node opened
  Clock::Steady quiet_until_{};                    // no node goes down before (a new leader)
  std::unique_ptr<Timer> liveness_;
  Clock::Steady liveness_at_{};

  // On status_strand_.
  std::deque<std::shared_ptr<StatusCall>> status_queue_;  // not yet in a proposal
  bool status_in_flight_ = false;
  // Its own lock.
  HeardTable heard_;
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
