#include "daemon/node/session_client.h"

#include <grpcpp/grpcpp.h>

#include <boost/asio/post.hpp>

#include <future>

#include "ca.grpc.pb.h"
#include "daemon/common/grpc_status.h"
#include "daemon/common/log.h"
#include "daemon/common/tls.h"
#include "daemon/node/log_publisher.h"
#include "dispatcher.grpc.pb.h"

namespace skep::node {

namespace asio = boost::asio;
using namespace std::chrono_literals;

std::chrono::system_clock::time_point RenewalTime(std::chrono::system_clock::time_point not_before,
                                                  std::chrono::system_clock::time_point not_after,
                                                  double fraction) {
  const auto lifetime = not_after - not_before;
  return not_before +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(lifetime * fraction);
}

// One session's stream of messages from the dispatcher. Its completions go onto the client's
// strand while the gate is open; it deletes itself when the call is done.
class SessionClient::Stream final : public grpc::ClientReadReactor<api::SessionMessage> {
 public:
  Stream(std::shared_ptr<SessionClient> client, uint64_t attempt,
         std::shared_ptr<grpc::ClientContext> context)
      : client_(std::move(client)), attempt_(attempt), context_(std::move(context)) {
    client_->gate_->Enter();
  }

  void Begin(api::Dispatcher::Stub* stub) {
    *request_.mutable_description() = client_->description_;
    stub->async()->Session(context_.get(), &request_, this);
    StartRead(&message_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows with the status
    client_->gate_->Post([c = client_, a = attempt_, m = std::move(message_)]() mutable {
      c->OnMessage(a, std::move(m));
    });
    message_ = api::SessionMessage();
    StartRead(&message_);
  }
  void OnDone(const grpc::Status& status) override {
    client_->gate_->Post([c = client_, a = attempt_, status] { c->OnEnded(a, status); });
    auto gate = client_->gate_;
    delete this;
    gate->Leave();
  }

 private:
  std::shared_ptr<SessionClient> client_;
  const uint64_t attempt_;
  std::shared_ptr<grpc::ClientContext> context_;
  api::SessionRequest request_;
  api::SessionMessage message_;
};

SessionClient::SessionClient(asio::any_io_executor io, asio::any_io_executor blocking,
                             const DataDir& dir, api::NodeDescription description,
                             std::vector<api::ManagerPeer> managers, SessionCallbacks callbacks)
    : strand_(asio::make_strand(io)),
      blocking_(std::move(blocking)),
      gate_(std::make_shared<Gate>(strand_)),
      dir_(dir),
      description_(std::move(description)),
      callbacks_(std::move(callbacks)),
      managers_(std::move(managers)) {
  std::random_device rd;
  renew_fraction_ = std::uniform_real_distribution<double>(0.5, 0.8)(rd);
  jitter_.seed(rd());
}

SessionClient::~SessionClient() = default;

void SessionClient::Start() {
  credentials_ = tls::NodeCredentials(dir_.Certs());
  logs_ = std::make_unique<LogPublishers>(strand_.get_inner_executor(), dir_.path() + "/tasks");
  gate_->Post([self = shared_from_this()] {
    self->Connect();
    self->RenewIfDue(false);
  });
}

void SessionClient::Stop() {
  auto stopped = std::make_shared<std::promise<void>>();
  auto future = stopped->get_future();
  // The last thing the strand runs for this client that does anything: every later one finds
  // it stopped. Then the calls it cancelled end.
  if (!gate_->Post([self = shared_from_this(), stopped] {
        self->stopped_ = true;
        if (self->session_) self->session_->TryCancel();
        self->reconnect_.reset();
        self->heartbeat_.reset();
        self->renewal_.reset();
        if (self->logs_) self->logs_->StopAll();
        stopped->set_value();
      })) {
    return;  // stopped already
  }
  // Bounded: the io_context runs while the node stops its parts.
  future.wait_for(10s);
  gate_->Drain(10s);
  if (logs_) logs_->Drain(10s);
}

std::string SessionClient::Manager() const {
  MutexLock lock(mu_);
  return connected_;
}

// ---- the session ------------------------------------------------------------------------------

void SessionClient::Connect() {
  if (stopped_) return;
  std::string addr;
  if (!leader_hint_.empty()) {
    addr = std::move(leader_hint_);
    leader_hint_.clear();
  } else if (!managers_.empty()) {
    addr = managers_[next_++ % managers_.size()].addr();
  }
  if (addr.empty()) {
    reconnect_ = clock_.After(strand_, 500ms, [this] { Connect(); });
    return;
  }
  const uint64_t attempt = ++attempt_;
  channel_ = grpc::CreateCustomChannel(addr, credentials_, tls::ChannelArgs());
  session_ = std::make_shared<grpc::ClientContext>();
  auto stub = api::Dispatcher::NewStub(channel_);
  auto* stream = new Stream(shared_from_this(), attempt, session_);
  stream->Begin(stub.get());
  pending_addr_ = addr;
}

void SessionClient::OnMessage(uint64_t attempt, api::SessionMessage msg) {
  if (stopped_ || attempt != attempt_) return;
  if (session_id_.empty()) {
    backoff_ = 100ms;
    {
      MutexLock lock(mu_);
      connected_ = pending_addr_;
    }
    SKEP_LOG(info, "session", "session {} with the leader at {}", msg.session_id(), pending_addr_);
    if (msg.heartbeat_period_ms() > 0) {
      // A little more often than asked, so that one slow round trip is not a missed beat.
      heartbeat_interval_ = std::chrono::milliseconds(msg.heartbeat_period_ms()) / 2;
    }
    session_id_ = msg.session_id();
    heartbeat_ =
        clock_.After(strand_, heartbeat_interval_, [this, attempt] { Heartbeat(attempt); });
  }
  if (msg.managers_size() > 0) managers_.assign(msg.managers().begin(), msg.managers().end());
  if (msg.has_node()) {
    const api::NodeRole desired = msg.node().spec().desired_role();
    const bool changed = desired_role_ != desired;
    desired_role_ = desired;
    if (changed) RenewIfDue(false);
  }
  if (callbacks_.on_session) callbacks_.on_session(msg);
  logs_->Update({msg.log_subscriptions().begin(), msg.log_subscriptions().end()}, channel_);
}

void SessionClient::OnEnded(uint64_t attempt, const grpc::Status& status) {
  if (stopped_ || attempt != attempt_) return;
  heartbeat_.reset();
  session_.reset();
  session_id_.clear();
  {
    MutexLock lock(mu_);
    connected_.clear();
  }
  const Status why = FromGrpc(status);
  if (!why.leader_addr().empty()) {
    // That manager is not the leader; this one is. Not in a tight loop if the hints go round.
    leader_hint_ = why.leader_addr();
    reconnect_ = clock_.After(strand_, 20ms, [this] { Connect(); });
    return;
  }
  if (why.code() == Code::kNotFound) {
    SKEP_LOG(error, "session", "the swarm does not know this node: {}", why.message());
    if (callbacks_.on_removed) callbacks_.on_removed(why.message());
    reconnect_ = clock_.After(strand_, 5s, [this] { Connect(); });
    return;
  }
  SKEP_LOG(debug, "session", "no session with {}: {}", pending_addr_, status.error_message());
  // Spread over half to one and a half times the backoff: nodes that lost the same leader at
  // the same moment do not come back to the next one in step.
  const double spread = std::uniform_real_distribution<double>(0.5, 1.5)(jitter_);
  reconnect_ = clock_.After(
      strand_, std::chrono::duration_cast<std::chrono::milliseconds>(backoff_ * spread),
      [this] { Connect(); });
  backoff_ = std::min<std::chrono::milliseconds>(backoff_ * 2, 2s);
}

void SessionClient::Heartbeat(uint64_t attempt) {
  if (stopped_ || attempt != attempt_ || !session_) return;
  struct Call {
    grpc::ClientContext context;
    api::HeartbeatRequest request;
    api::HeartbeatResponse response;
    std::unique_ptr<api::Dispatcher::Stub> stub;
  };
  auto call = std::make_shared<Call>();
  // Two periods: the leader, if busy, may answer late (it counts the beat when it arrives, and
  // marks the node down only after three periods); a leader that does not answer at all ends
  // the session.
  call->context.set_deadline(std::chrono::system_clock::now() + 4 * heartbeat_interval_);
  call->request.set_session_id(session_id_);
  call->stub = api::Dispatcher::NewStub(channel_);
  gate_->Enter();
  call->stub->async()->Heartbeat(
      &call->context, &call->request, &call->response,
      [self = shared_from_this(), call, attempt](grpc::Status st) {
        auto gate = self->gate_;
        gate->Post([self, call, attempt, st] {
          if (self->stopped_ || attempt != self->attempt_ || !self->session_) return;
          if (!st.ok()) {
            SKEP_LOG(debug, "session", "heartbeat failed: {}", st.error_message());
            self->session_->TryCancel();  // the session ends, and another one starts
            return;
          }
          if (call->response.period_ms() > 0) {
            self->heartbeat_interval_ = std::chrono::milliseconds(call->response.period_ms()) / 2;
          }
          self->heartbeat_ =
              self->clock_.After(self->strand_, self->heartbeat_interval_,
                                 [s = self.get(), attempt] { s->Heartbeat(attempt); });
        });
        gate->Leave();
      });
}

void SessionClient::ReportStatus(std::vector<api::TaskStatusUpdate> updates,
                                 std::function<void(bool)> report_done) {
  auto done = std::make_shared<std::function<void(bool)>>(std::move(report_done));
  const bool posted = gate_->Post([self = shared_from_this(), updates = std::move(updates), done] {
    auto report = [done](bool ok) { (*done)(ok); };
    if (self->stopped_ || self->session_id_.empty() || !self->channel_) return report(false);
    struct Call {
      grpc::ClientContext context;
      api::UpdateTaskStatusRequest request;
      api::UpdateTaskStatusResponse response;
      std::unique_ptr<api::Dispatcher::Stub> stub;
    };
    auto call = std::make_shared<Call>();
    call->context.set_deadline(std::chrono::system_clock::now() + 10s);
    call->request.set_session_id(self->session_id_);
    for (const auto& u : updates)
      *call->request.add_updates() = u;
    call->stub = api::Dispatcher::NewStub(self->channel_);
    self->gate_->Enter();
    call->stub->async()->UpdateTaskStatus(
        &call->context, &call->request, &call->response, [self, call, report](grpc::Status st) {
          if (!st.ok()) {
            SKEP_LOG(debug, "session", "task status not taken: {}", st.error_message());
          }
          auto gate = self->gate_;
          gate->Post([report, ok = st.ok()] { report(ok); });
          gate->Leave();
        });
  });
  // A stopped session takes nothing.
  if (!posted) (*done)(false);
}

// ---- certificate renewals ---------------------------------------------------------------------

void SessionClient::ScheduleRenewal(const pki::CertInfo& cert) {
  const auto at = RenewalTime(cert.not_before, cert.not_after, renew_fraction_);
  const auto delay = std::max<std::chrono::system_clock::duration>(
      at - std::chrono::system_clock::now(), std::chrono::seconds(0));
  renewal_ = clock_.After(strand_, delay, [this] { RenewIfDue(true); });
}

void SessionClient::RenewSoon() {
  // A refused or failed renewal (a demoted manager still in the raft group) is tried again.
  renewal_ = clock_.After(strand_, 1s, [this] { RenewIfDue(false); });
}

// One renewal: what was read of the current certificate, and the call to the CA.
struct SessionClient::Renewal {
  bool aged = false;  // renew whatever the certificate's age
  std::string cert_pem, key_pem;
  pki::CertInfo info;
  api::NodeRole cert_role = api::ROLE_WORKER;
  bool due = false;
  std::string error;
  grpc::ClientContext context;
  api::RenewCertificateRequest request;
  api::RenewCertificateResponse response;
  std::unique_ptr<api::CA::Stub> stub;
};

// Renews the certificate at the manager the session is with when its age (`aged`) or the
// role the swarm wants call for it; otherwise waits for its renewal time. The files are read
// and written off the strand; each step comes back to it.
void SessionClient::RenewIfDue(bool aged) {
  if (stopped_ || renewing_) return;
  renewing_ = true;
  auto r = std::make_shared<Renewal>();
  r->aged = aged;
  asio::post(blocking_, [self = shared_from_this(), r] {
    try {
      r->cert_pem = self->dir_.ReadFile(self->dir_.Certs().cert);
      r->info = pki::ParseCertificate(r->cert_pem);
      r->key_pem = self->dir_.ReadFile(self->dir_.Certs().key);
    } catch (const std::exception& e) {
      r->error = e.what();
    }
    self->gate_->Post([self, r] { self->OnCertificateRead(r); });
  });
}

void SessionClient::OnCertificateRead(const std::shared_ptr<Renewal>& r) {
  if (stopped_) return;
  renewing_ = false;
  if (!r->error.empty()) {
    SKEP_LOG(error, "session", "cannot read this node's certificate: {}", r->error);
    return RenewSoon();
  }
  r->cert_role = r->info.role == pki::kManagerRole ? api::ROLE_MANAGER : api::ROLE_WORKER;
  r->due = r->aged || std::chrono::system_clock::now() >=
                          RenewalTime(r->info.not_before, r->info.not_after, renew_fraction_);
  const bool role_differs = desired_role_ && *desired_role_ != r->cert_role;
  if (!r->due && !role_differs) return ScheduleRenewal(r->info);
  if (!channel_ || session_id_.empty()) return RenewSoon();
  try {
    r->request.set_csr_pem(pki::CreateRequest(r->key_pem));
  } catch (const std::exception& e) {
    SKEP_LOG(error, "session", "cannot make a certificate request: {}", e.what());
    return RenewSoon();
  }
  renewing_ = true;
  r->context.set_deadline(std::chrono::system_clock::now() + 10s);
  r->stub = api::CA::NewStub(channel_);
  gate_->Enter();
  r->stub->async()->RenewCertificate(
      &r->context, &r->request, &r->response, [self = shared_from_this(), r](grpc::Status st) {
        self->OnRenewed(r, st);
        self->gate_->Leave();
      });
}

// On gRPC's thread.
void SessionClient::OnRenewed(const std::shared_ptr<Renewal>& r, const grpc::Status& st) {
  auto self = shared_from_this();
  if (!st.ok() || (r->response.role() == r->cert_role && !r->due)) {
    // Failed; or not yet: the leader is still at it (a demoted manager leaving the raft group).
    gate_->Post([self, st] {
      if (self->stopped_) return;
      self->renewing_ = false;
      if (!st.ok()) {
        SKEP_LOG(warn, "session", "certificate renewal failed: {}", st.error_message());
      }
      self->RenewSoon();
    });
    return;
  }
  gate_->Enter();
  asio::post(blocking_, [self, r] {
    std::string error;
    pki::CertInfo renewed;
    try {
      self->dir_.SaveCertificate(r->response.cert_pem());
      renewed = pki::ParseCertificate(r->response.cert_pem());
    } catch (const std::exception& e) {
      error = e.what();
    }
    self->gate_->Post([self, r, error, renewed] { self->OnCertificateSaved(r, error, renewed); });
    self->gate_->Leave();
  });
}

void SessionClient::OnCertificateSaved(const std::shared_ptr<Renewal>& r, const std::string& error,
                                       const pki::CertInfo& renewed) {
  if (stopped_) return;
  renewing_ = false;
  if (!error.empty()) {
    SKEP_LOG(error, "session", "cannot store the renewed certificate: {}", error);
    return RenewSoon();
  }
  const api::NodeRole role = r->response.role();
  SKEP_LOG(info, "session", "renewed the node certificate ({})",
           role == api::ROLE_MANAGER ? pki::kManagerRole : pki::kWorkerRole);
  if (desired_role_ && *desired_role_ != role) {
    RenewSoon();  // the swarm changed the role while this renewal was under way
  } else {
    ScheduleRenewal(renewed);
  }
  if (role != r->cert_role && callbacks_.on_role) callbacks_.on_role(role);
}

}  // namespace skep::node
