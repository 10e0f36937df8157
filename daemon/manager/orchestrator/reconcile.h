// The orchestrators' decisions as pure functions: (a service, its tasks, the nodes, now) ->
// the tasks to create and the desired-state changes to make. No store, no clock, no I/O: the
// leader-only Orchestrator feeds them and writes what they return in one proposal.
//
// Replicated services have slots 1..replicas; a slot's live task is the one whose desired state
// is RUNNING (at most one per slot once a plan is applied). Global services have one live task
// per eligible node. A live task that ended (complete, failed, rejected) is restarted under
// the restart policy: its desired state becomes SHUTDOWN and a replacement takes its slot (or
// node) with `attempt` one higher and `not_before` the restart delay away. A live task on a
// node that is down, drained or gone is replaced elsewhere at once.
#pragma once

#include <boost/iterator/indirect_iterator.hpp>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "objects.pb.h"

namespace skep::orchestrator {

// Defaults, as in Docker.
inline constexpr int64_t kDefaultRestartDelayNs = 5'000'000'000;
inline constexpr int64_t kDefaultTaskHistory = 5;
inline constexpr int64_t kDefaultUpdateMonitorNs = 5'000'000'000;

struct Plan {
  std::vector<api::Task> create;  // new tasks (IDs left empty: the caller names them)
  std::vector<api::Task> update;  // existing tasks with a changed desired state
  int64_t wake_at = 0;            // unix nanoseconds when a plan may change by time alone; 0: never
  // The service itself, when its update status changes (an update completes, pauses or turns
  // into a rollback).
  std::optional<api::Service> service;
  bool empty() const { return create.empty() && update.empty() && !service; }
};

// A service's tasks as the reconcilers read them, without copying them: the store's own
// objects, or tasks held elsewhere. A view, like std::string_view: what it was made from must
// outlive it.
class TaskList {
 public:
  TaskList(const std::vector<api::Task>& tasks);                         // NOLINT: implicit
  TaskList(std::initializer_list<api::Task> tasks);                      // NOLINT: implicit
  TaskList(const std::vector<std::shared_ptr<const api::Task>>& tasks);  // NOLINT: implicit
  auto begin() const { return boost::make_indirect_iterator(tasks_.begin()); }
  auto end() const { return boost::make_indirect_iterator(tasks_.end()); }
  size_t size() const { return tasks_.size(); }

 private:
  std::vector<const api::Task*> tasks_;
};

// What the orchestrators need to know of the nodes.
struct NodeView {
  std::string id;
  bool ready = false;
  api::NodeAvailability availability = api::AVAILABILITY_ACTIVE;
  bool eligible = true;  // global services: passes the service's constraints
  // Replicated services that rebalance: the scheduler would give the node a new task of the
  // service now (constraints, resources, max replicas per node).
  bool fits = false;
};

// The service label that turns rebalancing on (`--rebalance`): "true".
inline constexpr char kRebalanceLabel[] = "skep.rebalance";
bool Rebalances(const api::Service& service);

// Whether a task's observed state means it has ended.
bool Terminal(api::TaskState state);

// Running, and healthy when it has a health check: what updates wait for.
bool Ready(const api::Task& t);

// A new task of `service` for `slot` (replicated) or `node_id` (global).
api::Task NewTask(const api::Service& service, uint64_t slot, const std::string& node_id,
                  int64_t now);

// `tasks`: every task of the service (history included). `nodes`: every node of the swarm.
Plan ReconcileReplicated(const api::Service& service, const TaskList& tasks,
                         const std::map<std::string, NodeView>& nodes, int64_t now);
Plan ReconcileGlobal(const api::Service& service, const TaskList& tasks,
                     const std::map<std::string, NodeView>& nodes, int64_t now);

// Rolling updates (applied by both reconcilers after their own decisions): live tasks made
// from an older spec version are replaced, `parallelism` at a time (0: all at once), the next
// batch once the last one runs and `delay` has passed. New tasks of the update that fail
// beyond `max_failure_ratio` of the slots trigger the failure action: pause, continue, or
// rollback (the previous spec becomes the spec, and is rolled out with the rollback config).
// The update status says updating, paused (with the task that failed), completed, rollback_*.
void PlanUpdate(const api::Service& service, const TaskList& tasks, int64_t now,
                Plan& plan);

// Rebalancing, for a replicated service that asks for it (kRebalanceLabel) and has no
// placement preferences (their spread is the scheduler's own rule): when the nodes that could
// run its tasks hold numbers of them more than one apart (a node joined or came back), tasks on
// the fullest nodes are replaced, stop first, in their slots (the scheduler puts the new ones
// on the nodes with the fewest, which each take at most one per batch); `parallelism` at a time
// (0: every move at once), the next batch once every task is ready again and `delay` has passed
// since the newest started. Never while an update runs or the plan already changes the service.
// Applied by ReconcileReplicated last.
void PlanRebalance(const api::Service& service, const TaskList& tasks,
                   const std::map<std::string, NodeView>& nodes, int64_t now, Plan& plan);

// The old tasks to delete so that each slot (or node) keeps at most `history` tasks that are
// neither live nor still running: the oldest go first.
std::vector<api::Task> Prune(const TaskList& tasks, int64_t history);

}  // namespace skep::orchestrator
