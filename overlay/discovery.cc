#include "overlay/discovery.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>

namespace skep::discovery {

namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

void AddUnique(std::vector<std::string>& v, const std::string& x) {
  if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
}

std::string Protocol(const std::string& p) {
  return p.empty() ? "tcp" : Lower(p);
}

// `numgen inc mod N map { 0 : a, 1 : b }`: the next of the addresses, round robin.
std::string Spread(const std::vector<std::string>& ips) {
  std::ostringstream out;
  out << "numgen inc mod " << ips.size() << " map { ";
  for (size_t i = 0; i < ips.size(); ++i)
    out << (i ? ", " : "") << i << " : " << ips[i];
  out << " }";
  return out.str();
}

// The script replacing table `ip <name>` with `body` (chains), in one transaction.
std::string Replace(const std::string& name, const std::string& body) {
  std::ostringstream out;
  out << "table ip " << name << "\n"
      << "delete table ip " << name << "\n"
      << "table ip " << name << " {\n"
      << body << "}\n";
  return out.str();
}

}  // namespace

std::string IpOf(const std::string& cidr) {
  return cidr.substr(0, cidr.find('/'));
}

std::string TaskName(const api::Task& t) {
  return t.service_name() + "." + (t.slot() ? std::to_string(t.slot()) : t.node_id()) + "." +
         t.id();
}

api::EndpointRecord EndpointOf(const api::Task& t, const api::NetworkAttachment& a,
                               const std::string& vtep, bool ingress) {
  api::EndpointRecord r;
  r.set_task_id(t.id());
  r.set_task_name(TaskName(t));
  r.set_service_id(t.service_id());
  r.set_service_name(t.service_name());
  r.set_node_id(t.node_id());
  if (a.addresses_size() > 0) r.set_ip(IpOf(a.addresses(0)));
  for (const auto& v : t.virtual_ips()) {
    if (v.network_id() == a.network_id() && v.addresses_size() > 0) r.set_vip(IpOf(v.addresses(0)));
  }
  r.set_vtep(vtep);
  if (ingress) {
    for (const auto& p : t.endpoint().ports()) {
      if (p.publish_mode() == api::PortConfig::INGRESS && p.published_port() != 0) {
        *r.add_ingress_ports() = p;
      }
    }
  }
  return r;
}

api::EndpointRecord NodeEndpoint(const std::string& node_id, const std::string& cidr,
                                 const std::string& vtep) {
  api::EndpointRecord r;
  r.set_node_id(node_id);
  r.set_ip(IpOf(cidr));
  r.set_vtep(vtep);
  r.set_node_endpoint(true);
  return r;
}

std::map<std::string, std::vector<std::string>> NamesFor(
    const std::vector<const Endpoints*>& nets) {
  std::map<std::string, std::vector<std::string>> names;
  for (const Endpoints* eps : nets) {
    for (const auto& e : *eps) {
      if (e.node_endpoint() || e.ip().empty()) continue;
      const std::string service = Lower(e.service_name());
      std::vector<std::string> keys = {service};
      for (const auto& a : e.aliases())
        keys.push_back(Lower(a));
      for (const auto& k : keys)
        AddUnique(names[k], e.vip().empty() ? e.ip() : e.vip());
      AddUnique(names["tasks." + service], e.ip());
      if (!e.task_name().empty()) AddUnique(names[Lower(e.task_name())], e.ip());
    }
  }
  return names;
}

std::string TaskScript(const std::vector<const Endpoints*>& nets) {
  // VIP -> the addresses of its service's tasks on the VIP's network.
  std::map<std::string, std::vector<std::string>> backends;
  for (const Endpoints* eps : nets) {
    for (const auto& e : *eps) {
      if (e.node_endpoint() || e.vip().empty() || e.ip().empty()) continue;
      AddUnique(backends[e.vip()], e.ip());
    }
  }
  if (backends.empty()) return "";
  std::ostringstream chain;
  chain << "  chain output {\n    type nat hook output priority -100; policy accept;\n";
  for (auto& [vip, ips] : backends) {
    std::sort(ips.begin(), ips.end());
    chain << "    ip daddr " << vip << " dnat to " << Spread(ips) << "\n";
  }
  chain << "  }\n";
  return Replace("skep_lb", chain.str());
}

std::vector<MeshPort> MeshPorts(const Endpoints& ingress) {
  std::set<MeshPort> ports;
  for (const auto& e : ingress) {
    for (const auto& p : e.ingress_ports())
      ports.insert({Protocol(p.protocol()), p.published_port()});
  }
  return {ports.begin(), ports.end()};
}

std::string MeshScript(const Endpoints& ingress, const std::string& ingress_if) {
  struct Target {
    uint32_t port = 0;
    std::vector<std::string> ips;
  };
  // A published port belongs to one service (the managers refuse a second one), so every
  // endpoint publishing it has the same target port.
  std::map<MeshPort, Target> targets;
  for (const auto& e : ingress) {
    if (e.ip().empty()) continue;
    for (const auto& p : e.ingress_ports()) {
      Target& t = targets[{Protocol(p.protocol()), p.published_port()}];
      t.port = p.target_port();
      AddUnique(t.ips, e.ip());
    }
  }
  std::ostringstream body;
  body << "  chain prerouting {\n    type nat hook prerouting priority -100; policy accept;\n";
  for (auto& [mp, t] : targets) {
    std::sort(t.ips.begin(), t.ips.end());
    body << "    " << mp.protocol << " dport " << mp.published << " dnat to " << Spread(t.ips)
         << " : " << t.port << "\n";
  }
  body << "  }\n"
       << "  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n"
       << "    oifname \"" << ingress_if << "\" masquerade\n  }\n";
  return Replace("skep_mesh", body.str());
}

std::string DeleteScript(const std::string& table) {
  return "table ip " + table + "\ndelete table ip " + table + "\n";
}

}  // namespace skep::discovery
