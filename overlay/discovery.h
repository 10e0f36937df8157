// Service discovery and load balancing, as pure functions of the endpoint records of the
// networks a node is on (api::EndpointRecord: one per running task per network, plus each
// node's own endpoint on the ingress network). The node's data plane applies what these
// return: names go to the DNS responder of each task, rulesets to nftables.
//
// - Names: a task resolves the services it shares a network with. A service's name gives its
//   virtual IP on that network (its tasks' addresses with endpoint mode dnsrr, where it has
//   no VIP), tasks.<service> every task's address, a task's own name its address.
// - Virtual IPs: in each task's namespace, a connection to a VIP of a service on one of the
//   task's networks goes to one of that service's tasks on the same network (DNAT, spread
//   round robin, every port).
// - The routing mesh: every node has a sandbox on the ingress network; a port a service
//   publishes in ingress mode answers on every node (the node forwards it to its sandbox),
//   and the sandbox spreads connections over the service's tasks on the ingress network,
//   from its own ingress address so that replies come back through it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "objects.pb.h"

namespace skep::discovery {

using Endpoints = std::vector<api::EndpointRecord>;

// "10.0.9.5/24" -> "10.0.9.5".
std::string IpOf(const std::string& cidr);

// The task's name: service.slot.id, or service.node.id for a global service's task.
std::string TaskName(const api::Task& t);

// The task's endpoint on one of its networks; `vtep` is its node's underlay address. On the
// ingress network the record carries the ports the task's service publishes there.
api::EndpointRecord EndpointOf(const api::Task& t, const api::NetworkAttachment& a,
                               const std::string& vtep, bool ingress);

// A node's own endpoint on the ingress network, at `cidr`.
api::EndpointRecord NodeEndpoint(const std::string& node_id, const std::string& cidr,
                                 const std::string& vtep);

// Lower-case names (no trailing dot) to addresses, for a task on these networks.
std::map<std::string, std::vector<std::string>> NamesFor(const std::vector<const Endpoints*>& nets);

// The nftables script that replaces table `ip skep_lb` in a task's namespace: DNAT from each
// VIP of a service on the task's networks to that service's tasks there. Empty when there is
// no VIP to balance (the table is then deleted: see DeleteScript).
std::string TaskScript(const std::vector<const Endpoints*>& nets);

struct MeshPort {
  std::string protocol;  // tcp, udp
  uint32_t published = 0;
  bool operator<(const MeshPort& o) const {
    return std::tie(protocol, published) < std::tie(o.protocol, o.published);
  }
  bool operator==(const MeshPort&) const = default;
};

// The ports published through the routing mesh, from the ingress network's endpoints.
std::vector<MeshPort> MeshPorts(const Endpoints& ingress);

// The nftables script that replaces table `ip skep_mesh` in the node's ingress sandbox: each
// published port to one of its service's tasks (at the target port), sent from the sandbox's
// address on `ingress_if`.
std::string MeshScript(const Endpoints& ingress, const std::string& ingress_if);

// A script deleting table `ip <name>` if it exists.
std::string DeleteScript(const std::string& table);

}  // namespace skep::discovery
