#include "overlay/dataplane/service_mesh.h"

#include <fstream>
#include <set>
#include <stdexcept>

#include "daemon/common/log.h"
#include "overlay/dataplane/netlink.h"
#include "overlay/dataplane/nft.h"

namespace skep::dataplane {

namespace {

bool SamePorts(const std::vector<PublishedPort>& a, const std::vector<PublishedPort>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].protocol != b[i].protocol || a[i].published != b[i].published ||
        a[i].target != b[i].target) {
      return false;
    }
  }
  return true;
}

std::string PrefixLength(const std::string& subnet) {
  const auto slash = subnet.find('/');
  return slash == std::string::npos ? "32" : subnet.substr(slash + 1);
}

}  // namespace

ServiceMesh::ServiceMesh(std::string vtep, OverlayDataplane* overlay, TaskNetwork* network)
    : vtep_(std::move(vtep)), overlay_(overlay), network_(network) {}

void ServiceMesh::SetNetworks(std::vector<MeshNetwork> networks) {
  MutexLock lock(mu_);
  wanted_.networks.clear();
  for (auto& n : networks)
    wanted_.networks[n.info.id] = std::move(n);
}

void ServiceMesh::AddTask(const std::string& task_id, const std::string& netns,
                          std::vector<std::string> network_ids) {
  MutexLock lock(mu_);
  wanted_.tasks[task_id] = {netns, std::move(network_ids)};
}

void ServiceMesh::RemoveTask(const std::string& task_id) {
  MutexLock lock(mu_);
  wanted_.tasks.erase(task_id);
}

void ServiceMesh::Apply() {
  MutexLock apply(apply_mu_);
  Wanted w;
  {
    MutexLock lock(mu_);
    w = wanted_;
  }
  ApplyTasks(w);
  ApplyIngress(w);
}

void ServiceMesh::ApplyTasks(const Wanted& w) {
  std::set<std::string> active;  // tasks on a known network other than ingress
  for (const auto& [id, t] : w.tasks) {
    std::vector<const discovery::Endpoints*> nets;
    for (const auto& n : t.networks) {
      auto it = w.networks.find(n);
      if (it != w.networks.end() && !it->second.ingress) nets.push_back(&it->second.endpoints);
    }
    if (nets.empty()) continue;
    active.insert(id);
    Applied next{discovery::TaskScript(nets), discovery::NamesFor(nets)};
    auto [it, fresh] = applied_.try_emplace(id);
    Applied& was = it->second;
    if (fresh || next.script != was.script) {
      // An empty script after a non-empty one: the table goes.
      const std::string script = next.script.empty() ? discovery::DeleteScript("skep_lb")
                                                     : next.script;
      try {
        netlink::InNamespace(t.netns, [&] { RunNft(script, "write the task's VIP rules"); });
        was.script = next.script;
      } catch (const std::exception& e) {
        SKEP_LOG(warn, "mesh", "task {}: {}", id, e.what());
        was.script = "(failed)";  // tried again at the next apply
      }
    }
    if (fresh || next.names != was.names) {
      was.names = std::move(next.names);
      if (on_names) on_names(id, t.netns, was.names, false);
    }
  }
  for (auto it = applied_.begin(); it != applied_.end();) {
    if (active.count(it->first)) {
      ++it;
      continue;
    }
    if (on_names) on_names(it->first, "", {}, true);
    it = applied_.erase(it);
  }
}

void ServiceMesh::ApplyIngress(const Wanted& w) {
  const MeshNetwork* ingress = nullptr;
  for (const auto& [id, n] : w.networks) {
    if (n.ingress) ingress = &n;
  }
  std::string cidr;
  if (ingress != nullptr) {
    for (const auto& e : ingress->endpoints) {
      if (e.node_endpoint() && e.vtep() == vtep_) {
        cidr = e.ip() + "/" + PrefixLength(ingress->info.subnet);
      }
    }
  }
  try {
    if (cidr.empty()) {
      if (sandbox_) {
        network_->Detach(kSandbox);
        sandbox_.reset();
      }
      return;
    }
    if (sandbox_ && (sandbox_->network_id != ingress->info.id || sandbox_->cidr != cidr)) {
      network_->Detach(kSandbox);
      sandbox_.reset();
    }
    if (!sandbox_) {
      const TaskNetwork::Attachment a = network_->Attach(kSandbox, {});
      overlay_->EnsureNetwork(ingress->info);
      overlay_->AttachTask(ingress->info.id, a.netns_path, "eth1", cidr);
      netlink::InNamespace(a.netns_path, [] {
        std::ofstream f("/proc/sys/net/ipv4/ip_forward");
        f << "1";
        if (!f) throw std::runtime_error("cannot turn forwarding on in the ingress sandbox");
      });
      sandbox_ = Sandbox{ingress->info.id, cidr, a.netns_path, "", {}};
      SKEP_LOG(info, "mesh", "ingress sandbox at {}", cidr);
    }
    const std::string script = discovery::MeshScript(ingress->endpoints, "eth1");
    if (script != sandbox_->script) {
      netlink::InNamespace(sandbox_->path,
                           [&] { RunNft(script, "write the routing mesh's rules"); });
      sandbox_->script = script;
    }
    std::vector<PublishedPort> ports;
    for (const auto& p : discovery::MeshPorts(ingress->endpoints))
      ports.push_back({p.protocol, p.published, p.published});
    if (!SamePorts(ports, sandbox_->ports)) {
      network_->SetPorts(kSandbox, ports);
      sandbox_->ports = ports;
    }
  } catch (const std::exception& e) {
    SKEP_LOG(warn, "mesh", "routing mesh: {}", e.what());
    if (sandbox_) sandbox_->script = "(failed)";
  }
}

}  // namespace skep::dataplane
