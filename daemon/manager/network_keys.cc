#include "daemon/manager/network_keys.h"

#include "daemon/common/pki.h"
#include "daemon/manager/store_driven.h"

namespace skep::manager {

std::optional<api::Cluster> RotateNetworkKeys(const api::Cluster& cluster, int64_t now_ns,
                                              int64_t interval_ns,
                                              const std::function<std::string()>& fresh_key) {
  if (cluster.network_keys_size() > 0 &&
      now_ns < cluster.network_keys(0).created_ns() + interval_ns) {
    return std::nullopt;
  }
  api::Cluster next = cluster;
  next.clear_network_keys();
  auto* k = next.add_network_keys();
  k->set_key(fresh_key());
  k->set_created_ns(now_ns);
  for (int i = 0; i < cluster.network_keys_size() && next.network_keys_size() < kNetworkKeysKept;
       ++i) {
    *next.add_network_keys() = cluster.network_keys(i);
  }
  return next;
}

int64_t NextKeyRotation(const api::Cluster& cluster, int64_t interval_ns) {
  return cluster.network_keys_size() == 0 ? 0
                                          : cluster.network_keys(0).created_ns() + interval_ns;
}

std::unique_ptr<LeaderComponent> MakeNetworkKeyRotation(Context& ctx) {
  return MakeStoreDriven(ctx, "network keys", [&ctx](int64_t now) {
    PassResult r;
    auto cluster = ctx.store().GetCluster();
    if (!cluster) return r;
    auto next = RotateNetworkKeys(*cluster, now, kNetworkKeyRotationNs,
                                  [] { return pki::RandomBytes(32); });
    if (next) {
      auto* a = r.batch.add_actions();
      a->set_kind(api::StoreAction::UPDATE);
      *a->mutable_cluster() = *next;
    }
    r.wake_at = NextKeyRotation(next ? *next : *cluster, kNetworkKeyRotationNs);
    return r;
  });
}

}  // namespace skep::manager
