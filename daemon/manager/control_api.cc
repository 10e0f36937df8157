// The control API's swarm and node calls, the gRPC service around ControlApi, and what every
// call shares: the deadline, the writes of a request.
#include "daemon/manager/control_api.h"

#include <algorithm>

#include "daemon/common/pki.h"
#include "daemon/common/proto_bytes.h"
#include "daemon/common/tls.h"
#include "daemon/manager/dispatcher.h"
#include "daemon/manager/on_leader.h"
#include "daemon/manager/task_scheduler.h"
#include "daemon/manager/writes.h"

namespace skep::manager {

namespace {

constexpr size_t kRetiredTokensKept = 10;

std::string Hostname(const api::Node& n) {
  return n.description().hostname();
}

}  // namespace

ControlApi::ControlApi(ServiceContext& ctx, std::shared_ptr<Dispatcher> dispatcher)
    : ctx_(ctx), dispatcher_(std::move(dispatcher)) {}

ControlApi::Task ControlApi::Write(api::StoreBatch batch, const Call& call) {
  batch.set_client_request_id(call.request_id);
  const Leadership l = ctx_.leadership();
  auto write = ProposeUntil(ctx_, std::move(batch), l.term, DeadlineOf(ctx_, call));
  const Status st = co_await std::move(write);
  // Another run of the same request (one a forwarding manager abandoned) applied it first:
  // this one's proposal was refused, or skipped at apply, but the request is done.
  if (!st.ok() && !call.request_id.empty() && ctx_.store().Applied(call.request_id)) {
    co_return Status::Ok();
  }
  co_return st;
}

std::string ControlApi::CreatedId(const Call& call, const std::string& proposed) const {
  const auto applied = ctx_.store().Applied(call.request_id);
  return applied && !applied->created_id.empty() ? applied->created_id : proposed;
}

ControlApi::Task ControlApi::UpdateNodeObject(const std::string& id,
                                              std::function<Status(api::Node&)> modify,
                                              api::Node* updated, const Call& call) {
  // A write that lost a race with another change ("update out of sequence") is made again
  // from the newer copy, a few times.
  for (int attempt = 0;; ++attempt) {
    std::optional<api::Node> n = ctx_.store().GetNode(id);
    if (!n) co_return NotFound("node " + id + " not found");
    const std::string before = CanonicalBytes(*n);
    if (Status st = modify(*n); !st.ok()) co_return st;
    if (CanonicalBytes(*n) == before) {
      if (updated != nullptr) *updated = *n;
      co_return Status::Ok();
    }
    api::StoreBatch batch;
    auto* a = batch.add_actions();
    a->set_kind(api::StoreAction::UPDATE);
    *a->mutable_node() = std::move(*n);
    auto write = Write(std::move(batch), call);
    const Status st = co_await std::move(write);
    if (st.code() == Code::kConflict && attempt < 3) continue;
    if (st.ok() && updated != nullptr) {
      if (auto now = ctx_.store().GetNode(id)) *updated = *now;
    }
    co_return st;
  }
}

ControlApi::Task ControlApi::UpdateClusterObject(std::function<Status(api::Cluster&)> modify,
                                                 const Call& call) {
  for (int attempt = 0;; ++attempt) {
    std::optional<api::Cluster> c = ctx_.store().GetCluster();
    if (!c) co_return Unavailable("the cluster state is not available yet");
    const std::string before = CanonicalBytes(*c);
    if (Status st = modify(*c); !st.ok()) co_return st;
    if (CanonicalBytes(*c) == before) co_return Status::Ok();
    api::StoreBatch batch;
    auto* a = batch.add_actions();
    a->set_kind(api::StoreAction::UPDATE);
    *a->mutable_cluster() = std::move(*c);
    auto write = Write(std::move(batch), call);
    const Status st = co_await std::move(write);
    if (st.code() == Code::kConflict && attempt < 3) continue;
    co_return st;
  }
}

Status ControlApi::Resolve(const std::string& ref, api::Node* out) const {
  if (ref.empty()) return InvalidArgument("a node name or ID is required");
  const auto nodes = ctx_.store().ListNodes();
  for (const auto& n : nodes) {
    if (n.id() == ref) {
      *out = n;
      return Status::Ok();
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
  if (matches.empty()) return NotFound("node " + ref + " not found");
  if (matches.size() > 1) {
    return InvalidArgument("node " + ref + " is ambiguous (" + std::to_string(matches.size()) +
                           " matches found)");
  }
  *out = *matches.front();
  return Status::Ok();
}

api::NodeView ControlApi::View(const api::Node& n) const {
  api::NodeView v;
  *v.mutable_node() = n;
  v.set_manager_status(ctx_.ManagerStatusOf(n));
  if (!v.manager_status().empty()) {
    v.mutable_node()->mutable_manager_status()->set_raft_id(n.raft_id());
    v.mutable_node()->mutable_manager_status()->set_addr(n.advertise_addr());
  }
  return v;
}

std::string ControlApi::SelfRef(const std::string& ref) const {
  // Docker's name for the node the CLI talks to: this manager's, before any forwarding.
  return ref == "self" ? ctx_.self().node_id : ref;
}

// ---- swarm ------------------------------------------------------------------------------------

void ControlApi::InspectSwarm(const api::Empty& req, api::ClusterView* resp, Call call, Done done) {
  Run(SKEP_REMOTE(InspectSwarm), req, resp, std::move(call), std::move(done),
      [this, resp] { return InspectSwarmHere(resp); });
}

ControlApi::Task ControlApi::InspectSwarmHere(api::ClusterView* resp) {
  auto c = ctx_.store().GetCluster();
  if (!c) co_return Unavailable("the cluster state is not available yet");
  c->mutable_root_ca()->clear_key_pem();
  c->mutable_root_ca()->clear_retired_tokens();
  c->clear_network_keys();  // secrets, as the CA's key
  c->clear_registry_auth_key();
  *resp->mutable_cluster() = std::move(*c);
  co_return Status::Ok();
}

void ControlApi::UpdateSwarm(const api::UpdateSwarmRequest& req, api::Empty* resp, Call call,
                             Done done) {
  Run(SKEP_REMOTE(UpdateSwarm), req, resp, call, std::move(done),
      [this, &req, call] { return UpdateSwarmHere(req, call); });
}

namespace {

Status ApplySwarmUpdate(const api::UpdateSwarmRequest& req, api::Cluster& c) {
  auto* spec = c.mutable_spec();
  const int64_t hb =
      req.heartbeat_period_ms() ? req.heartbeat_period_ms() : spec->raft().heartbeat_period_ms();
  const int64_t el =
      req.election_timeout_ms() ? req.election_timeout_ms() : spec->raft().election_timeout_ms();
  if (req.heartbeat_period_ms() && (hb < 50 || hb > 10000)) {
    return InvalidArgument("invalid heartbeat period " + std::to_string(hb) +
                           "ms: it must be between 50ms and 10s");
  }
  if (req.election_timeout_ms() && (el < 150 || el > 60000)) {
    return InvalidArgument("invalid election timeout " + std::to_string(el) +
                           "ms: it must be between 150ms and 60s");
  }
  if ((req.heartbeat_period_ms() || req.election_timeout_ms()) && el < 3 * hb) {
    return InvalidArgument("the election timeout (" + std::to_string(el) +
                           "ms) must be at least three heartbeat periods (" +
                           std::to_string(3 * hb) + "ms)");
  }
  if (req.cert_expiry_s() && req.cert_expiry_s() < 3600) {
    return InvalidArgument("invalid certificate expiry: it must be at least 1h");
  }
  if (req.dispatcher_heartbeat_ms() && req.dispatcher_heartbeat_ms() < 100) {
    return InvalidArgument("invalid dispatcher heartbeat period: it must be at least 100ms");
  }
  if (req.has_task_history_limit() && req.task_history_limit() < 0) {
    return InvalidArgument("invalid task history limit " +
                           std::to_string(req.task_history_limit()) + ": it cannot be negative");
  }
  if (req.heartbeat_period_ms()) spec->mutable_raft()->set_heartbeat_period_ms(hb);
  if (req.election_timeout_ms()) spec->mutable_raft()->set_election_timeout_ms(el);
  if (req.has_task_history_limit()) {
    spec->mutable_orchestration()->set_task_history_limit(req.task_history_limit());
  }
  if (req.cert_expiry_s()) spec->mutable_ca()->set_node_cert_expiry_s(req.cert_expiry_s());
  if (req.dispatcher_heartbeat_ms()) {
    spec->mutable_dispatcher()->set_heartbeat_period_ms(req.dispatcher_heartbeat_ms());
  }
  return Status::Ok();
}

}  // namespace

ControlApi::Task ControlApi::UpdateSwarmHere(const api::UpdateSwarmRequest& req,
                                             const Call& call) {
  if (ctx_.store().Applied(call.request_id)) co_return Status::Ok();
  auto update =
      UpdateClusterObject([&req](api::Cluster& c) { return ApplySwarmUpdate(req, c); }, call);
  co_return co_await std::move(update);
}

void ControlApi::GetJoinToken(const api::JoinTokenRequest& req, api::JoinTokenResponse* resp,
                              Call call, Done done) {
  Run(SKEP_REMOTE(GetJoinToken), req, resp, call, std::move(done),
      [this, &req, resp, call] { return JoinTokenHere(req, resp, call); });
}

ControlApi::Task ControlApi::JoinTokenHere(const api::JoinTokenRequest& req,
                                           api::JoinTokenResponse* resp, const Call& call) {
  if (req.rotate() && !ctx_.store().Applied(call.request_id)) {
    auto rotate = UpdateClusterObject(
        [&req](api::Cluster& c) {
          auto* ca = c.mutable_root_ca();
          auto* tokens = ca->mutable_join_tokens();
          std::string* token = req.role() == api::ROLE_MANAGER ? tokens->mutable_manager()
                                                               : tokens->mutable_worker();
          ca->add_retired_tokens(*token);
          while (static_cast<size_t>(ca->retired_tokens_size()) > kRetiredTokensKept) {
            ca->mutable_retired_tokens()->erase(ca->mutable_retired_tokens()->begin());
          }
          *token = pki::NewJoinToken(ca->digest());
          return Status::Ok();
        },
        call);
    const Status st = co_await std::move(rotate);
    if (!st.ok()) co_return st;
  }
  auto c = ctx_.store().GetCluster();
  if (!c) co_return Unavailable("the cluster state is not available yet");
  resp->set_token(req.role() == api::ROLE_MANAGER ? c->root_ca().join_tokens().manager()
                                                  : c->root_ca().join_tokens().worker());
  // Joining through the manager asked works as well as through the leader.
  resp->set_manager_addr(ctx_.self().advertise_addr);
  co_return Status::Ok();
}

// ---- nodes ------------------------------------------------------------------------------------

void ControlApi::ListNodes(const api::ListNodesRequest& req, api::ListNodesResponse* resp,
                           Call call, Done done) {
  Run(SKEP_REMOTE(ListNodes), req, resp, call,
      [this, resp, done = std::move(done)](const Status& st) {
        for (auto& v : *resp->mutable_nodes())
          v.set_self(v.node().id() == ctx_.self().node_id);
        done(st);
      },
      [this, &req, resp] { return ListNodesHere(req, resp); });
}

ControlApi::Task ControlApi::ListNodesHere(const api::ListNodesRequest& req,
                                           api::ListNodesResponse* resp) {
  struct Filter {
    std::string key, value;
  };
  std::vector<Filter> filters;
  for (const auto& f : req.filters()) {
    const size_t eq = f.find('=');
    if (eq == std::string::npos) {
      co_return InvalidArgument("invalid filter '" + f + "': expected key=value");
    }
    Filter flt{f.substr(0, eq), f.substr(eq + 1)};
    if (flt.key == "role" && flt.value != "manager" && flt.value != "worker") {
      co_return InvalidArgument("invalid filter 'role=" + flt.value +
                                "': the role is manager or worker");
    }
    if (flt.key != "role" && flt.key != "id" && flt.key != "name" && flt.key != "label" &&
        flt.key != "node.label") {
      co_return InvalidArgument("invalid filter '" + f + "': unknown key '" + flt.key +
                                "' (use id, label, name, node.label or role)");
    }
    filters.push_back(flt);
  }
  for (const auto& n : ctx_.store().ListNodes()) {
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
  co_return Status::Ok();
}

void ControlApi::GetNode(const api::NodeRef& in, api::NodeView* resp, Call call, Done done) {
  auto req = std::make_shared<api::NodeRef>(in);
  req->set_ref(SelfRef(in.ref()));
  Run(SKEP_REMOTE(GetNode), *req, resp, call,
      [this, req, resp, done = std::move(done)](const Status& st) {
        resp->set_self(resp->node().id() == ctx_.self().node_id);
        done(st);
      },
      [this, req, resp] { return GetNodeHere(*req, resp); });
}

ControlApi::Task ControlApi::GetNodeHere(const api::NodeRef& req, api::NodeView* resp) {
  api::Node n;
  if (Status st = Resolve(req.ref(), &n); !st.ok()) co_return st;
  *resp = View(n);
  const int64_t now = ctx_.clock().Now();
  ctx_.store().View([&](const ReadTx& tx) {
    const auto load = NodeLoadOf(n, tx, now);
    resp->set_reserved_nano_cpus(load.reserved.nano_cpus);
    resp->set_reserved_memory_bytes(load.reserved.memory_bytes);
    resp->set_tasks(load.total_tasks);
  });
  co_return Status::Ok();
}

void ControlApi::UpdateNode(const api::UpdateNodeRequest& in, api::NodeView* resp, Call call,
                            Done done) {
  auto req = std::make_shared<api::UpdateNodeRequest>(in);
  req->set_ref(SelfRef(in.ref()));
  Run(SKEP_REMOTE(UpdateNode), *req, resp, call, [req, done = std::move(done)](const Status& st) {
    done(st);
  }, [this, req, resp, call] { return UpdateNodeHere(*req, resp, call); });
}

ControlApi::Task ControlApi::UpdateNodeHere(const api::UpdateNodeRequest& req, api::NodeView* resp,
                                            const Call& call) {
  api::Node target;
  if (Status st = Resolve(req.ref(), &target); !st.ok()) co_return st;
  if (ctx_.store().Applied(call.request_id)) {
    *resp = View(target);
    co_return Status::Ok();
  }
  for (const auto& [k, v] : req.label_add()) {
    if (k.empty()) co_return InvalidArgument("invalid label '=" + v + "': the key is empty");
  }
  if (req.set_role() && req.role() == api::ROLE_WORKER &&
      target.spec().desired_role() == api::ROLE_MANAGER) {
    if (auto risk = ctx_.QuorumRiskOfRemoving(target.raft_id(), "demote " + Hostname(target))) {
      co_return FailedPrecondition(*risk);
    }
  }
  api::Node updated;
  auto update = UpdateNodeObject(
      target.id(),
      [&req](api::Node& n) -> Status {
        auto* spec = n.mutable_spec();
        if (req.set_availability()) spec->set_availability(req.availability());
        for (const auto& [k, v] : req.label_add())
          (*spec->mutable_labels())[k] = v;
        for (const auto& k : req.label_rm()) {
          if (spec->labels().count(k) == 0) {
            return InvalidArgument("node " + Hostname(n) + " has no label '" + k + "'");
          }
          spec->mutable_labels()->erase(k);
        }
        if (req.set_role()) spec->set_desired_role(req.role());
        return Status::Ok();
      },
      &updated, call);
  const Status st = co_await std::move(update);
  if (!st.ok()) co_return st;
  *resp = View(updated);
  co_return Status::Ok();
}

void ControlApi::RemoveNode(const api::RemoveNodeRequest& in, api::Empty* resp, Call call,
                            Done done) {
  auto req = std::make_shared<api::RemoveNodeRequest>(in);
  req->set_ref(SelfRef(in.ref()));
  Run(SKEP_REMOTE(RemoveNode), *req, resp, call, [req, done = std::move(done)](const Status& st) {
    done(st);
  }, [this, req, call] { return RemoveNodeHere(*req, call); });
}

ControlApi::Task ControlApi::RemoveNodeHere(const api::RemoveNodeRequest& req, const Call& call) {
  if (ctx_.store().Applied(call.request_id)) co_return Status::Ok();
  for (int attempt = 0;; ++attempt) {
    api::Node n;
    if (Status st = Resolve(req.ref(), &n); !st.ok()) co_return st;
    if (!ctx_.ManagerStatusOf(n).empty() || n.spec().desired_role() == api::ROLE_MANAGER) {
      co_return FailedPrecondition("node " + Hostname(n) +
                                   " is a cluster manager and a member of the raft group; demote "
                                   "it first ('skep node demote " +
                                   Hostname(n) + "')");
    }
    if (!req.force() && n.status().state() != api::NODE_STATE_DOWN) {
      co_return FailedPrecondition("node " + Hostname(n) +
                                   " is not down and can't be removed; stop it first, or use "
                                   "--force to remove it anyway");
    }
    api::StoreBatch batch;
    auto* a = batch.add_actions();
    a->set_kind(api::StoreAction::REMOVE);
    *a->mutable_node() = n;
    auto write = Write(std::move(batch), call);
    const Status st = co_await std::move(write);
    // A status update (a heartbeat's, say) landed in between: remove the newer version.
    if (st.code() != Code::kConflict || attempt >= 3) co_return st;
  }
}

// ---------------------------------------------------------------------------------------------
// The service.

ControlResolver PeerResolver(ServiceContext& ctx, ControlApi& api) {
  return [&ctx, &api](const grpc::ServerContextBase& c, ControlTarget* t) -> Status {
    const tls::Peer p = tls::PeerOf(c);
    if (!p.has_certificate) {
      return {Code::kUnauthenticated, "the control API needs a node certificate"};
    }
    auto node = ctx.store().GetNode(p.node_id);
    if (p.role != pki::kManagerRole || !node || node->role() != api::ROLE_MANAGER) {
      return {Code::kPermissionDenied,
              "the control API is for managers only: node " + p.node_id + " is not one"};
    }
    t->api = &api;
    return Status::Ok();
  };
}

CallInfo CallOf(const grpc::CallbackServerContext& c) {
  CallInfo call;
  const auto& md = c.client_metadata();
  call.forwarded = md.count(kForwarded) > 0;
  if (auto it = md.find(kRequestId); it != md.end()) {
    call.request_id.assign(it->second.data(), it->second.size());
  }
  if (call.request_id.empty()) call.request_id = pki::RandomId();
  const auto deadline = c.deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    call.deadline = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        deadline - std::chrono::system_clock::now());
  }
  return call;
}

#define SKEP_CONTROL(Method, Req, Resp)                                                        \
  grpc::ServerUnaryReactor* ControlService::Method(grpc::CallbackServerContext* c,             \
                                                   const Req* req, Resp* resp) {               \
    auto* reactor = c->DefaultReactor();                                                       \
    ControlTarget t;                                                                           \
    if (Status st = resolve_(*c, &t); !st.ok()) {                                              \
      reactor->Finish(ToGrpc(st));                                                             \
      return reactor;                                                                          \
    }                                                                                          \
    t.api->Method(*req, resp, CallOf(*c),                                              \
                  [reactor, keep = t.keep_alive](const Status& st) { reactor->Finish(ToGrpc(st)); }); \
    return reactor;                                                                            \
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
  if (Status st = resolve_(*c, &t); !st.ok()) return RefuseLogs(st);
  return ServeLogs(t.api, *req, CallOf(*c), t.keep_alive);
}

}  // namespace skep::manager
