// The rules of overlay networks, as pure functions of the store's networks: what a spec may
// ask for, and the subnet, gateway and VNI a new network gets. The control API allocates with
// them when a network is created; the store checks every new network against the others with
// AllocationConflict when it applies, so that two creates racing for one subnet cannot both win.
#pragma once

#include <string>
#include <vector>

#include "daemon/common/status.h"
#include "objects.pb.h"

namespace skep::allocator {

inline constexpr char kDefaultPool[] = "10.0.0.0/8";
inline constexpr int kDefaultSubnetSize = 24;

// Checks `spec` and fills `out` (spec, vni, ipam) for a network beside `existing`. Returns
// what is wrong with the request (kAlreadyExists for a name or an ingress network taken,
// kInvalidArgument), or OK when `out` is ready.
Status AllocateNetwork(const api::NetworkSpec& spec,
                       const std::vector<const api::Network*>& existing,
                       const api::NetworkSettings& pools, api::Network* out);

// Why `a` and `b` cannot both exist (overlapping subnets, one VNI), or "".
std::string AllocationConflict(const api::Network& a, const api::Network& b);

// The pools in force (the default when none is set), or what is wrong with them.
std::string CheckPools(const api::NetworkSettings& pools);

}  // namespace skep::allocator
