// What the scheduler knows about nodes: plain values the manager fills from its store. The
// scheduler reads them and, as it places tasks, updates the load fields (reserved,
// tasks_by_service, total_tasks, used_host_ports).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace skep::scheduler {

struct Resources {
  int64_t nano_cpus = 0;  // 1e9 = one CPU
  int64_t memory_bytes = 0;
  friend bool operator==(const Resources&, const Resources&) = default;
};

// An empty field means "any": an image platform {"linux", ""} runs on every Linux node.
struct Platform {
  std::string os, arch;
  friend bool operator==(const Platform&, const Platform&) = default;
};

// A port published in host mode: at most one task per node may hold it. Port 0 means the
// engine picks one when the task starts, so it never conflicts.
struct HostPort {
  std::string protocol = "tcp";
  uint32_t port = 0;
  friend bool operator==(const HostPort&, const HostPort&) = default;
};

struct NodeInfo {
  std::string id, hostname;
  std::string role;   // "manager" or "worker"
  std::string addr;   // the node's IP without a port: "10.88.0.11", "fd00::11"
  Platform platform;  // os "linux", arch as the node reports it: "x86_64", "aarch64"
  std::map<std::string, std::string> labels;         // node.labels.X (node update --label-add)
  std::map<std::string, std::string> engine_labels;  // engine.labels.X (skepd --node-label)
  bool ready = false;                                // status READY
  std::string availability = "active";               // active, pause, drain
  // Whether the node's kernel has the memory cgroup controller: without it, no memory limit
  // or reservation can be enforced there (Raspberry Pi OS before cgroup_enable=memory).
  bool memory_limits = true;
  Resources total;                                   // what the node has
  Resources reserved;                                // reserved by the tasks placed there
  std::map<std::string, int> tasks_by_service;       // service id -> live tasks there
  int total_tasks = 0;
  std::vector<HostPort> used_host_ports;
  // Service id -> failures of its tasks on this node that the caller still counts as recent
  // (the caller owns the time window). See Schedule for how they rank a node.
  std::map<std::string, int> recent_failures;
};

}  // namespace skep::scheduler
