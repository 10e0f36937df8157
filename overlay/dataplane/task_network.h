// Per-task networking on a node, through netlink (libnl) and nftables (libnftables), never by
// running `ip` or `nft`: every task gets a network namespace of its own with a veth to the
// node's bridge skep_gwbridge (172.18.0.0/16, the node at .1), a default route through it and
// outbound NAT, so that tasks reach the outside; ports published in host mode are forwarded
// from the node's addresses to the task. (Overlay networks attach further interfaces later.)
//
// State on disk, under <data-dir>/netns: <task> is the namespace (a bind mount of it, which
// keeps it alive while no process is in it), <task>.net holds its address and host ports. The
// NAT table is rewritten whole from those files on every change, so it never drifts.
//
// Thread-safe; every call blocks on netlink, so callers run it off their strands.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "daemon/common/mutex.h"

namespace skep::dataplane {

struct PublishedPort {
  std::string protocol = "tcp";
  uint32_t published = 0;
  uint32_t target = 0;
};

class TaskNetwork {
 public:
  explicit TaskNetwork(std::string data_dir);

  struct Attachment {
    std::string netns_path;  // for the OCI spec's network namespace
    std::string addr;        // the task's address on skep_gwbridge
  };
  // Creates the task's namespace and interface (the bridge and NAT first, if need be).
  // Throws std::runtime_error saying which step failed.
  Attachment Attach(const std::string& task_id, const std::vector<PublishedPort>& ports);
  // Replaces the ports forwarded to an attached namespace.
  void SetPorts(const std::string& task_id, const std::vector<PublishedPort>& ports);
  // Removes the namespace and the task's port forwards; nothing if there are none.
  void Detach(const std::string& task_id);

 private:
  void EnsureBridge() SKEP_REQUIRES(mu_);
  void WriteNat() SKEP_REQUIRES(mu_);
  std::string Dir() const { return data_dir_ + "/netns"; }

  std::string data_dir_;
  Mutex mu_;  // one change at a time
  bool bridge_ready_ SKEP_GUARDED_BY(mu_) = false;
};

}  // namespace skep::dataplane
