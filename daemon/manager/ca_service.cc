#include "daemon/manager/ca_service.h"

#include "daemon/common/log.h"
#include "daemon/common/pki.h"
#include "daemon/common/tls.h"
#include "daemon/manager/defaults.h"
#include "daemon/manager/dispatcher.h"
#include "daemon/manager/manager.h"
#include "raft/conf.h"

namespace skep::manager {

using grpc::StatusCode;

namespace {

std::chrono::seconds CertExpiry(const api::Cluster& c) {
  const int64_t s = c.spec().ca().node_cert_expiry_s();
  return std::chrono::seconds(s > 0 ? s : kNodeCertExpiryS);
}

pki::KeyPair CaKeys(const api::Cluster& c) {
  return {c.root_ca().key_pem(), c.root_ca().cert_pem()};
}

}  // namespace

grpc::Status CAService::GetRootCACertificate(grpc::ServerContext*, const api::GetRootCARequest* req,
                                             api::GetRootCAResponse* resp) {
  if (auto c = m_->store().GetCluster()) {
    resp->set_cert_pem(c->root_ca().cert_pem());
    return grpc::Status::OK;
  }
  // A manager that joined moments ago may not have received the state yet; the leader has it.
  auto leader = m_->Leader();
  if (!leader || leader->raft_id == m_->options().raft_id) {
    return {StatusCode::UNAVAILABLE, "this manager has no cluster state yet; try again shortly"};
  }
  auto stub = api::CA::NewStub(m_->ChannelTo(leader->addr));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return stub->GetRootCACertificate(&ctx, *req, resp);
}

grpc::Status CAService::JoinNode(grpc::ServerContext*, const api::JoinNodeRequest* req,
                                 api::JoinNodeResponse* resp) {
  if (!m_->IsLeader()) {
    // Joining needs a write; the leader decides. The token is checked there.
    auto leader = m_->Leader();
    if (!leader) return m_->NoLeaderStatus();
    auto stub = api::CA::NewStub(m_->ChannelTo(leader->addr));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub->JoinNode(&ctx, *req, resp);
  }
  if (grpc::Status st = m_->WaitServing(); !st.ok()) return st;
  auto cluster = m_->store().GetCluster();
  if (!cluster) return {StatusCode::UNAVAILABLE, "the cluster state is not available yet"};
  pki::ParsedToken token;
  try {
    token = pki::ParseJoinToken(req->token());
  } catch (const pki::PkiError& e) {
    return {StatusCode::INVALID_ARGUMENT, e.what()};
  }
  const auto& ca = cluster->root_ca();
  if (token.ca_digest != ca.digest()) {
    return {StatusCode::PERMISSION_DENIED,
            "the join token is for another swarm: the CA digest it carries does not match this "
            "swarm's root CA"};
  }
  api::NodeRole role;
  if (req->token() == ca.join_tokens().worker()) {
    role = api::ROLE_WORKER;
  } else if (req->token() == ca.join_tokens().manager()) {
    role = api::ROLE_MANAGER;
  } else {
    for (const auto& t : ca.retired_tokens()) {
      if (t == req->token()) {
        return {StatusCode::PERMISSION_DENIED,
                "the join token was rotated and is no longer valid; get the current one with "
                "'skep swarm join-token worker' (or manager) on a manager"};
      }
    }
    return {StatusCode::PERMISSION_DENIED, "invalid join token: this swarm never issued it"};
  }
  if (req->raft_id() == 0) return {StatusCode::INVALID_ARGUMENT, "raft id 0 is reserved"};
  if (req->advertise_addr().empty()) {
    return {StatusCode::INVALID_ARGUMENT, "the joining node must give its advertise address"};
  }
  const char* role_name = role == api::ROLE_MANAGER ? pki::kManagerRole : pki::kWorkerRole;
  auto sign = [&](const std::string& node_id, std::string* cert) -> grpc::Status {
    try {
      *cert = pki::SignNodeCertificate(CaKeys(*cluster), req->csr_pem(), node_id, role_name,
                                       cluster->id(), CertExpiry(*cluster));
    } catch (const pki::PkiError& e) {
      return {StatusCode::INVALID_ARGUMENT, std::string("bad certificate request: ") + e.what()};
    }
    return grpc::Status::OK;
  };
  auto answer = [&](const std::string& node_id, std::string cert) {
    resp->set_node_id(node_id);
    resp->set_cert_pem(std::move(cert));
    resp->set_role(role);
    resp->set_cluster_id(cluster->id());
    for (const auto& p : m_->Managers())
      *resp->add_managers() = p;
  };
  if (auto existing = m_->store().NodeByRaftId(req->raft_id())) {
    // The joining node retries with the same raft id when an earlier answer was lost (a
    // timeout, a leader change): if that earlier attempt created the node, and the node has
    // never opened a session since, this is the same join, and it gets that node's identity
    // rather than a second node object.
    const bool same_join = existing->role() == role &&
                           existing->advertise_addr() == req->advertise_addr() &&
                           existing->description().hostname() == req->description().hostname() &&
                           existing->status().addr().empty();
    if (!same_join) {
      return {StatusCode::ALREADY_EXISTS,
              "raft id " + std::to_string(req->raft_id()) + " is taken; join again"};
    }
    std::string cert;
    if (grpc::Status st = sign(existing->id(), &cert); !st.ok()) return st;
    SKEP_LOG(info, "ca", "node {} ({}) joined again after an unanswered attempt", existing->id(),
             req->description().hostname());
    answer(existing->id(), std::move(cert));
    return grpc::Status::OK;
  }
  const std::string node_id = pki::RandomId();
  std::string cert;
  if (grpc::Status st = sign(node_id, &cert); !st.ok()) return st;
  api::Node node;
  node.set_id(node_id);
  node.mutable_spec()->set_desired_role(role);
  node.mutable_spec()->set_availability(api::AVAILABILITY_ACTIVE);
  *node.mutable_description() = req->description();
  node.mutable_status()->set_state(api::NODE_STATE_UNKNOWN);
  node.set_role(role);
  node.set_raft_id(req->raft_id());
  node.set_advertise_addr(req->advertise_addr());
  api::StoreBatch batch;
  auto* a = batch.add_actions();
  a->set_kind(api::StoreAction::CREATE);
  *a->mutable_node() = node;
  if (grpc::Status st = m_->Write(batch); !st.ok()) return st;
  SKEP_LOG(info, "ca", "node {} ({}) joined as a {}", node_id, req->description().hostname(),
           role == api::ROLE_MANAGER ? "manager" : "worker");
  answer(node_id, std::move(cert));
  return grpc::Status::OK;
}

grpc::Status CAService::RenewCertificate(grpc::ServerContext* c,
                                         const api::RenewCertificateRequest* req,
                                         api::RenewCertificateResponse* resp) {
  const tls::Peer peer = tls::PeerOf(*c);
  if (!peer.has_certificate) {
    return {StatusCode::UNAUTHENTICATED, "renewing a certificate needs the current one"};
  }
  if (!m_->IsLeader()) return m_->dispatcher().NotLeader();
  if (grpc::Status st = m_->WaitServing(); !st.ok()) return st;
  auto cluster = m_->store().GetCluster();
  auto node = m_->store().GetNode(peer.node_id);
  if (!cluster || !node) {
    return {StatusCode::NOT_FOUND,
            "node " + peer.node_id + " is not a member of this swarm (it was removed)"};
  }
  // The certificate carries the role the node should have; a demoted manager stays a manager
  // until it has left the raft group.
  api::NodeRole role = node->spec().desired_role();
  if (role == api::ROLE_WORKER && !m_->ManagerStatusOf(*node).empty()) role = api::ROLE_MANAGER;
  const char* role_name = role == api::ROLE_MANAGER ? pki::kManagerRole : pki::kWorkerRole;
  std::string cert;
  try {
    cert = pki::SignNodeCertificate(CaKeys(*cluster), req->csr_pem(), node->id(), role_name,
                                    cluster->id(), CertExpiry(*cluster));
  } catch (const pki::PkiError& e) {
    return {StatusCode::INVALID_ARGUMENT, std::string("bad certificate request: ") + e.what()};
  }
  if (node->role() != role) {
    grpc::Status st = m_->UpdateNode(node->id(), [&](api::Node& n) {
      n.set_role(role);
      return grpc::Status::OK;
    });
    if (!st.ok()) return st;
    SKEP_LOG(info, "ca", "node {} now holds a {} certificate", node->id(), role_name);
  }
  resp->set_cert_pem(cert);
  resp->set_role(role);
  return grpc::Status::OK;
}

}  // namespace skep::manager
