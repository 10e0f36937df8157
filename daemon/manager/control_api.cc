#include "daemon/manager/control_api.h"

#include <algorithm>

#include "daemon/common/pki.h"
#include "daemon/common/tls.h"
#include "daemon/manager/manager.h"
#include "daemon/manager/on_leader.h"
#include "daemon/manager/task_scheduler.h"

namespace skep::manager {

using grpc::StatusCode;

namespace {

constexpr size_t kRetiredTokensKept = 10;

grpc::Status Invalid(const std::string& msg) {
  return {StatusCode::INVALID_ARGUMENT, msg};
}
grpc::Status Precondition(const std::string& msg) {
  return {StatusCode::FAILED_PRECONDITION, msg};
}

std::string Hostname(const api::Node& n) {
  return n.description().hostname();
}

}  // namespace

grpc::Status ControlApi::Resolve(const std::string& ref, api::Node* out) const {
  if (ref.empty()) return Invalid("a node name or ID is required");
  const auto nodes = m_->store().ListNodes();
  for (const auto& n : nodes) {
    if (n.id() == ref) {
      *out = n;
      return grpc::Status::OK;
    }
  }
  std::vector<const api::Node*> matches;
  for (const auto& n : nodes) {
    if (n.id().rfind(ref, 0) == 0) matches.push_back(&n);
  }
  if (matches.empty()) {
    for (const auto& n : nodes) {
      if (Hostname(n) == ref) matches.push_back(&n);
    }
  }
  if (matches.empty()) return {StatusCode::NOT_FOUND, "node " + ref + " not found"};
  if (matches.size() > 1) {
    return Invalid("node " + ref + " is ambiguous (" + std::to_string(matches.size()) +
                   " matches found)");
  }
  *out = *matches.front();
  return grpc::Status::OK;
}

api::NodeView ControlApi::View(const api::Node& n) const {
  api::NodeView v;
  *v.mutable_node() = n;
  v.set_manager_status(m_->ManagerStatusOf(n));
  if (!v.manager_status().empty()) {
    v.mutable_node()->mutable_manager_status()->set_raft_id(n.raft_id());
    v.mutable_node()->mutable_manager_status()->set_addr(n.advertise_addr());
  }
  return v;
}

grpc::Status ControlApi::InspectSwarm(const api::Empty& req, api::ClusterView* resp) {
  return OnLeader(&api::Control::Stub::InspectSwarm, req, resp, [&]() -> grpc::Status {
    auto c = m_->store().GetCluster();
    if (!c) return {StatusCode::UNAVAILABLE, "the cluster state is not available yet"};
    c->mutable_root_ca()->clear_key_pem();
    c->mutable_root_ca()->clear_retired_tokens();
    c->clear_network_keys();  // secrets, as the CA's key
    c->clear_registry_auth_key();
    *resp->mutable_cluster() = *c;
    return grpc::Status::OK;
  });
}

grpc::Status ControlApi::UpdateSwarm(const api::UpdateSwarmRequest& req, api::Empty* resp) {
  return OnLeader(&api::Control::Stub::UpdateSwarm, req, resp,
                  [&] { return UpdateSwarmHere(req); });
}

grpc::Status ControlApi::UpdateSwarmHere(const api::UpdateSwarmRequest& req) {
  return m_->UpdateCluster([&](api::Cluster& c) -> grpc::Status {
    auto* spec = c.mutable_spec();
    const int64_t hb =
        req.heartbeat_period_ms() ? req.heartbeat_period_ms() : spec->raft().heartbeat_period_ms();
    const int64_t el =
        req.election_timeout_ms() ? req.election_timeout_ms() : spec->raft().election_timeout_ms();
    if (req.heartbeat_period_ms() && (hb < 50 || hb > 10000)) {
      return Invalid("invalid heartbeat period " + std::to_string(hb) +
                     "ms: it must be between 50ms and 10s");
    }
    if (req.election_timeout_ms() && (el < 150 || el > 60000)) {
      return Invalid("invalid election timeout " + std::to_string(el) +
                     "ms: it must be between 150ms and 60s");
    }
    if ((req.heartbeat_period_ms() || req.election_timeout_ms()) && el < 3 * hb) {
      return Invalid("the election timeout (" + std::to_string(el) +
                     "ms) must be at least three heartbeat periods (" + std::to_string(3 * hb) +
                     "ms)");
    }
    if (req.cert_expiry_s() && req.cert_expiry_s() < 3600) {
      return Invalid("invalid certificate expiry: it must be at least 1h");
    }
    if (req.dispatcher_heartbeat_ms() && req.dispatcher_heartbeat_ms() < 100) {
      return Invalid("invalid dispatcher heartbeat period: it must be at least 100ms");
    }
    if (req.heartbeat_period_ms()) spec->mutable_raft()->set_heartbeat_period_ms(hb);
    if (req.election_timeout_ms()) spec->mutable_raft()->set_election_timeout_ms(el);
    if (req.has_task_history_limit()) {
      if (req.task_history_limit() < 0) {
        return Invalid("invalid task history limit " + std::to_string(req.task_history_limit()) +
                       ": it cannot be negative");
      }
      spec->mutable_orchestration()->set_task_history_limit(req.task_history_limit());
    }
    if (req.cert_expiry_s()) spec->mutable_ca()->set_node_cert_expiry_s(req.cert_expiry_s());
    if (req.dispatcher_heartbeat_ms()) {
      spec->mutable_dispatcher()->set_heartbeat_period_ms(req.dispatcher_heartbeat_ms());
    }
    return grpc::Status::OK;
  });
}

grpc::Status ControlApi::GetJoinToken(const api::JoinTokenRequest& req,
                                      api::JoinTokenResponse* resp) {
  return OnLeader(&api::Control::Stub::GetJoinToken, req, resp, [&] {
    grpc::Status st = JoinToken(req, resp);
    // Joining through this manager works as well as through the leader.
    resp->set_manager_addr(m_->options().advertise_addr);
    return st;
  });
}

grpc::Status ControlApi::JoinToken(const api::JoinTokenRequest& req, api::JoinTokenResponse* resp) {
  if (req.rotate()) {
    grpc::Status st = m_->UpdateCluster([&](api::Cluster& c) -> grpc::Status {
      auto* ca = c.mutable_root_ca();
      auto* tokens = ca->mutable_join_tokens();
      std::string* token =
          req.role() == api::ROLE_MANAGER ? tokens->mutable_manager() : tokens->mutable_worker();
      ca->add_retired_tokens(*token);
      while (static_cast<size_t>(ca->retired_tokens_size()) > kRetiredTokensKept) {
        ca->mutable_retired_tokens()->erase(ca->mutable_retired_tokens()->begin());
      }
      *token = pki::NewJoinToken(ca->digest());
      return grpc::Status::OK;
    });
    if (!st.ok()) return st;
  }
  auto c = m_->store().GetCluster();
  if (!c) return {StatusCode::UNAVAILABLE, "the cluster state is not available yet"};
  resp->set_token(req.role() == api::ROLE_MANAGER ? c->root_ca().join_tokens().manager()
                                                  : c->root_ca().join_tokens().worker());
  return grpc::Status::OK;
}

grpc::Status ControlApi::ListNodes(const api::ListNodesRequest& req, api::ListNodesResponse* resp) {
  grpc::Status st =
      OnLeader(&api::Control::Stub::ListNodes, req, resp, [&] { return ListNodesHere(req, resp); });
  for (auto& v : *resp->mutable_nodes())
    v.set_self(v.node().id() == m_->options().node_id);
  return st;
}

grpc::Status ControlApi::ListNodesHere(const api::ListNodesRequest& req,
                                       api::ListNodesResponse* resp) {
  struct Filter {
    std::string key, value;
  };
  std::vector<Filter> filters;
  for (const auto& f : req.filters()) {
    const size_t eq = f.find('=');
    if (eq == std::string::npos) return Invalid("invalid filter '" + f + "': expected key=value");
    Filter flt{f.substr(0, eq), f.substr(eq + 1)};
    if (flt.key == "role" && flt.value != "manager" && flt.value != "worker") {
      return Invalid("invalid filter 'role=" + flt.value + "': the role is manager or worker");
    }
    if (flt.key != "role" && flt.key != "id" && flt.key != "name" && flt.key != "label" &&
        flt.key != "node.label") {
      return Invalid("invalid filter '" + f + "': unknown key '" + flt.key +
                     "' (use id, label, name, node.label or role)");
    }
    filters.push_back(flt);
  }
  for (const auto& n : m_->store().ListNodes()) {
    bool keep = true;
    for (const auto& f : filters) {
      if (f.key == "role") {
        keep = keep && (f.value == "manager") == (n.role() == api::ROLE_MANAGER);
      } else if (f.key == "id") {
        keep = keep && n.id().rfind(f.value, 0) == 0;
      } else if (f.key == "name") {
        keep = keep && Hostname(n).find(f.value) != std::string::npos;
      } else {
        const auto& labels = f.key == "label" ? n.description().engine_labels() : n.spec().labels();
        const size_t eq = f.value.find('=');
        const std::string k = f.value.substr(0, eq);
        auto it = labels.find(k);
        keep = keep && it != labels.end() &&
               (eq == std::string::npos || it->second == f.value.substr(eq + 1));
      }
    }
    if (keep) *resp->add_nodes() = View(n);
  }
  return grpc::Status::OK;
}

std::string ControlApi::SelfRef(const std::string& ref) const {
  // Docker's name for the node the CLI talks to: this manager's, before any forwarding.
  return ref == "self" ? m_->options().node_id : ref;
}

grpc::Status ControlApi::GetNode(const api::NodeRef& in, api::NodeView* resp) {
  api::NodeRef req = in;
  req.set_ref(SelfRef(in.ref()));
  grpc::Status st = OnLeader(&api::Control::Stub::GetNode, req, resp, [&]() -> grpc::Status {
    api::Node n;
    if (grpc::Status st = Resolve(req.ref(), &n); !st.ok()) return st;
    *resp = View(n);
    m_->store().View([&](const ReadTx& tx) {
      const auto load = NodeLoadOf(n, tx, 0);
      resp->set_reserved_nano_cpus(load.reserved.nano_cpus);
      resp->set_reserved_memory_bytes(load.reserved.memory_bytes);
      resp->set_tasks(load.total_tasks);
    });
    return grpc::Status::OK;
  });
  resp->set_self(resp->node().id() == m_->options().node_id);
  return st;
}

grpc::Status ControlApi::UpdateNode(const api::UpdateNodeRequest& in, api::NodeView* resp) {
  api::UpdateNodeRequest req = in;
  req.set_ref(SelfRef(in.ref()));
  return OnLeader(&api::Control::Stub::UpdateNode, req, resp,
                  [&] { return UpdateNodeHere(req, resp); });
}

grpc::Status ControlApi::UpdateNodeHere(const api::UpdateNodeRequest& req, api::NodeView* resp) {
  api::Node target;
  if (grpc::Status st = Resolve(req.ref(), &target); !st.ok()) return st;
  for (const auto& [k, v] : req.label_add()) {
    if (k.empty()) return Invalid("invalid label '=" + v + "': the key is empty");
  }
  if (req.set_role() && req.role() == api::ROLE_WORKER &&
      target.spec().desired_role() == api::ROLE_MANAGER) {
    if (auto risk = m_->QuorumRiskOfRemoving(target.raft_id(), "demote " + Hostname(target))) {
      return Precondition(*risk);
    }
  }
  api::Node updated;
  grpc::Status st = m_->UpdateNode(
      target.id(),
      [&](api::Node& n) -> grpc::Status {
        auto* spec = n.mutable_spec();
        if (req.set_availability()) spec->set_availability(req.availability());
        for (const auto& [k, v] : req.label_add())
          (*spec->mutable_labels())[k] = v;
        for (const auto& k : req.label_rm()) {
          if (spec->labels().count(k) == 0) {
            return Invalid("node " + Hostname(n) + " has no label '" + k + "'");
          }
          spec->mutable_labels()->erase(k);
        }
        if (req.set_role()) spec->set_desired_role(req.role());
        return grpc::Status::OK;
      },
      &updated);
  if (!st.ok()) return st;
  *resp = View(updated);
  return grpc::Status::OK;
}

grpc::Status ControlApi::RemoveNode(const api::RemoveNodeRequest& in, api::Empty* resp) {
  api::RemoveNodeRequest req = in;
  req.set_ref(SelfRef(in.ref()));
  return OnLeader(&api::Control::Stub::RemoveNode, req, resp, [&] { return RemoveNodeHere(req); });
}

grpc::Status ControlApi::RemoveNodeHere(const api::RemoveNodeRequest& req) {
  api::Node n;
  if (grpc::Status st = Resolve(req.ref(), &n); !st.ok()) return st;
  if (!m_->ManagerStatusOf(n).empty() || n.spec().desired_role() == api::ROLE_MANAGER) {
    return Precondition("node " + Hostname(n) + " is a cluster manager and a member of the raft " +
                        "group; demote it first ('skep node demote " + Hostname(n) + "')");
  }
  if (!req.force() && n.status().state() != api::NODE_STATE_DOWN) {
    return Precondition("node " + Hostname(n) + " is not down and can't be removed; stop it " +
                        "first, or use --force to remove it anyway");
  }
  for (int attempt = 0;; ++attempt) {
    api::StoreBatch batch;
    auto* a = batch.add_actions();
    a->set_kind(api::StoreAction::REMOVE);
    *a->mutable_node() = n;
    grpc::Status st = m_->Write(batch);
    // A status update (a heartbeat's, say) landed in between: remove the newer version.
    const bool conflict = st.error_code() == StatusCode::FAILED_PRECONDITION &&
                          st.error_message().rfind("update out of sequence", 0) == 0;
    auto now = m_->store().GetNode(n.id());
    if (!conflict || attempt >= 3 || !now) return st;
    n = *now;
  }
}

// ---------------------------------------------------------------------------------------------
// The service.

ControlResolver PeerResolver(Manager* manager) {
  return [manager](const grpc::ServerContextBase& c, ControlTarget* t) -> grpc::Status {
    const tls::Peer p = tls::PeerOf(c);
    if (!p.has_certificate) {
      return {StatusCode::UNAUTHENTICATED, "the control API needs a node certificate"};
    }
    auto node = manager->store().GetNode(p.node_id);
    if (p.role != pki::kManagerRole || !node || node->role() != api::ROLE_MANAGER) {
      return {StatusCode::PERMISSION_DENIED,
              "the control API is for managers only: node " + p.node_id + " is not one"};
    }
    // A forwarded request goes no further: two managers with stale views of the leader would
    // otherwise pass it back and forth.
    if (c.client_metadata().count(kForwardedHeader) && !manager->IsLeader()) {
      return {StatusCode::UNAVAILABLE,
              "leadership moved while the request was forwarded; try again"};
    }
    t->api = &manager->control();
    return grpc::Status::OK;
  };
}

#define SKEP_CONTROL(Method, Req, Resp)                                                     \
  grpc::Status ControlService::Method(grpc::ServerContext* c, const Req* req, Resp* resp) { \
    ControlTarget t;                                                                        \
    if (grpc::Status st = resolve_(*c, &t); !st.ok()) return st;                            \
    return t.api->Method(*req, resp);                                                       \
  }

SKEP_CONTROL(InspectSwarm, api::Empty, api::ClusterView)
SKEP_CONTROL(UpdateSwarm, api::UpdateSwarmRequest, api::Empty)
SKEP_CONTROL(GetJoinToken, api::JoinTokenRequest, api::JoinTokenResponse)
SKEP_CONTROL(ListNodes, api::ListNodesRequest, api::ListNodesResponse)
SKEP_CONTROL(GetNode, api::NodeRef, api::NodeView)
SKEP_CONTROL(UpdateNode, api::UpdateNodeRequest, api::NodeView)
SKEP_CONTROL(RemoveNode, api::RemoveNodeRequest, api::Empty)
SKEP_CONTROL(CreateService, api::CreateServiceRequest, api::CreateServiceResponse)
SKEP_CONTROL(ListServices, api::ListServicesRequest, api::ListServicesResponse)
SKEP_CONTROL(GetService, api::ServiceRef, api::ServiceView)
SKEP_CONTROL(UpdateService, api::UpdateServiceRequest, api::ServiceView)
SKEP_CONTROL(RemoveService, api::ServiceRef, api::Empty)
SKEP_CONTROL(ListTasks, api::ListTasksRequest, api::ListTasksResponse)
SKEP_CONTROL(ExplainService, api::ServiceRef, api::ExplainServiceResponse)
SKEP_CONTROL(CreateNetwork, api::CreateNetworkRequest, api::CreateNetworkResponse)
SKEP_CONTROL(ListNetworks, api::ListNetworksRequest, api::ListNetworksResponse)
SKEP_CONTROL(GetNetwork, api::NetworkRef, api::Network)
SKEP_CONTROL(RemoveNetwork, api::NetworkRef, api::Empty)
SKEP_CONTROL(PruneNetworks, api::Empty, api::PruneNetworksResponse)
#undef SKEP_CONTROL

grpc::ServerWriteReactor<api::ServiceLogsMessage>* ControlService::ServiceLogs(
    grpc::CallbackServerContext* c, const api::ServiceLogsRequest* req) {
  ControlTarget t;
  if (grpc::Status st = resolve_(*c, &t); !st.ok()) return RefuseLogs(st);
  return ServeLogs(t.api, *req, t.keep_alive);
}

}  // namespace skep::manager
