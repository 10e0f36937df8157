// The gossip layer's keys (Cluster.network_keys, newest first): the leader adds a fresh key
// every 12 hours, as Docker's does, and keeps the previous two so that nodes that have not
// heard of the new key yet are still understood; nodes encrypt with the newest and accept
// any. The decision is pure; the component around it proposes it and wakes up when the next
// rotation is due.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "daemon/manager/context.h"
#include "objects.pb.h"

namespace skep::manager {

inline constexpr int64_t kNetworkKeyRotationNs = 12LL * 3600 * 1'000'000'000;
inline constexpr int kNetworkKeysKept = 3;

// The cluster with a fresh key first, when the newest key is `interval_ns` old or there is
// none, and at most kNetworkKeysKept keys; nullopt when no rotation is due.
std::optional<api::Cluster> RotateNetworkKeys(const api::Cluster& cluster, int64_t now_ns,
                                              int64_t interval_ns,
                                              const std::function<std::string()>& fresh_key);
// When the next rotation is due (unix nanoseconds).
int64_t NextKeyRotation(const api::Cluster& cluster, int64_t interval_ns);

std::unique_ptr<LeaderComponent> MakeNetworkKeyRotation(Context& ctx);

}  // namespace skep::manager
