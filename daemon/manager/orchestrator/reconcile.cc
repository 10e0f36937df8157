#include "daemon/manager/orchestrator/reconcile.h"

#include <algorithm>
#include <limits>
#include <set>
#include <tuple>

namespace skep::orchestrator {

TaskList::TaskList(const std::vector<api::Task>& tasks) {
  tasks_.reserve(tasks.size());
  for (const auto& t : tasks)
    tasks_.push_back(&t);
}

TaskList::TaskList(std::initializer_list<api::Task> tasks) {
  tasks_.reserve(tasks.size());
  for (const auto& t : tasks)
    tasks_.push_back(&t);
}

TaskList::TaskList(const std::vector<std::shared_ptr<const api::Task>>& tasks) {
  tasks_.reserve(tasks.size());
  for (const auto& t : tasks)
    tasks_.push_back(t.get());
}
namespace {

// a + b, held at the int64 limits instead of overflowing: status timestamps are whatever the
// nodes report, and periods whatever the spec says.
int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t sum;
  if (!__builtin_add_overflow(a, b, &sum)) return sum;
  return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
}

bool Live(const api::Task& t) {
  return t.desired_state() <= api::TASK_RUNNING;
}

// The node a task runs on can no longer run it: down, drained or removed.
bool NodeLost(const api::Task& t, const std::map<std::string, NodeView>& nodes) {
  if (t.node_id().empty()) return false;
  auto it = nodes.find(t.node_id());
  if (it == nodes.end()) return true;
  return !it->second.ready || it->second.availability == api::AVAILABILITY_DRAIN;
}

// Restarts already made for the task's slot that count against max_attempts.
uint64_t AttemptsSoFar(const api::Task& live, const std::vector<const api::Task*>& group,
                       const api::RestartPolicy& policy, int64_t now) {
  if (policy.window_ns() <= 0) return live.attempt();
  uint64_t n = 0;
  for (const auto* t : group) {
    if (t->attempt() > 0 && t->meta().created_at() >= now - policy.window_ns()) ++n;
  }
  return n;
}

bool RestartAllowed(const api::Task& live, const std::vector<const api::Task*>& group,
                    const api::RestartPolicy& policy, int64_t now) {
  switch (policy.condition()) {
    case api::RestartPolicy::NONE:
      return false;
    case api::RestartPolicy::ON_FAILURE:
      if (live.status().state() == api::TASK_COMPLETE) return false;
      break;
    default:
      break;
  }
  return policy.max_attempts() == 0 ||
         AttemptsSoFar(live, group, policy, now) < policy.max_attempts();
}

api::Task WithDesired(api::Task t, api::TaskState desired) {
  t.set_desired_state(desired);
  return t;
}

// Later creations first: the newest task of a group is its current one.
bool Newer(const api::Task* a, const api::Task* b) {
  if (a->meta().version() != b->meta().version()) return a->meta().version() > b->meta().version();
  if (a->attempt() != b->attempt()) return a->attempt() > b->attempt();
  return a->id() > b->id();
}

bool RollingBack(const api::Service& s) {
  const auto st = s.update_status().state();
  return st == api::UpdateStatus::ROLLBACK_STARTED || st == api::UpdateStatus::ROLLBACK_PAUSED;
}

// The update settings in force: the rollback's while one runs.
const api::UpdateConfig& ConfigInForce(const api::Service& s) {
  return RollingBack(s) ? s.spec().rollback() : s.spec().update();
}

bool StartFirst(const api::Service& s) {
  return ConfigInForce(s).order() == api::UpdateConfig::START_FIRST;
}

// One slot (or, for a global service, one node): keeps exactly one live task there, restarting
// or replacing it as the policy and its node call for. Under a start-first update the task a
// replacement of a newer spec is taking over from stays live until the replacement runs.
void ReconcileGroup(const api::Service& service, std::vector<const api::Task*> group, uint64_t slot,
                    const std::string& node_id, const std::map<std::string, NodeView>& nodes,
                    int64_t now, Plan& plan) {
  std::sort(group.begin(), group.end(), Newer);
  std::vector<const api::Task*> live;
  for (const auto* t : group) {
    if (Live(*t)) live.push_back(t);
  }
  // Two live tasks in one place (a race, or a leader that died mid-way): the newest stays.
  const bool handing_over =
      live.size() > 1 && StartFirst(service) && !Ready(*live[0]) &&
      live[1]->spec_version() < live[0]->spec_version() && !Terminal(live[1]->status().state());
  for (size_t i = handing_over ? 2 : 1; i < live.size(); ++i)
    plan.update.push_back(WithDesired(*live[i], api::TASK_SHUTDOWN));
  if (live.empty()) {
    plan.create.push_back(NewTask(service, slot, node_id, now));
    return;
  }
  const api::Task& current = *live.front();
  if (NodeLost(current, nodes) && !node_id.empty()) {
    // A global task belongs to its node: it goes with it (the caller decided eligibility).
    return;
  }
  if (NodeLost(current, nodes)) {
    plan.update.push_back(WithDesired(current, api::TASK_SHUTDOWN));
    api::Task next = NewTask(service, slot, node_id, now);
    next.set_attempt(current.attempt());
    next.set_replaces(current.id());
    plan.create.push_back(std::move(next));
    return;
  }
  if (!Terminal(current.status().state())) return;
  const api::RestartPolicy& policy = service.spec().task().restart();
  if (!RestartAllowed(current, group, policy, now)) return;
  plan.update.push_back(WithDesired(current, api::TASK_SHUTDOWN));
  api::Task next = NewTask(service, slot, node_id, now);
  next.set_attempt(current.attempt() + 1);
  next.set_replaces(current.id());
  const int64_t delay = policy.has_delay_ns() ? policy.delay_ns() : kDefaultRestartDelayNs;
  if (delay > 0) next.set_not_before(SaturatingAdd(now, delay));
  plan.create.push_back(std::move(next));
}

}  // namespace

bool Terminal(api::TaskState state) {
  return state > api::TASK_RUNNING;
}

bool Ready(const api::Task& t) {
  return t.status().state() == api::TASK_RUNNING &&
         t.status().health() != api::HEALTH_STARTING &&
         t.status().health() != api::HEALTH_UNHEALTHY;
}

api::Task NewTask(const api::Service& service, uint64_t slot, const std::string& node_id,
                  int64_t now) {
  api::Task t;
  t.set_service_id(service.id());
  t.set_service_name(service.spec().name());
  t.set_slot(slot);
  t.set_node_id(node_id);
  *t.mutable_spec() = service.spec().task();
  *t.mutable_endpoint() = service.spec().endpoint();
  t.set_spec_version(service.spec_version());
  t.set_desired_state(api::TASK_RUNNING);
  // The allocator gives it its addresses, then it is PENDING for the scheduler.
  t.mutable_status()->set_state(api::TASK_NEW);
  t.mutable_status()->set_timestamp(now);
  t.mutable_status()->set_message("created");
  return t;
}

Plan ReconcileReplicated(const api::Service& service, const TaskList& tasks,
                         const std::map<std::string, NodeView>& nodes, int64_t now) {
  Plan plan;
  const uint64_t replicas = service.spec().replicated().replicas();
  std::map<uint64_t, std::vector<const api::Task*>> slots;
  for (const auto& t : tasks)
    slots[t.slot()].push_back(&t);
  for (uint64_t slot = 1; slot <= replicas; ++slot)
    ReconcileGroup(service, slots[slot], slot, "", nodes, now, plan);
  // Scaling down removes the highest slots.
  for (const auto& [slot, group] : slots) {
    if (slot >= 1 && slot <= replicas) continue;
    for (const auto* t : group) {
      if (Live(*t)) plan.update.push_back(WithDesired(*t, api::TASK_SHUTDOWN));
    }
  }
  PlanUpdate(service, tasks, now, plan);
  PlanRebalance(service, tasks, nodes, now, plan);
  return plan;
}

bool Rebalances(const api::Service& service) {
  auto it = service.spec().labels().find(kRebalanceLabel);
  return it != service.spec().labels().end() && it->second == "true";
}

void PlanRebalance(const api::Service& service, const TaskList& tasks,
                   const std::map<std::string, NodeView>& nodes, int64_t now, Plan& plan) {
  if (!Rebalances(service) || service.spec().has_global() || !plan.empty() ||
      service.spec().task().placement().spread_size() > 0) {
    return;
  }
  const auto state = service.update_status().state();
  if (state == api::UpdateStatus::UPDATING || state == api::UpdateStatus::ROLLBACK_STARTED) return;
  // Every task placed, running (healthy) and of the current spec: no batch under way.
  std::map<std::string, std::vector<const api::Task*>> on;
  int64_t newest = 0;
  for (const auto& t : tasks) {
    if (!Live(t)) continue;
    if (!Ready(t) || t.node_id().empty() || t.spec_version() != service.spec_version()) return;
    on[t.node_id()].push_back(&t);
    newest = std::max(newest, t.meta().created_at());
  }
  const api::UpdateConfig& cfg = service.spec().update();
  if (SaturatingAdd(newest, cfg.delay_ns()) > now) {
    plan.wake_at = SaturatingAdd(newest, cfg.delay_ns());
    return;
  }
  // Tasks by node, over the nodes that are up and active: the ones that hold some, and the
  // ones that could take one.
  std::map<std::string, int64_t> count;
  std::set<std::string> targets;
  for (const auto& [id, n] : nodes) {
    if (!n.ready || n.availability != api::AVAILABILITY_ACTIVE) continue;
    auto it = on.find(id);
    if (it != on.end()) count[id] = static_cast<int64_t>(it->second.size());
    if (n.fits) {
      count.try_emplace(id, 0);
      targets.insert(id);
    }
  }
  const uint64_t limit = cfg.parallelism() == 0 ? std::numeric_limits<uint64_t>::max() : cfg.parallelism();
  for (uint64_t moved = 0; moved < limit && !targets.empty(); ++moved) {
    auto fullest = std::max_element(count.begin(), count.end(), [](const auto& a, const auto& b) {
      return a.second < b.second;
    });
    auto emptiest = std::min_element(targets.begin(), targets.end(),
                                      [&](const std::string& a, const std::string& b) {
                                        return count[a] < count[b];
                                      });
    if (fullest == count.end() || fullest->second - count[*emptiest] < 2) break;
    // The highest slot of the fullest node moves.
    auto& here = on[fullest->first];
    auto top = std::max_element(here.begin(), here.end(),
                                [](auto* a, auto* b) { return a->slot() < b->slot(); });
    const api::Task& from = **top;
    here.erase(top);
    plan.update.push_back(WithDesired(from, api::TASK_SHUTDOWN));
    api::Task next = NewTask(service, from.slot(), "", now);
    next.set_attempt(from.attempt());
    next.set_replaces(from.id());
    plan.create.push_back(std::move(next));
    --fullest->second;
    ++count[*emptiest];
    targets.erase(emptiest);  // one new task per node and batch
  }
}

Plan ReconcileGlobal(const api::Service& service, const TaskList& tasks,
                     const std::map<std::string, NodeView>& nodes, int64_t now) {
  Plan plan;
  std::map<std::string, std::vector<const api::Task*>> by_node;
  for (const auto& t : tasks)
    by_node[t.node_id()].push_back(&t);
  for (const auto& [id, node] : nodes) {
    const bool eligible = node.eligible && node.availability != api::AVAILABILITY_DRAIN;
    auto it = by_node.find(id);
    if (!eligible) continue;
    // A node that is down keeps its task: there is nowhere else for it to go.
    std::vector<const api::Task*> group =
        it == by_node.end() ? std::vector<const api::Task*>{} : it->second;
    bool has_live = std::any_of(group.begin(), group.end(), [](auto* t) { return Live(*t); });
    if (!has_live && !node.ready) continue;  // a new task waits until the node is back
    ReconcileGroup(service, group, 0, id, nodes, now, plan);
  }
  // Tasks of nodes that are gone, drained or no longer satisfy the constraints.
  for (const auto& [node_id, group] : by_node) {
    auto n = nodes.find(node_id);
    const bool keep =
        n != nodes.end() && n->second.eligible && n->second.availability != api::AVAILABILITY_DRAIN;
    if (keep) continue;
    for (const auto* t : group) {
      if (Live(*t)) plan.update.push_back(WithDesired(*t, api::TASK_SHUTDOWN));
    }
  }
  PlanUpdate(service, tasks, now, plan);
  return plan;
}

void PlanUpdate(const api::Service& service, const TaskList& tasks, int64_t now,
                Plan& plan) {
  using US = api::UpdateStatus;
  const auto state = service.update_status().state();
  const bool rolling_back = RollingBack(service);
  const api::UpdateConfig& cfg = ConfigInForce(service);
  std::set<std::string> touched;
  for (const auto& t : plan.update)
    touched.insert(t.id());
  std::vector<const api::Task*> old, fresh;
  for (const auto& t : tasks) {
    if (!Live(t) || touched.count(t.id())) continue;
    (t.spec_version() == service.spec_version() ? fresh : old).push_back(&t);
  }
  // Old tasks whose start-first replacement is on its way are not replaced again.
  std::set<std::string> replaced;
  for (const auto* t : fresh)
    replaced.insert(t->replaces());
  for (const auto& t : plan.create)
    replaced.insert(t.replaces());
  std::vector<const api::Task*> waiting;
  for (const auto* t : old) {
    if (!replaced.count(t->id())) waiting.push_back(t);
  }
  std::sort(waiting.begin(), waiting.end(), [](auto* a, auto* b) {
    if (a->slot() != b->slot()) return a->slot() < b->slot();
    return a->node_id() < b->node_id();
  });
  auto with_status = [&](US::State st, const std::string& message) {
    api::Service s = service;
    s.mutable_update_status()->set_state(st);
    s.mutable_update_status()->set_message(message);
    if (st == US::COMPLETED || st == US::ROLLBACK_COMPLETED) {
      s.mutable_update_status()->set_completed_at(now);
    }
    plan.service = s;
  };
  const bool updating = state == US::UPDATING || state == US::ROLLBACK_STARTED;
  if (!updating) return;  // paused, or no update under way

  // Failures of the update's own tasks, first: also when no old task is left (one replica
  // stopped first), a new one that fails pauses or rolls the update back.
  const int64_t started = service.update_status().started_at();
  std::string failed_task;
  size_t failures = 0;
  for (const auto& t : tasks) {
    if (t.spec_version() != service.spec_version() || t.meta().created_at() < started) continue;
    const auto st = t.status().state();
    if (st == api::TASK_FAILED || st == api::TASK_REJECTED) {
      ++failures;
      failed_task = t.id();
    }
  }
  const size_t slots = old.size() + fresh.size() + plan.create.size();
  if (failures > 0 && cfg.failure_action() != api::UpdateConfig::CONTINUE &&
      static_cast<double>(failures) > cfg.max_failure_ratio() * static_cast<double>(slots)) {
    const std::string why = "due to failure or early termination of task " + failed_task;
    if (cfg.failure_action() == api::UpdateConfig::ROLLBACK && !rolling_back &&
        service.has_previous_spec()) {
      api::Service s = service;
      *s.mutable_spec() = service.previous_spec();
      *s.mutable_previous_spec() = service.spec();
      s.set_spec_version(service.spec_version() + 1);
      s.mutable_update_status()->set_state(US::ROLLBACK_STARTED);
      s.mutable_update_status()->set_started_at(now);
      s.mutable_update_status()->set_message("update rolled back " + why);
      plan.service = s;
      return;
    }
    with_status(rolling_back ? US::ROLLBACK_PAUSED : US::PAUSED,
                (rolling_back ? "rollback paused " : "update paused ") + why);
    return;
  }

  if (old.empty()) {
    bool all_running = plan.create.empty();
    for (const auto* t : fresh)
      all_running &= Ready(*t);
    if (all_running) {
      with_status(rolling_back ? US::ROLLBACK_COMPLETED : US::COMPLETED,
                  rolling_back ? "rollback completed" : "update completed");
    }
    return;
  }
  // The next batch goes once the last one runs and the delay has passed.
  // A new task stays in progress until it has run for the monitor period without failing.
  const int64_t monitor = cfg.has_monitor_ns() ? cfg.monitor_ns() : kDefaultUpdateMonitorNs;
  size_t in_progress = plan.create.size();
  int64_t last_running = 0, monitored_until = 0;
  for (const auto* t : fresh) {
    if (t->status().state() <= api::TASK_RUNNING && !Ready(*t)) ++in_progress;
    if (Ready(*t) && t->meta().created_at() >= started) {
      last_running = std::max(last_running, t->status().timestamp());
      const int64_t monitored = SaturatingAdd(t->status().timestamp(), monitor);
      if (now < monitored) {
        ++in_progress;
        monitored_until = std::max(monitored_until, monitored);
      }
    }
  }
  const size_t parallelism = cfg.parallelism() == 0 ? old.size() : cfg.parallelism();
  const bool start_first = cfg.order() == api::UpdateConfig::START_FIRST;
  if (in_progress >= parallelism) {
    if (monitored_until) plan.wake_at = monitored_until;
    return;
  }
  if (cfg.delay_ns() > 0 && last_running > 0 && now < SaturatingAdd(last_running, cfg.delay_ns())) {
    plan.wake_at = SaturatingAdd(last_running, cfg.delay_ns());
    return;
  }
  const size_t n = std::min(waiting.size(), parallelism - in_progress);
  for (size_t i = 0; i < n; ++i) {
    const api::Task& t = *waiting[i];
    // Stop-first: the old task goes now. Start-first: once its replacement runs (the slot's
    // reconciliation sees to it).
    if (!start_first) plan.update.push_back(WithDesired(t, api::TASK_SHUTDOWN));
    api::Task next = NewTask(service, t.slot(), t.slot() == 0 ? t.node_id() : "", now);
    next.set_replaces(t.id());
    plan.create.push_back(std::move(next));
  }
}

std::vector<api::Task> Prune(const TaskList& tasks, int64_t history) {
  if (history < 1) history = 1;
  std::map<std::pair<uint64_t, std::string>, std::vector<const api::Task*>> groups;
  for (const auto& t : tasks)
    groups[{t.slot(), t.slot() == 0 ? t.node_id() : ""}].push_back(&t);
  std::vector<api::Task> out;
  for (auto& [key, group] : groups) {
    std::sort(group.begin(), group.end(), Newer);
    // Live tasks and tasks still stopping are never pruned, and count toward the limit; the
    // newest of the others fill what is left of it.
    auto done = [](const api::Task* t) { return !Live(*t) && Terminal(t->status().state()); };
    int64_t kept = std::count_if(group.begin(), group.end(), [&](auto* t) { return !done(t); });
    for (const auto* t : group) {
      if (!done(t)) continue;
      if (kept < history) {
        ++kept;
        continue;
      }
      out.push_back(*t);
    }
  }
  return out;
}

}  // namespace skep::orchestrator
