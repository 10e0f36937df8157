// The control API's networks: create (allocated at once: subnet, gateway, VNI), list, inspect,
// remove and prune. A network that services use stays.
#include <set>

#include "daemon/common/pki.h"
#include "daemon/manager/allocator/networks.h"
#include "daemon/manager/control_api.h"
#include "daemon/manager/on_leader.h"

namespace skep::manager {

namespace {

// The services whose spec names the network, or that publish ports through the routing mesh
// (which is the ingress network's).
std::vector<std::string> UsersOf(const ReadTx& tx, const api::Network& n) {
  std::vector<std::string> out;
  for (const auto* s : tx.services()) {
    bool uses = false;
    for (const auto& a : s->spec().networks())
      uses = uses || a.target() == n.id();
    if (n.spec().ingress()) {
      for (const auto& p : s->spec().endpoint().ports())
        uses = uses || p.publish_mode() == api::PortConfig::INGRESS;
    }
    if (uses) out.push_back(s->spec().name());
  }
  return out;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

Status ControlApi::ResolveNetwork(const std::string& ref, api::Network* out) const {
  if (ref.empty()) return InvalidArgument("a network name or ID is required");
  return ctx_.store().View([&](const ReadTx& tx) -> Status {
    const api::Network* n = tx.network(ref);
    if (n == nullptr) n = tx.network_by_name(ref);
    if (n == nullptr) {
      std::vector<const api::Network*> matches;
      for (const auto* c : tx.networks()) {
        if (c->id().rfind(ref, 0) == 0) matches.push_back(c);
      }
      if (matches.size() > 1) {
        return InvalidArgument("network " + ref + " is ambiguous (" +
                               std::to_string(matches.size()) + " matches found)");
      }
      if (!matches.empty()) n = matches.front();
    }
    if (n == nullptr) return NotFound("network " + ref + " not found");
    *out = *n;
    return Status::Ok();
  });
}

Status ControlApi::AttachNetworks(api::ServiceSpec* spec) const {
  std::set<std::string> seen;
  bool ingress_ports = false;
  for (const auto& p : spec->endpoint().ports())
    ingress_ports = ingress_ports || p.publish_mode() == api::PortConfig::INGRESS;
  if (ingress_ports && spec->endpoint().mode() == api::EndpointSpec::DNSRR) {
    return InvalidArgument("port published with ingress mode can't be used with dnsrr mode");
  }
  for (auto& a : *spec->mutable_networks()) {
    api::Network n;
    if (Status st = ResolveNetwork(a.target(), &n); !st.ok()) return st;
    if (n.spec().ingress()) {
      return InvalidArgument("service cannot be explicitly attached to the ingress network \"" +
                             n.spec().name() + "\"");
    }
    if (!seen.insert(n.id()).second) {
      return InvalidArgument("network " + n.spec().name() + " is given more than once");
    }
    a.set_target(n.id());
  }
  return Status::Ok();
}

void ControlApi::CreateNetwork(const api::CreateNetworkRequest& req,
                               api::CreateNetworkResponse* resp, Call call, Done done) {
  Run(SKEP_REMOTE(CreateNetwork), req, resp, call, std::move(done),
      [this, &req, resp, call] { return CreateNetworkHere(req, resp, call); });
}

ControlApi::Task ControlApi::CreateNetworkHere(const api::CreateNetworkRequest& req,
                                               api::CreateNetworkResponse* resp,
                                               const Call& call) {
  if (auto done = ctx_.store().Applied(call.request_id)) {
    resp->set_id(done->created_id);
    co_return Status::Ok();
  }
  for (int attempt = 0;; ++attempt) {
    api::Network n;
    n.set_id(pki::RandomId());
    Status st = ctx_.store().View([&](const ReadTx& tx) {
      const api::Cluster* c = tx.cluster();
      return allocator::AllocateNetwork(req.spec(), tx.networks(),
                                        c ? c->spec().networks() : api::NetworkSettings(), &n);
    });
    if (!st.ok()) co_return st;
    api::StoreBatch batch;
    auto* a = batch.add_actions();
    a->set_kind(api::StoreAction::CREATE);
    *a->mutable_network() = n;
    auto write = Write(std::move(batch), call);
    st = co_await std::move(write);
    // Another network took the same subnet or VNI meanwhile: allocate again.
    if (st.code() == Code::kAlreadyExists && attempt < 3 && req.spec().ipam_size() == 0) continue;
    if (!st.ok()) co_return st;
    resp->set_id(CreatedId(call, n.id()));
    co_return Status::Ok();
  }
}

void ControlApi::ListNetworks(const api::ListNetworksRequest& req, api::ListNetworksResponse* resp,
                              Call call, Done done) {
  Run(SKEP_REMOTE(ListNetworks), req, resp, call, std::move(done),
      [this, &req, resp] { return ListNetworksHere(req, resp); });
}

ControlApi::Task ControlApi::ListNetworksHere(const api::ListNetworksRequest& req,
                                              api::ListNetworksResponse* resp) {
  std::vector<std::pair<std::string, std::string>> filters;
  for (const auto& f : req.filters()) {
    const size_t eq = f.find('=');
    const std::string key = f.substr(0, eq);
    if (eq == std::string::npos ||
        (key != "id" && key != "name" && key != "label" && key != "driver")) {
      co_return InvalidArgument("invalid filter '" + f +
                                "': expected id=, name=, label= or driver=");
    }
    filters.emplace_back(key, f.substr(eq + 1));
  }
  ctx_.store().View([&](const ReadTx& tx) {
    for (const auto* n : tx.networks()) {
      bool keep = true;
      for (const auto& [k, v] : filters) {
        if (k == "id") keep = keep && n->id().rfind(v, 0) == 0;
        if (k == "name") keep = keep && n->spec().name().find(v) != std::string::npos;
        if (k == "driver") keep = keep && n->spec().driver() == v;
        if (k == "label") {
          const size_t eq = v.find('=');
          auto it = n->spec().labels().find(v.substr(0, eq));
          keep = keep && it != n->spec().labels().end() &&
                 (eq == std::string::npos || it->second == v.substr(eq + 1));
        }
      }
      if (keep) *resp->add_networks() = *n;
    }
  });
  co_return Status::Ok();
}

void ControlApi::GetNetwork(const api::NetworkRef& req, api::Network* resp, Call call, Done done) {
  Run(SKEP_REMOTE(GetNetwork), req, resp, call, std::move(done),
      [this, &req, resp] { return GetNetworkHere(req, resp); });
}

ControlApi::Task ControlApi::GetNetworkHere(const api::NetworkRef& req, api::Network* resp) {
  co_return ResolveNetwork(req.ref(), resp);
}

void ControlApi::RemoveNetwork(const api::NetworkRef& req, api::Empty* resp, Call call,
                               Done done) {
  Run(SKEP_REMOTE(RemoveNetwork), req, resp, call, std::move(done),
      [this, &req, call] { return RemoveNetworkHere(req, call); });
}

ControlApi::Task ControlApi::RemoveNetworkHere(const api::NetworkRef& req, const Call& call) {
  if (ctx_.store().Applied(call.request_id)) co_return Status::Ok();
  for (int attempt = 0;; ++attempt) {
    api::Network n;
    if (Status st = ResolveNetwork(req.ref(), &n); !st.ok()) co_return st;
    const auto users = ctx_.store().View([&](const ReadTx& tx) { return UsersOf(tx, n); });
    if (!users.empty()) {
      co_return FailedPrecondition("network " + n.spec().name() + " is in use by service" +
                                   (users.size() > 1 ? "s " : " ") + Join(users));
    }
    api::StoreBatch batch;
    auto* a = batch.add_actions();
    a->set_kind(api::StoreAction::REMOVE);
    *a->mutable_network() = n;
    auto write = Write(std::move(batch), call);
    const Status st = co_await std::move(write);
    if (st.code() == Code::kConflict && attempt < 3) continue;
    co_return st;
  }
}

void ControlApi::PruneNetworks(const api::Empty& req, api::PruneNetworksResponse* resp, Call call,
                               Done done) {
  Run(SKEP_REMOTE(PruneNetworks), req, resp, call, std::move(done),
      [this, resp, call] { return PruneNetworksHere(resp, call); });
}

ControlApi::Task ControlApi::PruneNetworksHere(api::PruneNetworksResponse* resp,
                                               const Call& call) {
  std::vector<api::Network> unused;
  ctx_.store().View([&](const ReadTx& tx) {
    for (const auto* n : tx.networks()) {
      // The routing mesh's network is the swarm's own, as in Docker.
      if (!n->spec().ingress() && UsersOf(tx, *n).empty()) unused.push_back(*n);
    }
  });
  for (const auto& n : unused) {
    api::StoreBatch batch;
    auto* a = batch.add_actions();
    a->set_kind(api::StoreAction::REMOVE);
    *a->mutable_network() = n;
    // One at a time, each its own write: a network a service started using meanwhile is left
    // alone.
    Call one = call;
    one.request_id = pki::RandomId();
    auto write = Write(std::move(batch), one);
    if (const Status st = co_await std::move(write); st.ok()) resp->add_removed(n.spec().name());
  }
  co_return Status::Ok();
}

}  // namespace skep::manager
