// Task placement: pure functions from (nodes, tasks) to assignments. No I/O, no clock, no
// randomness: the same input always gives the same decisions.
//
// A node takes a task when it passes every filter, asked in this order (the first that says no
// is the node's reason): ready, availability (active; pause and drain take no new tasks),
// constraints, platform, resources, host ports, max replicas per node. The questions about the
// node itself come before the ones about its current load, so that a node is blamed for its
// most lasting reason.
//
// Among the nodes that may take a task, the scheduler picks the least by
//   1. whether this service failed there recently (recent_failures > 0 ranks after every node
//      without failures: a node where the service keeps failing gets it only as a last resort;
//      the caller decides what counts as recent),
//   2. tasks of this service there (spread),
//   3. tasks there in total,
//   4. recent failures of this service there (fewer first),
//   5. node id (a deterministic tie-break).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "scheduler/constraint.h"
#include "scheduler/types.h"

namespace skep::scheduler {

struct TaskRequest {
  std::string task_id;
  std::string service_id;
  std::vector<Constraint> constraints;
  Resources reservations;
  bool memory_limited = false;         // a memory limit or reservation: needs memory_limits
  std::vector<Platform> platforms;     // the image's platforms; empty = any
  std::vector<HostPort> host_ports;    // host-mode published ports the task needs
  uint64_t max_replicas_per_node = 0;  // 0 = no limit
  // Placement preferences: "node.labels.zone", "engine.labels.rack", ... Tasks go first to the
  // value of the first label that has the fewest of the service's tasks (nodes without the
  // label count as one more value), within it by the second, and so on; the ranking below
  // decides among the nodes that are left.
  std::vector<std::string> spread;
};

// Whether `descriptor` can be a spread preference (node.labels.X or engine.labels.X); the
// reason when it cannot.
std::optional<std::string> CheckSpreadDescriptor(const std::string& descriptor);

struct Assignment {
  std::string task_id, node_id;
};

// `reason` is one line for `service ps`, e.g.
//   no suitable node (scheduling constraints not satisfied on 3 nodes; insufficient memory on 2
//   nodes)
struct Unplaced {
  std::string task_id;
  std::string reason;
};

struct Decisions {
  std::vector<Assignment> assignments;  // in the order of the tasks given
  std::vector<Unplaced> unplaced;       // in the order of the tasks given
};

// Places `tasks` and records every placement in `nodes` (reserved, tasks_by_service,
// total_tasks, used_host_ports), so a later call sees them.
//
// Tasks with the same requirements (service, constraints, reservations, platforms, host ports,
// max replicas) form a group; groups are placed one after another in the order of their first
// task, the tasks of a group in the order given. Feasibility of the static filters is computed
// once per group and node; a group then costs O(log nodes) per placement.
Decisions Schedule(std::vector<NodeInfo>& nodes, const std::vector<TaskRequest>& tasks);

// Why `node` may not take `task`, from the first filter that says no ("ready",
// "availability", "constraints", "platform", "memory-limits", "resources", "host-ports",
// "max-replicas"), or
// nullopt if it may take it. The reason is for one node, with details, e.g.
//   scheduling constraint node.role==worker not satisfied
//   insufficient memory (needs 512MiB, 256MiB available)
struct Verdict {
  std::string filter;
  std::string reason;
};
std::optional<Verdict> Check(const NodeInfo& node, const TaskRequest& task);

}  // namespace skep::scheduler
