#include "daemon/manager/ca_service.h"

#include "daemon/common/log.h"
#include "daemon/common/pki.h"
#include "daemon/common/tls.h"
#include "daemon/manager/defaults.h"
#include "daemon/manager/on_leader.h"
#include "daemon/manager/writes.h"

namespace skep::manager {

namespace {

std::chrono::seconds CertExpiry(const api::Cluster& c) {
  const int64_t s = c.spec().ca().node_cert_expiry_s();
  return std::chrono::seconds(s > 0 ? s : kNodeCertExpiryS);
}

pki::KeyPair CaKeys(const api::Cluster& c) {
  return {c.root_ca().key_pem(), c.root_ca().cert_pem()};
}

// The leader's part of a join: the token decides the role; the node is recorded with a new ID.
asio::awaitable<Status> Join(ServiceContext& ctx, const api::JoinNodeRequest& req,
                             api::JoinNodeResponse* resp) {
  auto cluster = ctx.store().GetCluster();
  if (!cluster) co_return Unavailable("the cluster state is not available yet");
  pki::ParsedToken token;
  try {
    token = pki::ParseJoinToken(req.token());
  } catch (const pki::PkiError& e) {
    co_return InvalidArgument(e.what());
  }
  const auto& ca = cluster->root_ca();
  if (token.ca_digest != ca.digest()) {
    co_return Status(Code::kPermissionDenied,
                     "the join token is for another swarm: the CA digest it carries does not "
                     "match this swarm's root CA");
  }
  api::NodeRole role;
  if (req.token() == ca.join_tokens().worker()) {
    role = api::ROLE_WORKER;
  } else if (req.token() == ca.join_tokens().manager()) {
    role = api::ROLE_MANAGER;
  } else {
    for (const auto& t : ca.retired_tokens()) {
      if (t == req.token()) {
        co_return Status(Code::kPermissionDenied,
                         "the join token was rotated and is no longer valid; get the current one "
                         "with 'skep swarm join-token worker' (or manager) on a manager");
      }
    }
    co_return Status(Code::kPermissionDenied, "invalid join token: this swarm never issued it");
  }
  if (req.raft_id() == 0) co_return InvalidArgument("raft id 0 is reserved");
  if (req.advertise_addr().empty()) {
    co_return InvalidArgument("the joining node must give its advertise address");
  }
  const char* role_name = role == api::ROLE_MANAGER ? pki::kManagerRole : pki::kWorkerRole;
  auto sign = [&](const std::string& node_id, std::string* cert) -> Status {
    try {
      *cert = pki::SignNodeCertificate(CaKeys(*cluster), req.csr_pem(), node_id, role_name,
                                       cluster->id(), CertExpiry(*cluster));
    } catch (const pki::PkiError& e) {
      return InvalidArgument(std::string("bad certificate request: ") + e.what());
    }
    return Status::Ok();
  };
  auto answer = [&](const std::string& node_id, std::string cert) {
    resp->set_node_id(node_id);
    resp->set_cert_pem(std::move(cert));
    resp->set_role(role);
    resp->set_cluster_id(cluster->id());
    for (const auto& p : ctx.Managers())
      *resp->add_managers() = p;
  };
  if (auto existing = ctx.store().NodeByRaftId(req.raft_id())) {
    // The joining node retries with the same raft id when an earlier answer was lost (a
    // timeout, a leader change): if that earlier attempt created the node, and the node has
    // never opened a session since, this is the same join, and it gets that node's identity
    // rather than a second node object.
    const bool same_join = existing->role() == role &&
                           existing->advertise_addr() == req.advertise_addr() &&
                           existing->description().hostname() == req.description().hostname() &&
                           existing->status().addr().empty();
    if (!same_join) {
      co_return AlreadyExists("raft id " + std::to_string(req.raft_id()) + " is taken; join again");
    }
    std::string cert;
    if (Status st = sign(existing->id(), &cert); !st.ok()) co_return st;
    SKEP_LOG(info, "ca", "node {} ({}) joined again after an unanswered attempt", existing->id(),
             req.description().hostname());
    answer(existing->id(), std::move(cert));
    co_return Status::Ok();
  }
  const std::string node_id = pki::RandomId();
  std::string cert;
  if (Status st = sign(node_id, &cert); !st.ok()) co_return st;
  api::Node node;
  node.set_id(node_id);
  node.mutable_spec()->set_desired_role(role);
  node.mutable_spec()->set_availability(api::AVAILABILITY_ACTIVE);
  *node.mutable_description() = req.description();
  node.mutable_status()->set_state(api::NODE_STATE_UNKNOWN);
  node.set_role(role);
  node.set_raft_id(req.raft_id());
  node.set_advertise_addr(req.advertise_addr());
  api::StoreBatch batch;
  auto* a = batch.add_actions();
  a->set_kind(api::StoreAction::CREATE);
  *a->mutable_node() = node;
  const Leadership l = ctx.leadership();
  auto write = ProposeUntil(ctx, std::move(batch), l.term, ctx.clock().SteadyNow() + ctx.LeaderWait());
  const Status st = co_await std::move(write);
  if (!st.ok()) co_return st;
  SKEP_LOG(info, "ca", "node {} ({}) joined as a {}", node_id, req.description().hostname(),
           role == api::ROLE_MANAGER ? "manager" : "worker");
  answer(node_id, std::move(cert));
  co_return Status::Ok();
}

asio::awaitable<Status> RenewHere(ServiceContext& ctx, std::string node_id, std::string csr_pem,
                                  api::RenewCertificateResponse* resp) {
  auto cluster = ctx.store().GetCluster();
  auto node = ctx.store().GetNode(node_id);
  if (!cluster || !node) {
    co_return NotFound("node " + node_id + " is not a member of this swarm (it was removed)");
  }
  api::NodeRole role = node->spec().desired_role();
  if (role == api::ROLE_WORKER && !ctx.ManagerStatusOf(*node).empty()) role = api::ROLE_MANAGER;
  const char* role_name = role == api::ROLE_MANAGER ? pki::kManagerRole : pki::kWorkerRole;
  std::string cert;
  try {
    cert = pki::SignNodeCertificate(CaKeys(*cluster), csr_pem, node->id(), role_name,
                                    cluster->id(), CertExpiry(*cluster));
  } catch (const pki::PkiError& e) {
    co_return InvalidArgument(std::string("bad certificate request: ") + e.what());
  }
  if (node->role() != role) {
    auto update = Await<Status>([&ctx, id = node->id(), role](Completion<Status> complete) {
      UpdateNode(ctx, ctx.MakeStrand(), id,
                 [role](api::Node& n) {
                   n.set_role(role);
                   return Status::Ok();
                 },
                 [complete](const Status& s, const api::Node&) { complete(s); });
    });
    const Status st = co_await std::move(update);
    if (!st.ok()) co_return st;
    SKEP_LOG(info, "ca", "node {} now holds a {} certificate", node->id(), role_name);
  }
  resp->set_cert_pem(cert);
  resp->set_role(role);
  co_return Status::Ok();
}

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* c, const Status& st) {
  auto* r = c->DefaultReactor();
  r->Finish(ToGrpc(st));
  return r;
}

}  // namespace

void Renew(ServiceContext& ctx, std::string node_id, std::string csr_pem,
           api::RenewCertificateResponse* resp, Done done) {
  Spawn(ctx.MakeStrand(), RenewHere(ctx, std::move(node_id), std::move(csr_pem), resp),
        std::move(done));
}

grpc::ServerUnaryReactor* CAService::GetRootCACertificate(grpc::CallbackServerContext* c,
                                                          const api::GetRootCARequest* req,
                                                          api::GetRootCAResponse* resp) {
  if (auto cluster = ctx_.store().GetCluster()) {
    resp->set_cert_pem(cluster->root_ca().cert_pem());
    return Answer(c, Status::Ok());
  }
  // A manager that joined moments ago may not have received the state yet; the leader has it.
  auto* reactor = c->DefaultReactor();
  RunOnLeader<api::CA>(
      ctx_, SKEP_REMOTE(GetRootCACertificate), *req, resp, CallOf(*c),
      [reactor](const Status& st) { reactor->Finish(ToGrpc(st)); },
      [this, resp]() -> asio::awaitable<Status> {
        auto cluster = ctx_.store().GetCluster();
        if (!cluster) co_return Unavailable("this manager has no cluster state yet; try again");
        resp->set_cert_pem(cluster->root_ca().cert_pem());
        co_return Status::Ok();
      });
  return reactor;
}

grpc::ServerUnaryReactor* CAService::JoinNode(grpc::CallbackServerContext* c,
                                              const api::JoinNodeRequest* req,
                                              api::JoinNodeResponse* resp) {
  // Joining needs a write; the leader decides. The token is checked there.
  auto* reactor = c->DefaultReactor();
  RunOnLeader<api::CA>(
      ctx_, SKEP_REMOTE(JoinNode), *req, resp, CallOf(*c),
      [reactor](const Status& st) { reactor->Finish(ToGrpc(st)); },
      [this, req, resp] { return Join(ctx_, *req, resp); });
  return reactor;
}

grpc::ServerUnaryReactor* CAService::RenewCertificate(grpc::CallbackServerContext* c,
                                                      const api::RenewCertificateRequest* req,
                                                      api::RenewCertificateResponse* resp) {
  const tls::Peer peer = tls::PeerOf(*c);
  if (!peer.has_certificate) {
    return Answer(c, {Code::kUnauthenticated, "renewing a certificate needs the current one"});
  }
  // The node asks the manager its session is with: the leader, or it is told where that is.
  const Leadership l = ctx_.leadership();
  if (!l.leader) {
    if (!l.Reachable()) return Answer(c, ctx_.NoLeaderStatus());
    return Answer(c, Status::NotLeader("not the leader; the leader is at " + l.leader_info->addr,
                                       l.leader_info->addr));
  }
  if (!l.serving) return Answer(c, Unavailable("the new leader is still catching up; try again"));
  auto* reactor = c->DefaultReactor();
  Renew(ctx_, peer.node_id, req->csr_pem(), resp,
        [reactor](const Status& st) { reactor->Finish(ToGrpc(st)); });
  return reactor;
}

}  // namespace skep::manager
