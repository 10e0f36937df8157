// The node's side of the overlay networks its tasks are on: the networks' sandboxes and VXLAN
// peers (overlay/dataplane/overlay_dataplane.h), from the networks the session gives and the
// endpoints the gossip tables hold; each task's interfaces on them; the service mesh (VIPs,
// the routing mesh) and the tasks' DNS (task_dns.h); and the node's own entries in the gossip
// tables (its tasks' endpoints, and its address on ingress).
//
// Threads: the setters and Publish are called on the worker's strand, which owns what they
// record. Applying it to the kernel blocks (netlink, nftables), so it runs on the worker's
// pool: each change records the whole wanted state and queues one pass; a pass applies the
// latest state, so passes never undo a newer one. AttachTask, DetachTask and ApplyMesh block
// too: on the pool only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/common/mutex.h"
#include "dispatcher.pb.h"
#include "overlay/dataplane/overlay_dataplane.h"
#include "overlay/dataplane/service_mesh.h"
#include "overlay/dataplane/task_network.h"
#include "overlay/discovery.h"
#include "overlay/gossip/table.h"

namespace skep::gossip {
class Agent;
}

namespace skep::node {

class TaskDns;

struct TaskNetworksOptions {
  std::string data_dir;
  std::string vtep;  // this node's underlay address; none: no overlay networks
  std::string node_id;
  gossip::Agent* gossip = nullptr;  // none: no peers, nothing published
};

class TaskNetworks {
 public:
  // `io` runs the DNS server's sockets; `pool` runs the passes. Both outlive this.
  TaskNetworks(TaskNetworksOptions options, boost::asio::io_context& io,
               boost::asio::thread_pool& pool);
  ~TaskNetworks();

  bool enabled() const { return overlay_ != nullptr; }
  // The swarm's VXLAN port, before any network is made (any thread).
  void SetPort(uint16_t port);

  // ---- on the worker's strand
  // The overlay networks of the node's tasks and ingress, and the node's own addresses.
  void SetNetworks(const std::vector<api::Network>& networks,
                   const std::vector<api::NetworkAttachment>& node_attachments);
  // A network's gossip table changed: who is on it.
  void SetTable(const std::string& network, const std::vector<gossip::TableEntry>& entries);
  // The networks of `task` known here, in the order of its attachments.
  std::vector<dataplane::OverlayNetworkInfo> NetworksOf(const api::Task& task) const;
  // What the node publishes: it is in the table of every network of `tasks` (so that the
  // table is there when a task starts) and of ingress; the endpoint of each task in `serving`
  // is in each of its networks' tables.
  void Publish(const std::vector<const api::Task*>& tasks,
               const std::vector<const api::Task*>& serving);

  // ---- on the pool
  struct Attached {
    std::string netns_path;
    std::string addr;         // on the node's bridge
    std::string resolv_conf;  // the one the task should use
  };
  // Makes a starting task's namespace (eth0 on the node's bridge, its host-mode ports
  // published) and puts it on its overlay networks (`nets` from NetworksOf): eth1, eth2, ...
  // in order; a task with service discovery gets its names before it starts, and a
  // resolv.conf in `task_dir` for them. Throws what failed.
  Attached AttachTask(const api::Task& task, const std::vector<dataplane::OverlayNetworkInfo>& nets,
                      const std::string& task_dir);
  // Takes a task off the mesh and removes its namespace.
  void DetachTask(const std::string& id);
  // A task that was running before skepd restarted, back on the mesh (any thread).
  void ReattachTask(const api::Task& task);
  void ApplyMesh();

 private:
  void Want();
  void ApplyOverlay();

  TaskNetworksOptions options_;
  boost::asio::thread_pool& pool_;
  dataplane::TaskNetwork bridge_;  // the tasks' namespaces, on the node's bridge
  std::unique_ptr<dataplane::OverlayDataplane> overlay_;
  std::unique_ptr<TaskDns> dns_;                  // with overlay_
  std::unique_ptr<dataplane::ServiceMesh> mesh_;  // with overlay_

  // On the worker's strand.
  std::map<std::string, api::Network> networks_;
  std::vector<api::NetworkAttachment> node_attachments_;
  std::map<std::string, discovery::Endpoints> endpoints_;  // per network, from gossip
  std::set<std::string> joined_;                           // the tables the node is in
  std::map<std::string, std::map<std::string, std::string>> published_;  // its entries there

  Mutex wanted_mu_;
  std::vector<dataplane::MeshNetwork> wanted_ SKEP_GUARDED_BY(wanted_mu_);
  bool queued_ SKEP_GUARDED_BY(wanted_mu_) = false;
  Mutex apply_mu_;                                            // one pass at a time
  std::set<std::string> applied_ SKEP_GUARDED_BY(apply_mu_);  // networks with a sandbox
  bool scanned_ SKEP_GUARDED_BY(apply_mu_) = false;
};

}  // namespace skep::node
