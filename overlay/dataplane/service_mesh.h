// Service discovery and load balancing on one node, applied to the kernel: for each task on
// overlay networks its VIP rules (nftables table skep_lb in its namespace) and its DNS names
// (handed to the responder through `on_names`); for the node, a sandbox on the ingress
// network (namespace ingress_sbox: eth0 on skep_gwbridge, eth1 at the node's ingress address)
// with the routing mesh's rules (table skep_mesh), and every port published through the mesh
// forwarded from the node's addresses into it. What to apply comes from the endpoint records
// of the node's networks (overlay/discovery.h computes the rules).
//
// The setters record the wanted state and return at once; Apply, which blocks on netlink and
// nftables, makes the kernel match the latest wanted state. Applies run one at a time and
// each takes the state as it is when it starts, so concurrent ones end with the latest.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "daemon/common/mutex.h"
#include "overlay/dataplane/overlay_dataplane.h"
#include "overlay/dataplane/task_network.h"
#include "overlay/discovery.h"

namespace skep::dataplane {

struct MeshNetwork {
  OverlayNetworkInfo info;
  bool ingress = false;
  discovery::Endpoints endpoints;
};

class ServiceMesh {
 public:
  using Names = std::map<std::string, std::vector<std::string>>;
  // `vtep`: this node's underlay address, which tells its own ingress endpoint from others'.
  ServiceMesh(std::string vtep, OverlayDataplane* overlay, TaskNetwork* network);

  // A task's names changed (or, with `gone`, its namespace went).
  std::function<void(const std::string& task_id, const std::string& netns, const Names& names,
                     bool gone)>
      on_names;

  void SetNetworks(std::vector<MeshNetwork> networks);
  // A task's namespace is ready, on these networks (in order).
  void AddTask(const std::string& task_id, const std::string& netns,
               std::vector<std::string> network_ids);
  void RemoveTask(const std::string& task_id);
  void Apply();

  static constexpr char kSandbox[] = "ingress_sbox";

 private:
  struct TaskEntry {
    std::string netns;
    std::vector<std::string> networks;
  };
  struct Wanted {
    std::map<std::string, MeshNetwork> networks;
    std::map<std::string, TaskEntry> tasks;
  };
  struct Applied {
    std::string script;
    Names names;
  };
  void ApplyTasks(const Wanted& w) SKEP_REQUIRES(apply_mu_);
  void ApplyIngress(const Wanted& w) SKEP_REQUIRES(apply_mu_);

  const std::string vtep_;
  OverlayDataplane* overlay_;
  TaskNetwork* network_;

  Mutex mu_;
  Wanted wanted_ SKEP_GUARDED_BY(mu_);

  Mutex apply_mu_;  // one Apply at a time
  std::map<std::string, Applied> applied_ SKEP_GUARDED_BY(apply_mu_);  // per task
  struct Sandbox {
    std::string network_id;
    std::string cidr;
    std::string path;
    std::string script;
    std::vector<PublishedPort> ports;
  };
  std::optional<Sandbox> sandbox_ SKEP_GUARDED_BY(apply_mu_);
};

}  // namespace skep::dataplane
