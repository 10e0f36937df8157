#include "daemon/manager/allocator/allocator.h"

#include <algorithm>
#include <map>
#include <optional>

#include "daemon/common/proto_bytes.h"
#include "daemon/manager/allocator/ipam.h"

namespace skep::allocator {

namespace {

// "10.0.9.5/24" -> 10.0.9.5
std::optional<uint32_t> AddrOf(const std::string& cidr) {
  return ParseAddr(std::string_view(cidr).substr(0, cidr.find('/')));
}

bool Ended(const api::Task& t) {
  return t.status().state() > api::TASK_RUNNING;
}

class Spaces {
 public:
  explicit Spaces(const std::vector<const api::Network*>& networks) {
    for (const auto* n : networks) {
      std::string err;
      auto subnet = ParsePrefix(n->ipam().subnet(), &err);
      auto gateway = ParseAddr(n->ipam().gateway());
      if (!subnet || !gateway) continue;  // not allocated: nothing can join it
      std::optional<Prefix> range;
      if (!n->ipam().ip_range().empty()) range = ParsePrefix(n->ipam().ip_range(), &err);
      spaces_.emplace(n->id(), Entry{AddressSpace(*subnet, range, *gateway), n->spec().name()});
      if (n->spec().ingress()) ingress_ = n->id();
    }
  }
  const std::string& ingress() const { return ingress_; }
  bool Has(const std::string& id) const { return spaces_.count(id) > 0; }
  void Reserve(const api::NetworkAttachment& a) {
    auto it = spaces_.find(a.network_id());
    if (it == spaces_.end()) return;
    for (const auto& addr : a.addresses()) {
      if (auto v = AddrOf(addr)) it->second.space.Reserve(*v);
    }
  }
  void Release(const api::NetworkAttachment& a) {
    auto it = spaces_.find(a.network_id());
    if (it == spaces_.end()) return;
    for (const auto& addr : a.addresses()) {
      if (auto v = AddrOf(addr)) it->second.space.Release(*v);
    }
  }
  // An address on the network, in CIDR notation; nullopt when it is full.
  std::optional<std::string> Allocate(const std::string& id) {
    auto it = spaces_.find(id);
    if (it == spaces_.end()) return std::nullopt;
    auto a = it->second.space.Allocate();
    if (!a) return std::nullopt;
    return FormatAddr(*a) + "/" + std::to_string(it->second.space.subnet().len);
  }
  std::string Name(const std::string& id) const {
    auto it = spaces_.find(id);
    return it == spaces_.end() ? id : it->second.name;
  }

 private:
  struct Entry {
    AddressSpace space;
    std::string name;
  };
  std::map<std::string, Entry> spaces_;
  std::string ingress_;
};

api::NetworkAttachment Attachment(const std::string& network, const std::string& addr) {
  api::NetworkAttachment a;
  a.set_network_id(network);
  a.add_addresses(addr);
  return a;
}

}  // namespace

std::vector<std::string> NetworksOf(const api::ServiceSpec& spec, const std::string& ingress_id) {
  std::vector<std::string> out;
  for (const auto& a : spec.networks())
    out.push_back(a.target());
  const bool meshed =
      std::any_of(spec.endpoint().ports().begin(), spec.endpoint().ports().end(),
                  [](const auto& p) { return p.publish_mode() == api::PortConfig::INGRESS; });
  if (meshed && !ingress_id.empty()) out.push_back(ingress_id);
  return out;
}

AllocationPlan PlanAllocations(const std::vector<const api::Network*>& networks,
                               const std::vector<const api::Service*>& services,
                               const std::vector<const api::Task*>& tasks,
                               const std::vector<const api::Node*>& nodes, int64_t now) {
  Spaces spaces(networks);
  for (const auto* s : services) {
    for (const auto& v : s->virtual_ips())
      spaces.Reserve(v);
  }
  for (const auto* n : nodes) {
    for (const auto& a : n->attachments())
      spaces.Reserve(a);
  }
  for (const auto* t : tasks) {
    if (Ended(*t)) continue;  // an ended task's addresses are free again
    for (const auto& a : t->networks())
      spaces.Reserve(a);
  }

  AllocationPlan plan;
  // Every node has an address on the ingress network, and on no other.
  const std::string& ingress = spaces.ingress();
  for (const auto* n : nodes) {
    // Most passes find every node as it should be: no copy for those.
    const bool settled = ingress.empty() ? n->attachments_size() == 0
                                         : n->attachments_size() == 1 &&
                                               n->attachments(0).network_id() == ingress;
    if (settled) continue;
    api::Node next = *n;
    next.clear_attachments();
    for (const auto& a : n->attachments()) {
      if (a.network_id() == ingress && next.attachments_size() == 0) {
        *next.add_attachments() = a;
      } else {
        spaces.Release(a);
      }
    }
    if (next.attachments_size() == 0 && !ingress.empty()) {
      if (auto addr = spaces.Allocate(ingress)) *next.add_attachments() = Attachment(ingress, *addr);
    }
    if (!SameMessage(next, *n)) plan.nodes.push_back(std::move(next));
  }

  std::map<std::string, const api::Service*> by_id;  // as planned
  plan.services.reserve(services.size());  // by_id points into it
  for (const auto* s : services) {
    by_id[s->id()] = s;
    // A virtual IP on each network the service is on (none in dnsrr mode); the others go.
    std::vector<std::string> want;
    if (s->spec().endpoint().mode() == api::EndpointSpec::VIP) {
      want = NetworksOf(s->spec(), spaces.ingress());
    }
    api::Service next = *s;
    next.clear_virtual_ips();
    bool changed = false;
    for (const auto& v : s->virtual_ips()) {
      if (std::find(want.begin(), want.end(), v.network_id()) != want.end()) {
        *next.add_virtual_ips() = v;
      } else {
        spaces.Release(v);
        changed = true;
      }
    }
    for (const auto& n : want) {
      const bool has = std::any_of(next.virtual_ips().begin(), next.virtual_ips().end(),
                                   [&](const auto& v) { return v.network_id() == n; });
      if (has) continue;
      if (auto addr = spaces.Allocate(n)) {
        *next.add_virtual_ips() = Attachment(n, *addr);
        changed = true;
      }
    }
    if (changed) {
      plan.services.push_back(std::move(next));
      by_id[s->id()] = &plan.services.back();
    }
  }

  std::vector<const api::Task*> fresh;
  for (const auto* t : tasks) {
    if (t->status().state() == api::TASK_NEW && t->desired_state() <= api::TASK_RUNNING) {
      fresh.push_back(t);
    }
  }
  std::sort(fresh.begin(), fresh.end(), [](auto* a, auto* b) { return a->id() < b->id(); });
  for (const auto* t : fresh) {
    auto s = by_id.find(t->service_id());
    if (s == by_id.end()) continue;  // its service is going: the orchestrator removes it
    api::Task next = *t;
    next.clear_networks();
    next.clear_virtual_ips();
    std::string why;
    for (const auto& n : NetworksOf(s->second->spec(), spaces.ingress())) {
      auto addr = spaces.Allocate(n);
      if (!addr) {
        why = spaces.Has(n) ? "no IP address left on network " + spaces.Name(n)
                            : "network " + n + " is not allocated";
        break;
      }
      *next.add_networks() = Attachment(n, *addr);
    }
    if (!why.empty()) {
      for (const auto& a : next.networks())
        spaces.Release(a);
      if (t->status().err() == why) continue;  // already said
      next.clear_networks();
      next.mutable_status()->set_err(why);
      next.mutable_status()->set_message("waiting for addresses");
      plan.tasks.push_back(std::move(next));
      continue;
    }
    for (const auto& v : s->second->virtual_ips())
      *next.add_virtual_ips() = v;
    auto* st = next.mutable_status();
    st->set_state(api::TASK_PENDING);
    st->set_timestamp(now);
    st->set_message("pending task scheduling");
    st->clear_err();
    plan.tasks.push_back(std::move(next));
  }
  return plan;
}

}  // namespace skep::allocator
