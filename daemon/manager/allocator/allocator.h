// The allocator's decisions, as a pure function of the store's networks, services and tasks:
// a virtual IP for each service on each of its networks (endpoint mode vip), for each node an
// address on the ingress network (its routing mesh's), and for each NEW task an address on
// each of its networks, after which it is PENDING for the scheduler. What is allocated is what
// the objects say: the addresses of services, nodes and tasks that have not ended are taken,
// everything else is free, so a leader that starts, or a task that ends, needs no bookkeeping
// of its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "objects.pb.h"

namespace skep::allocator {

struct AllocationPlan {
  std::vector<api::Service> services;  // with their virtual IPs as they must be now
  std::vector<api::Node> nodes;        // given their ingress address
  std::vector<api::Task> tasks;        // NEW tasks allocated (now PENDING), or told why not
};

// `tasks`: at least those that have not ended and hold addresses, and the NEW ones; any others
// are passed over.
AllocationPlan PlanAllocations(const std::vector<const api::Network*>& networks,
                               const std::vector<const api::Service*>& services,
                               const std::vector<const api::Task*>& tasks,
                               const std::vector<const api::Node*>& nodes, int64_t now);

// The networks a service's tasks join: its own, then the ingress network when it publishes a
// port through the routing mesh.
std::vector<std::string> NetworksOf(const api::ServiceSpec& spec, const std::string& ingress_id);

}  // namespace skep::allocator
