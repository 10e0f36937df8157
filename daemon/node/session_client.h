// The agent every node runs (managers too): a session with the leader's dispatcher, heartbeats
// at the period the dispatcher asks for, and a switch to another manager whenever the session
// breaks. It renews the node's certificate before it expires and whenever the role the swarm
// wants for the node differs from the one the certificate carries. It answers the log
// subscriptions its sessions list (log_publisher.h).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "control.pb.h"
#include "daemon/node/log_publisher.h"
#include "daemon/node/state.h"
#include "dispatcher.pb.h"

namespace grpc {
class ClientContext;
class ChannelCredentials;
}  // namespace grpc

namespace skep::node {

struct AgentCallbacks {
  // Every session message (managers, the node's own object).
  std::function<void(const api::SessionMessage&)> on_session;
  // The certificate was renewed with a different role.
  std::function<void(api::NodeRole)> on_role;
  // The swarm no longer knows this node.
  std::function<void(const std::string& why)> on_removed;
};

class Agent {
 public:
  Agent(const DataDir& dir, api::NodeDescription description,
        std::vector<api::ManagerPeer> managers, AgentCallbacks callbacks);
  ~Agent();
  void Start();
  void Stop();
  // The manager the session is with, empty when there is none.
  std::string Manager() const;
  // Sends task status updates over the current session; false (and nothing sent) when there
  // is no session or the leader refused them. Blocks for the round trip.
  bool ReportStatus(const std::vector<api::TaskStatusUpdate>& updates);

 private:
  void Run();
  void Heartbeats(std::string addr, std::string session_id, std::chrono::milliseconds period,
                  grpc::ClientContext* session);
  // Renews the certificate when its role or age call for it, at the manager the session is
  // with; on a thread of its own so that a slow renewal never holds up heartbeats.
  void Renewals();
  void Handle(const std::string& addr, const api::SessionMessage& msg);
  // Renews the certificate at `addr` if its role or age call for it. False if that failed or
  // the leader did not (yet) grant the role the swarm wants.
  bool MaybeRenew(const std::string& addr);
  std::string NextManager();

  DataDir dir_;
  api::NodeDescription description_;
  AgentCallbacks callbacks_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;

  mutable std::mutex mu_;
  std::vector<api::ManagerPeer> managers_;
  size_t next_ = 0;
  std::string leader_hint_;
  std::string connected_;
  std::string session_id_;
  grpc::ClientContext* session_ = nullptr;  // the open session, to cancel it
  api::NodeRole desired_role_ = api::ROLE_WORKER;
  bool desired_known_ = false;
  double renew_fraction_;  // renew once this share of the certificate's lifetime has passed
  std::minstd_rand jitter_;  // the session loop's own

  std::mutex renew_mu_;  // one renewal at a time
  std::condition_variable renew_cv_;
  bool renew_due_ = false;

  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::thread renew_thread_;
  std::unique_ptr<LogPublishers> logs_;  // answers the session's log subscriptions
};

}  // namespace skep::node
