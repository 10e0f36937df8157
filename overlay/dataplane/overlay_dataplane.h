// The overlay's data plane on one node, through netlink (libnl), never by running `ip`: per
// overlay network a sandbox network namespace with a bridge (holding the network's gateway
// address) and a VXLAN device (the network's VNI, UDP 4789 by default, learning off, answering
// ARP from its neighbour table); per task a veth from the task's namespace into that bridge,
// with the task's address and a MAC made from it; per remote task a static FDB entry (its MAC
// behind its node's VTEP address) and a neighbour entry (its IP at that MAC). Nothing floods;
// what is installed is exactly the peer list last given.
//
// State on disk, under <data-dir>/netns: ov-<network> is the sandbox (a bind mount),
// ov-<network>.peers the peers installed, so that a restarted skepd reconciles with the kernel
// instead of starting over. The VXLAN device is created in the node's namespace (its socket
// lives there, on the underlay) and then moved into the sandbox.
//
// Thread-safe; every call blocks on netlink, so callers run it off their strands.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "daemon/common/mutex.h"

namespace skep::dataplane {

struct OverlayNetworkInfo {
  std::string id;
  uint32_t vni = 0;
  std::string subnet;   // 10.0.9.0/24
  std::string gateway;  // 10.0.9.1
  bool ingress = false;  // the routing mesh's network
};

// A task on another node.
struct OverlayPeer {
  std::string ip;    // 10.0.9.5
  std::string vtep;  // its node's underlay address
  bool operator==(const OverlayPeer&) const = default;
};

class OverlayDataplane {
 public:
  // `vtep`: this node's underlay address; `underlay_mtu`: the MTU of its interface, less the
  // VXLAN overhead (50 bytes) is the overlay's.
  OverlayDataplane(std::string data_dir, std::string vtep, int underlay_mtu = 1500,
                   uint16_t port = 4789);

  // The swarm's VXLAN port (0: 4789), for the devices made from now on.
  void SetPort(uint16_t port);
  // Creates the network's sandbox, bridge and VXLAN device unless they exist.
  void EnsureNetwork(const OverlayNetworkInfo& n);
  // Removes the sandbox and everything in it.
  void RemoveNetwork(const std::string& network_id);
  // Gives the task's namespace an interface `ifname` on the network, with `cidr` (10.0.9.5/24).
  void AttachTask(const std::string& network_id, const std::string& task_netns,
                  const std::string& ifname, const std::string& cidr);
  void DetachTask(const std::string& network_id, const std::string& cidr);
  // The remote tasks of the network: entries for new ones are added, those of gone ones
  // removed.
  void SetPeers(const std::string& network_id, const std::vector<OverlayPeer>& peers);

  // The MAC a task's overlay interface gets: 02:42 and its IPv4 address, as Docker does.
  static std::string MacFor(const std::string& ip);
  std::string SandboxPath(const std::string& network_id) const;
  int mtu() const { return mtu_; }

 private:
  std::string data_dir_;
  std::string vtep_;
  int mtu_;
  Mutex mu_;  // one change of the kernel's state at a time
  uint16_t port_ SKEP_GUARDED_BY(mu_);
};

}  // namespace skep::dataplane
