// The session every node (managers too) keeps with the leader's dispatcher: heartbeats at the
// period the dispatcher asks for, task status reports, and a switch to another manager
// whenever the session breaks. It renews the node's certificate at the point of its lifetime
// picked at start, and whenever the role the swarm wants for the node differs from the one the
// certificate carries. It answers the log subscriptions its sessions list (log_publisher.h).
//
// Where it runs: all of it on one strand of the node's io_context. The session stream, the
// heartbeats, the reports and the renewals are calls on gRPC's callback API whose completions
// come back onto the strand (through a Gate: none after Stop); timers pace the heartbeats, the
// reconnections (a jittered backoff) and the renewal. Reading and writing the certificate
// files runs on the node's blocking pool. Nothing blocks.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "control.pb.h"
#include "daemon/common/clock.h"
#include "daemon/common/gate.h"
#include "daemon/common/mutex.h"
#include "daemon/common/pki.h"
#include "daemon/node/state.h"
#include "dispatcher.pb.h"

namespace grpc {
class Channel;
class ChannelCredentials;
class ClientContext;
}  // namespace grpc

namespace skep::node {

class LogPublishers;

// Called on the session's strand; they must not block.
struct SessionCallbacks {
  // Every session message (managers, the node's own object, its tasks).
  std::function<void(const api::SessionMessage&)> on_session;
  // The certificate was renewed with a different role.
  std::function<void(api::NodeRole)> on_role;
  // The swarm no longer knows this node.
  std::function<void(const std::string& why)> on_removed;
};

// When a certificate valid from `not_before` to `not_after` is renewed: once `fraction` of its
// lifetime has passed.
std::chrono::system_clock::time_point RenewalTime(std::chrono::system_clock::time_point not_before,
                                                  std::chrono::system_clock::time_point not_after,
                                                  double fraction);

class SessionClient : public std::enable_shared_from_this<SessionClient> {
 public:
  SessionClient(boost::asio::any_io_executor io, boost::asio::any_io_executor blocking,
                const DataDir& dir, api::NodeDescription description,
                std::vector<api::ManagerPeer> managers, SessionCallbacks callbacks);
  ~SessionClient();
  SessionClient(const SessionClient&) = delete;
  SessionClient& operator=(const SessionClient&) = delete;

  void Start();
  // Ends the session: once it returns, no callback runs any more. Not from a callback.
  void Stop();
  // The manager the session is with, empty when there is none. Thread-safe.
  std::string Manager() const;
  // Sends task status updates over the current session; `done(false)` when there is none or
  // the leader did not take them. `done` runs on the session's strand.
  void ReportStatus(std::vector<api::TaskStatusUpdate> updates, std::function<void(bool)> done);

 private:
  class Stream;
  void Connect();
  void OnMessage(uint64_t attempt, api::SessionMessage msg);
  void OnEnded(uint64_t attempt, const grpc::Status& status);
  void Heartbeat(uint64_t attempt);
  void RenewSoon();
  struct Renewal;
  void RenewIfDue(bool aged);
  void OnCertificateRead(const std::shared_ptr<Renewal>& r);
  void OnRenewed(const std::shared_ptr<Renewal>& r, const grpc::Status& st);
  void OnCertificateSaved(const std::shared_ptr<Renewal>& r, const std::string& error,
                          const pki::CertInfo& renewed);
  void ScheduleRenewal(const pki::CertInfo& cert);

  const boost::asio::strand<boost::asio::any_io_executor> strand_;
  const boost::asio::any_io_executor blocking_;
  const std::shared_ptr<Gate> gate_;
  const DataDir dir_;
  const api::NodeDescription description_;
  const SessionCallbacks callbacks_;
  Clock& clock_ = SystemClock();
  std::shared_ptr<grpc::ChannelCredentials> credentials_;

  mutable Mutex mu_;
  std::string connected_ SKEP_GUARDED_BY(mu_);  // read from any thread

  // All below: on the strand, which owns them.
  bool stopped_ = false;
  std::vector<api::ManagerPeer> managers_;
  size_t next_ = 0;
  std::string leader_hint_;
  uint64_t attempt_ = 0;      // the session attempt under way; older ones' completions drop out
  std::string pending_addr_;  // the manager of the current attempt
  std::shared_ptr<grpc::Channel> channel_;        // to it
  std::shared_ptr<grpc::ClientContext> session_;  // the current session's call, to cancel
  std::string session_id_;
  std::chrono::milliseconds backoff_{100};
  std::chrono::milliseconds heartbeat_interval_{500};
  std::unique_ptr<Timer> reconnect_;
  std::unique_ptr<Timer> heartbeat_;
  std::unique_ptr<Timer> renewal_;
  bool renewing_ = false;
  std::optional<api::NodeRole> desired_role_;
  double renew_fraction_;  // renew once this share of the certificate's lifetime has passed
  std::minstd_rand jitter_;
  std::unique_ptr<LogPublishers> logs_;  // answers the session's log subscriptions
};

}  // namespace skep::node
