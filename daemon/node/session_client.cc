#include "daemon/node/session_client.h"

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <random>

#include "ca.grpc.pb.h"
#include "daemon/common/grpc_status.h"
#include "daemon/common/log.h"
#include "daemon/common/pki.h"
#include "daemon/common/tls.h"
#include "dispatcher.grpc.pb.h"

namespace skep::node {

using namespace std::chrono_literals;

Agent::Agent(const DataDir& dir, api::NodeDescription description,
             std::vector<api::ManagerPeer> managers, AgentCallbacks callbacks)
    : dir_(dir),
      description_(std::move(description)),
      callbacks_(std::move(callbacks)),
      managers_(std::move(managers)) {
  std::random_device rd;
  renew_fraction_ = std::uniform_real_distribution<double>(0.5, 0.8)(rd);
  jitter_.seed(rd());
}

Agent::~Agent() {
  Stop();
}

void Agent::Start() {
  credentials_ = tls::NodeCredentials(dir_.Certs());
  logs_ = std::make_unique<LogPublishers>(
      dir_.path() + "/tasks", [this]() -> std::shared_ptr<grpc::Channel> {
        const std::string addr = Manager();
        if (addr.empty()) return nullptr;
        return grpc::CreateCustomChannel(addr, credentials_, tls::ChannelArgs());
      });
  thread_ = std::thread([this] { Run(); });
  renew_thread_ = std::thread([this] { Renewals(); });
}

void Agent::Stop() {
  if (stop_.exchange(true)) return;
  {
    std::lock_guard lock(mu_);
    if (session_) session_->TryCancel();
  }
  {
    std::lock_guard lock(renew_mu_);
    renew_cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  if (renew_thread_.joinable()) renew_thread_.join();
  if (logs_) logs_->StopAll();
}

void Agent::Renewals() {
  std::unique_lock lock(renew_mu_);
  while (!stop_) {
    // Woken by a session message; otherwise the certificate's age is checked every few seconds.
    renew_cv_.wait_for(lock, std::chrono::seconds(3), [&] { return stop_ || renew_due_; });
    if (stop_) return;
    renew_due_ = false;
    const std::string addr = Manager();
    if (addr.empty()) continue;
    lock.unlock();
    const bool ok = MaybeRenew(addr);
    lock.lock();
    // A refused or failed renewal (a demoted manager still in the raft group) is tried again.
    if (!ok) renew_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_.load(); });
  }
}

std::string Agent::Manager() const {
  std::lock_guard lock(mu_);
  return connected_;
}

bool Agent::ReportStatus(const std::vector<api::TaskStatusUpdate>& updates) {
  std::string addr, session;
  {
    std::lock_guard lock(mu_);
    addr = connected_;
    session = session_id_;
  }
  if (addr.empty() || session.empty()) return false;
  auto stub =
      api::Dispatcher::NewStub(grpc::CreateCustomChannel(addr, credentials_, tls::ChannelArgs()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  api::UpdateTaskStatusRequest req;
  req.set_session_id(session);
  for (const auto& u : updates)
    *req.add_updates() = u;
  api::UpdateTaskStatusResponse resp;
  const grpc::Status st = stub->UpdateTaskStatus(&ctx, req, &resp);
  if (!st.ok()) {
    SKEP_LOG(debug, "agent", "task status to {} not taken: {}", addr, st.error_message());
  }
  return st.ok();
}

std::string Agent::NextManager() {
  std::lock_guard lock(mu_);
  if (!leader_hint_.empty()) {
    std::string addr = std::move(leader_hint_);
    leader_hint_.clear();
    return addr;
  }
  if (managers_.empty()) return "";
  return managers_[next_++ % managers_.size()].addr();
}

void Agent::Run() {
  auto backoff = 100ms;
  while (!stop_) {
    const std::string addr = NextManager();
    if (addr.empty()) {
      std::this_thread::sleep_for(500ms);
      continue;
    }
    auto channel = grpc::CreateCustomChannel(addr, credentials_, tls::ChannelArgs());
    auto stub = api::Dispatcher::NewStub(channel);
    grpc::ClientContext ctx;
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
      session_ = &ctx;
    }
    api::SessionRequest req;
    *req.mutable_description() = description_;
    auto reader = stub->Session(&ctx, req);
    api::SessionMessage msg;
    std::thread heartbeats;
    if (reader->Read(&msg)) {
      backoff = 100ms;
      {
        std::lock_guard lock(mu_);
        connected_ = addr;
      }
      SKEP_LOG(info, "agent", "session {} with the leader at {}", msg.session_id(), addr);
      heartbeats = std::thread([this, addr, id = msg.session_id(),
                                period = std::chrono::milliseconds(msg.heartbeat_period_ms()),
                                &ctx] { Heartbeats(addr, id, period, &ctx); });
      Handle(addr, msg);
      while (!stop_ && reader->Read(&msg))
        Handle(addr, msg);
      ctx.TryCancel();  // stops the heartbeats too
    }
    const grpc::Status st = reader->Finish();
    if (heartbeats.joinable()) heartbeats.join();
    {
      std::lock_guard lock(mu_);
      session_ = nullptr;
      connected_.clear();
      session_id_.clear();
      if (const Status why = FromGrpc(st); !why.leader_addr().empty()) {
        leader_hint_ = why.leader_addr();  // that manager is not the leader; this one is
      }
    }
    if (stop_) return;
    if (!FromGrpc(st).leader_addr().empty()) {
      // Pointed at the leader: go there now, but not in a tight loop if the hints go round.
      std::this_thread::sleep_for(20ms);
      continue;
    }
    if (st.error_code() == grpc::StatusCode::NOT_FOUND) {
      SKEP_LOG(error, "agent", "the swarm does not know this node: {}", st.error_message());
      if (callbacks_.on_removed) callbacks_.on_removed(st.error_message());
      std::this_thread::sleep_for(5s);
      continue;
    }
    SKEP_LOG(debug, "agent", "no session with {}: {}", addr, st.error_message());
    // Spread over half to one and a half times the backoff: nodes that lost the same leader
    // at the same moment do not come back to the next one in step.
    const double spread = std::uniform_real_distribution<double>(0.5, 1.5)(jitter_);
    std::this_thread::sleep_for(
        std::chrono::duration_cast<std::chrono::milliseconds>(backoff * spread));
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, 2s);
  }
}

void Agent::Heartbeats(std::string addr, std::string session_id, std::chrono::milliseconds period,
                       grpc::ClientContext* session) {
  auto stub =
      api::Dispatcher::NewStub(grpc::CreateCustomChannel(addr, credentials_, tls::ChannelArgs()));
  if (period <= 0ms) period = 5s;
  // Heartbeat a little more often than asked, so one slow round trip is not a missed beat.
  auto interval = period / 2;
  while (!stop_) {
    grpc::ClientContext ctx;
    // Two periods: the leader, if busy, may answer late (it counts the beat when it arrives,
    // and marks the node down only after three periods); a leader that does not answer at
    // all ends the session.
    ctx.set_deadline(std::chrono::system_clock::now() + 2 * period);
    api::HeartbeatRequest req;
    req.set_session_id(session_id);
    api::HeartbeatResponse resp;
    const grpc::Status st = stub->Heartbeat(&ctx, req, &resp);
    if (!st.ok()) {
      SKEP_LOG(debug, "agent", "heartbeat to {} failed: {}", addr, st.error_message());
      session->TryCancel();
      return;
    }
    if (resp.period_ms() > 0) interval = std::chrono::milliseconds(resp.period_ms()) / 2;
    // Sleep in small steps so that a cancelled session is noticed quickly.
    const auto until = std::chrono::steady_clock::now() + interval;
    while (!stop_ && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(50ms, interval));
      std::lock_guard lock(mu_);
      if (session_ != session) return;
    }
  }
}

void Agent::Handle(const std::string& addr, const api::SessionMessage& msg) {
  {
    std::lock_guard lock(mu_);
    if (msg.managers_size() > 0) managers_.assign(msg.managers().begin(), msg.managers().end());
    session_id_ = msg.session_id();
    if (msg.has_node()) {
      desired_role_ = msg.node().spec().desired_role();
      desired_known_ = true;
    }
  }
  if (callbacks_.on_session) callbacks_.on_session(msg);
  logs_->Update({msg.log_subscriptions().begin(), msg.log_subscriptions().end()});
  (void)addr;
  std::lock_guard lock(renew_mu_);
  renew_due_ = true;
  renew_cv_.notify_all();
}

bool Agent::MaybeRenew(const std::string& addr) {
  std::string cert_pem;
  pki::CertInfo info;
  try {
    cert_pem = dir_.ReadFile(dir_.Certs().cert);
    info = pki::ParseCertificate(cert_pem);
  } catch (const std::exception& e) {
    SKEP_LOG(error, "agent", "cannot read this node's certificate: {}", e.what());
    return false;
  }
  const api::NodeRole cert_role =
      info.role == pki::kManagerRole ? api::ROLE_MANAGER : api::ROLE_WORKER;
  const auto now = std::chrono::system_clock::now();
  const auto lifetime = info.not_after - info.not_before;
  const bool aging = now > info.not_before + std::chrono::duration_cast<std::chrono::seconds>(
                                                 lifetime * renew_fraction_);
  bool role_differs;
  {
    std::lock_guard lock(mu_);
    role_differs = desired_known_ && desired_role_ != cert_role;
    if (!aging && !role_differs) return true;
  }
  auto stub = api::CA::NewStub(grpc::CreateCustomChannel(addr, credentials_, tls::ChannelArgs()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  api::RenewCertificateRequest req;
  try {
    req.set_csr_pem(pki::CreateRequest(dir_.ReadFile(dir_.Certs().key)));
  } catch (const std::exception& e) {
    SKEP_LOG(error, "agent", "cannot make a certificate request: {}", e.what());
    return false;
  }
  api::RenewCertificateResponse resp;
  const grpc::Status st = stub->RenewCertificate(&ctx, req, &resp);
  if (!st.ok()) {
    SKEP_LOG(warn, "agent", "certificate renewal at {} failed: {}", addr, st.error_message());
    return false;
  }
  if (resp.role() == cert_role && !aging) return false;  // not yet: the leader is still at it
  try {
    dir_.SaveCertificate(resp.cert_pem());
  } catch (const std::exception& e) {
    SKEP_LOG(error, "agent", "cannot store the renewed certificate: {}", e.what());
    return false;
  }
  SKEP_LOG(info, "agent", "renewed the node certificate ({})",
           resp.role() == api::ROLE_MANAGER ? pki::kManagerRole : pki::kWorkerRole);
  if (resp.role() != cert_role && callbacks_.on_role) callbacks_.on_role(resp.role());
  return true;
}

}  // namespace skep::node
