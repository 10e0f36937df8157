// The control API's networks: create (allocated at once: subnet, gateway, VNI), list, inspect,
// remove and prune. A network that services use stays.
#include <set>

#include "daemon/common/pki.h"
#include "daemon/manager/allocator/networks.h"
#include "daemon/manager/control_api.h"
#include "daemon/manager/on_leader.h"

namespace skep::manager {

using grpc::StatusCode;

namespace {

grpc::Status Invalid(const std::string& msg) {
  return {StatusCode::INVALID_ARGUMENT, msg};
}

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

grpc::Status ControlApi::ResolveNetwork(const std::string& ref, api::Network* out) const {
  if (ref.empty()) return Invalid("a network name or ID is required");
  return m_->store().View([&](const ReadTx& tx) -> grpc::Status {
    const api::Network* n = tx.network(ref);
    if (n == nullptr) n = tx.network_by_name(ref);
    if (n == nullptr) {
      std::vector<const api::Network*> matches;
      for (const auto* c : tx.networks()) {
        if (c->id().rfind(ref, 0) == 0) matches.push_back(c);
      }
      if (matches.size() > 1) {
        return Invalid("network " + ref + " is ambiguous (" + std::to_string(matches.size()) +
                       " matches found)");
      }
      if (!matches.empty()) n = matches.front();
    }
    if (n == nullptr) return {StatusCode::NOT_FOUND, "network " + ref + " not found"};
    *out = *n;
    return grpc::Status::OK;
  });
}

grpc::Status ControlApi::AttachNetworks(api::ServiceSpec* spec) const {
  std::set<std::string> seen;
  bool ingress_ports = false;
  for (const auto& p : spec->endpoint().ports())
    ingress_ports = ingress_ports || p.publish_mode() == api::PortConfig::INGRESS;
  if (ingress_ports && spec->endpoint().mode() == api::EndpointSpec::DNSRR) {
    return Invalid("port published with ingress mode can't be used with dnsrr mode");
  }
  for (auto& a : *spec->mutable_networks()) {
    api::Network n;
    if (grpc::Status st = ResolveNetwork(a.target(), &n); !st.ok()) return st;
    if (n.spec().ingress()) {
      return Invalid("service cannot be explicitly attached to the ingress network \"" +
                     n.spec().name() + "\"");
    }
    if (!seen.insert(n.id()).second) {
      return Invalid("network " + n.spec().name() + " is given more than once");
    }
    a.set_target(n.id());
  }
  return grpc::Status::OK;
}

grpc::Status ControlApi::CreateNetwork(const api::CreateNetworkRequest& req,
                                       api::CreateNetworkResponse* resp) {
  return OnLeader(&api::Control::Stub::CreateNetwork, req, resp, [&]() -> grpc::Status {
    for (int attempt = 0;; ++attempt) {
      api::Network n;
      n.set_id(pki::RandomId());
      std::string why;
      m_->store().View([&](const ReadTx& tx) {
        const api::Cluster* c = tx.cluster();
        why = allocator::AllocateNetwork(req.spec(), tx.networks(),
                                         c ? c->spec().networks() : api::NetworkSettings(), &n);
      });
      if (!why.empty()) {
        const bool taken = why.find("already exists") != std::string::npos;
        return {taken ? StatusCode::ALREADY_EXISTS : StatusCode::INVALID_ARGUMENT, why};
      }
      api::StoreBatch batch;
      auto* a = batch.add_actions();
      a->set_kind(api::StoreAction::CREATE);
      *a->mutable_network() = n;
      WriteResult r = m_->WriteAndWait(std::move(batch));
      // Another network took the same subnet or VNI meanwhile: allocate again.
      if (r.code == WriteResult::Code::kExists && attempt < 3 && req.spec().ipam_size() == 0) {
        continue;
      }
      if (!r.ok()) return r.ToStatus();
      resp->set_id(n.id());
      return grpc::Status::OK;
    }
  });
}

grpc::Status ControlApi::ListNetworks(const api::ListNetworksRequest& req,
                                      api::ListNetworksResponse* resp) {
  return OnLeader(&api::Control::Stub::ListNetworks, req, resp, [&]() -> grpc::Status {
    std::vector<std::pair<std::string, std::string>> filters;
    for (const auto& f : req.filters()) {
      const size_t eq = f.find('=');
      const std::string key = f.substr(0, eq);
      if (eq == std::string::npos ||
          (key != "id" && key != "name" && key != "label" && key != "driver")) {
        return Invalid("invalid filter '" + f + "': expected id=, name=, label= or driver=");
      }
      filters.emplace_back(key, f.substr(eq + 1));
    }
    m_->store().View([&](const ReadTx& tx) {
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
    return grpc::Status::OK;
  });
}

grpc::Status ControlApi::GetNetwork(const api::NetworkRef& req, api::Network* resp) {
  return OnLeader(&api::Control::Stub::GetNetwork, req, resp,
                  [&] { return ResolveNetwork(req.ref(), resp); });
}

grpc::Status ControlApi::RemoveNetwork(const api::NetworkRef& req, api::Empty* resp) {
  return OnLeader(&api::Control::Stub::RemoveNetwork, req, resp, [&]() -> grpc::Status {
    for (int attempt = 0;; ++attempt) {
      api::Network n;
      if (grpc::Status st = ResolveNetwork(req.ref(), &n); !st.ok()) return st;
      const auto users = m_->store().View([&](const ReadTx& tx) { return UsersOf(tx, n); });
      if (!users.empty()) {
        return {StatusCode::FAILED_PRECONDITION, "network " + n.spec().name() +
                                                     " is in use by service" +
                                                     (users.size() > 1 ? "s " : " ") + Join(users)};
      }
      api::StoreBatch batch;
      auto* a = batch.add_actions();
      a->set_kind(api::StoreAction::REMOVE);
      *a->mutable_network() = n;
      WriteResult r = m_->WriteAndWait(std::move(batch));
      if (r.code == WriteResult::Code::kConflict && attempt < 3) continue;
      return r.ToStatus();
    }
  });
}

grpc::Status ControlApi::PruneNetworks(const api::Empty& req, api::PruneNetworksResponse* resp) {
  return OnLeader(&api::Control::Stub::PruneNetworks, req, resp, [&]() -> grpc::Status {
    std::vector<api::Network> unused;
    m_->store().View([&](const ReadTx& tx) {
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
      // One at a time: a network a service started using meanwhile is left alone.
      if (m_->WriteAndWait(std::move(batch)).ok()) resp->add_removed(n.spec().name());
    }
    return grpc::Status::OK;
  });
}

}  // namespace skep::manager
