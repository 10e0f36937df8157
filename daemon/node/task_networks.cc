#include "daemon/node/task_networks.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <filesystem>

#include "daemon/common/log.h"
#include "daemon/node/task_dns.h"
#include "overlay/gossip/agent.h"

namespace skep::node {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using dataplane::MeshNetwork;
using dataplane::OverlayNetworkInfo;

namespace {

OverlayNetworkInfo InfoOf(const api::Network& n) {
  return {n.id(), n.vni(), n.ipam().subnet(), n.ipam().gateway(), n.spec().ingress()};
}

std::vector<std::string> NetworkIds(const api::Task& t) {
  std::vector<std::string> ids;
  for (const auto& a : t.networks())
    ids.push_back(a.network_id());
  return ids;
}

// A task on an overlay network other than ingress resolves names through the embedded DNS
// server (and its VIPs are balanced in its namespace).
bool UsesServiceDiscovery(const api::Task& t, const std::vector<OverlayNetworkInfo>& nets) {
  return std::any_of(t.networks().begin(), t.networks().end(), [&](const auto& a) {
    return std::any_of(nets.begin(), nets.end(),
                       [&](const auto& n) { return n.id == a.network_id() && !n.ingress; });
  });
}

}  // namespace

TaskNetworks::TaskNetworks(TaskNetworksOptions options, asio::io_context& io,
                           asio::thread_pool& pool)
    : options_(std::move(options)), pool_(pool), bridge_(options_.data_dir) {
  if (options_.vtep.empty()) return;
  overlay_ = std::make_unique<dataplane::OverlayDataplane>(options_.data_dir, options_.vtep);
  dns_ = std::make_unique<TaskDns>(io);
  mesh_ = std::make_unique<dataplane::ServiceMesh>(options_.vtep, overlay_.get(), &bridge_);
  mesh_->on_names = [dns = dns_.get()](const std::string& id, const std::string& netns,
                                       const dataplane::ServiceMesh::Names& names,
                                       bool gone) { dns->OnNames(id, netns, names, gone); };
}

TaskNetworks::~TaskNetworks() = default;

void TaskNetworks::SetPort(uint16_t port) {
  if (overlay_) overlay_->SetPort(port);
}

void TaskNetworks::SetNetworks(const std::vector<api::Network>& networks,
                               const std::vector<api::NetworkAttachment>& node_attachments) {
  std::map<std::string, api::Network> next;
  for (const auto& n : networks)
    next[n.id()] = n;
  node_attachments_ = node_attachments;
  networks_ = std::move(next);
  Want();
}

void TaskNetworks::SetTable(const std::string& network,
                            const std::vector<gossip::TableEntry>& entries) {
  discovery::Endpoints eps;
  for (const auto& e : entries) {
    api::EndpointRecord r;
    if (!r.ParseFromString(e.value) || r.ip().empty() || r.vtep().empty()) {
      SKEP_LOG(warn, "worker", "network {}: a malformed endpoint from {} is ignored", network,
               e.owner);
      continue;
    }
    eps.push_back(std::move(r));
  }
  endpoints_[network] = std::move(eps);
  if (networks_.count(network)) Want();
}

std::vector<OverlayNetworkInfo> TaskNetworks::NetworksOf(const api::Task& task) const {
  std::vector<OverlayNetworkInfo> nets;
  for (const auto& a : task.networks()) {
    if (auto it = networks_.find(a.network_id()); it != networks_.end()) {
      nets.push_back(InfoOf(it->second));
    }
  }
  return nets;
}

void TaskNetworks::Publish(const std::vector<const api::Task*>& tasks,
                           const std::vector<const api::Task*>& serving) {
  if (!options_.gossip) return;
  std::map<std::string, std::map<std::string, std::string>> want;  // network -> key -> value
  std::set<std::string> join;
  for (const api::Task* t : tasks) {
    for (const auto& a : t->networks())
      join.insert(a.network_id());
  }
  for (const api::Task* t : serving) {
    for (const auto& a : t->networks()) {
      if (a.addresses_size() == 0) continue;
      auto n = networks_.find(a.network_id());
      const bool ingress = n != networks_.end() && n->second.spec().ingress();
      want[a.network_id()][t->id()] =
          discovery::EndpointOf(*t, a, options_.vtep, ingress).SerializeAsString();
    }
  }
  for (const auto& a : node_attachments_) {
    if (a.addresses_size() == 0) continue;
    join.insert(a.network_id());
    want[a.network_id()]["node/" + options_.node_id] =
        discovery::NodeEndpoint(options_.node_id, a.addresses(0), options_.vtep)
            .SerializeAsString();
  }
  for (const auto& net : joined_) {
    if (!join.count(net)) {
      options_.gossip->LeaveNetwork(net);  // our entries there go with us
      published_.erase(net);
    }
  }
  for (const auto& net : join) {
    if (!joined_.count(net)) options_.gossip->JoinNetwork(net);
  }
  joined_ = join;
  for (auto& [net, entries] : published_) {
    for (const auto& [key, value] : entries) {
      if (!want[net].count(key)) options_.gossip->Delete(net, key);
    }
  }
  for (const auto& [net, entries] : want) {
    auto& was = published_[net];
    for (const auto& [key, value] : entries) {
      auto it = was.find(key);
      if (it == was.end() || it->second != value) options_.gossip->Put(net, key, value);
    }
  }
  published_ = std::move(want);
}

void TaskNetworks::Want() {
  if (!overlay_) return;
  std::vector<MeshNetwork> want;
  for (const auto& [id, n] : networks_) {
    auto it = endpoints_.find(id);
    want.push_back({InfoOf(n), n.spec().ingress(),
                    it == endpoints_.end() ? discovery::Endpoints{} : it->second});
  }
  {
    MutexLock lock(wanted_mu_);
    wanted_ = std::move(want);
    if (queued_) return;
    queued_ = true;
  }
  asio::post(pool_, [this] { ApplyOverlay(); });
}

void TaskNetworks::ApplyOverlay() {
  MutexLock apply(apply_mu_);
  std::vector<MeshNetwork> want;
  {
    MutexLock lock(wanted_mu_);
    want = wanted_;
    queued_ = false;
  }
  if (!scanned_) {
    // The sandboxes an earlier skepd left: those no longer wanted go below.
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(options_.data_dir + "/netns", ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("ov-", 0) == 0 && name.find('.') == std::string::npos) {
        applied_.insert(name.substr(3));
      }
    }
    scanned_ = true;
  }
  std::set<std::string> ids;
  for (const auto& n : want) {
    ids.insert(n.info.id);
    try {
      overlay_->EnsureNetwork(n.info);
      std::vector<dataplane::OverlayPeer> peers;
      for (const auto& e : n.endpoints) {
        if (e.vtep() != options_.vtep) peers.push_back({e.ip(), e.vtep()});
      }
      overlay_->SetPeers(n.info.id, peers);
    } catch (const std::exception& e) {
      SKEP_LOG(warn, "worker", "overlay network {}: {}", n.info.id, e.what());
    }
  }
  mesh_->SetNetworks(std::move(want));
  mesh_->Apply();
  for (const auto& id : applied_) {
    if (!ids.count(id)) overlay_->RemoveNetwork(id);
  }
  applied_ = std::move(ids);
}

TaskNetworks::Attached TaskNetworks::AttachTask(const api::Task& task,
                                                const std::vector<OverlayNetworkInfo>& nets,
                                                const std::string& task_dir) {
  std::vector<dataplane::PublishedPort> ports;
  for (const auto& p : task.endpoint().ports()) {
    if (p.publish_mode() == api::PortConfig::HOST && p.published_port() != 0) {
      ports.push_back({p.protocol(), p.published_port(), p.target_port()});
    }
  }
  const dataplane::TaskNetwork::Attachment net = bridge_.Attach(task.id(), ports);
  for (int i = 0; i < task.networks_size(); ++i) {
    const auto& a = task.networks(i);
    auto info = std::find_if(nets.begin(), nets.end(),
                             [&](const auto& n) { return n.id == a.network_id(); });
    if (!overlay_ || info == nets.end() || a.addresses_size() == 0) {
      throw std::runtime_error("network " + a.network_id() + " is not known on this node");
    }
    overlay_->EnsureNetwork(*info);
    overlay_->AttachTask(a.network_id(), net.netns_path, "eth" + std::to_string(i + 1),
                         a.addresses(0));
  }
  Attached out{net.netns_path, net.addr, ""};
  if (mesh_ && UsesServiceDiscovery(task, nets)) {
    mesh_->AddTask(task.id(), net.netns_path, NetworkIds(task));
    mesh_->Apply();  // its names are served before it starts
    out.resolv_conf = TaskDns::WriteResolvConf(task_dir);
  } else if (fs::exists("/etc/resolv.conf")) {
    out.resolv_conf = "/etc/resolv.conf";
  }
  return out;
}

void TaskNetworks::DetachTask(const std::string& id) {
  if (mesh_) {
    mesh_->RemoveTask(id);
    mesh_->Apply();
  }
  bridge_.Detach(id);
}

void TaskNetworks::ReattachTask(const api::Task& task) {
  // Which networks are ingress is not known yet (networks come with the session): the mesh
  // leaves tasks on ingress alone itself.
  if (mesh_ && task.networks_size() > 0) {
    mesh_->AddTask(task.id(), options_.data_dir + "/netns/" + task.id(), NetworkIds(task));
  }
}

void TaskNetworks::ApplyMesh() {
  if (mesh_) mesh_->Apply();
}

}  // namespace skep::node
