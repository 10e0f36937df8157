#include <catch2/catch.hpp>

#include "daemon/manager/orchestrator/reconcile.h"

using namespace skep;
using namespace skep::orchestrator;

namespace {

api::Service Replicated(uint64_t replicas) {
  api::Service s;
  s.set_id("s");
  s.mutable_spec()->set_name("web");
  s.mutable_spec()->mutable_replicated()->set_replicas(replicas);
  s.set_spec_version(1);
  return s;
}

api::Task Task(const std::string& id, uint64_t slot, const std::string& node, api::TaskState state,
               uint64_t version, uint64_t attempt = 0) {
  api::Task t;
  t.set_id(id);
  t.set_service_id("s");
  t.set_slot(slot);
  t.set_node_id(node);
  t.set_desired_state(api::TASK_RUNNING);
  t.mutable_status()->set_state(state);
  t.mutable_meta()->set_version(version);
  t.set_attempt(attempt);
  return t;
}

std::map<std::string, NodeView> Nodes(std::initializer_list<std::string> ids) {
  std::map<std::string, NodeView> out;
  for (const auto& id : ids)
    out[id] = NodeView{id, true, api::AVAILABILITY_ACTIVE, true};
  return out;
}

}  // namespace

TEST_CASE("replicated: missing slots get tasks, extra slots are shut down", "[reconcile]") {
  std::vector<api::Task> tasks{Task("a", 1, "n1", api::TASK_RUNNING, 1),
                               Task("b", 4, "n1", api::TASK_RUNNING, 1)};
  Plan p = ReconcileReplicated(Replicated(3), tasks, Nodes({"n1"}), 100);
  REQUIRE(p.create.size() == 2);
  CHECK(p.create[0].slot() == 2);
  CHECK(p.create[1].slot() == 3);
  CHECK(p.create[0].status().state() == api::TASK_NEW);  // the allocator's next
  CHECK(p.create[0].spec_version() == 1);
  REQUIRE(p.update.size() == 1);
  CHECK(p.update[0].id() == "b");
  CHECK(p.update[0].desired_state() == api::TASK_SHUTDOWN);
  // Once applied, the same input plans nothing.
  tasks.push_back(Task("c", 2, "", api::TASK_PENDING, 2));
  tasks.push_back(Task("d", 3, "", api::TASK_PENDING, 2));
  tasks[1].set_desired_state(api::TASK_SHUTDOWN);
  CHECK(ReconcileReplicated(Replicated(3), tasks, Nodes({"n1"}), 100).empty());
}

TEST_CASE("restart policy: on-failure with max attempts restarts exactly that often",
          "[reconcile]") {
  api::Service s = Replicated(1);
  auto* r = s.mutable_spec()->mutable_task()->mutable_restart();
  r->set_condition(api::RestartPolicy::ON_FAILURE);
  r->set_max_attempts(3);
  r->set_delay_ns(7);
  std::vector<api::Task> tasks{Task("t0", 1, "n1", api::TASK_FAILED, 1)};
  int restarts = 0;
  for (int round = 0; round < 10; ++round) {
    Plan p = ReconcileReplicated(s, tasks, Nodes({"n1"}), 1000);
    if (p.create.empty()) break;
    ++restarts;
    REQUIRE(p.create.size() == 1);
    CHECK(p.create[0].not_before() == 1007);  // the restart delay
    CHECK(p.create[0].attempt() == static_cast<uint64_t>(restarts));
    CHECK(p.create[0].replaces() == tasks.back().id());
    REQUIRE(p.update.size() == 1);
    CHECK(p.update[0].desired_state() == api::TASK_SHUTDOWN);
    tasks.back() = p.update[0];
    api::Task next = p.create[0];
    next.set_id("t" + std::to_string(restarts));
    next.mutable_meta()->set_version(10 + restarts);
    next.mutable_status()->set_state(api::TASK_FAILED);  // it fails again
    tasks.push_back(next);
  }
  CHECK(restarts == 3);
  // A task that completes is not restarted under on-failure, but is under any.
  std::vector<api::Task> done{Task("ok", 1, "n1", api::TASK_COMPLETE, 1)};
  CHECK(ReconcileReplicated(s, done, Nodes({"n1"}), 0).empty());
  r->set_condition(api::RestartPolicy::ANY);
  CHECK(ReconcileReplicated(s, done, Nodes({"n1"}), 0).create.size() == 1);
  r->set_condition(api::RestartPolicy::NONE);
  std::vector<api::Task> failed{Task("f", 1, "n1", api::TASK_FAILED, 1)};
  CHECK(ReconcileReplicated(s, failed, Nodes({"n1"}), 0).empty());
}

TEST_CASE("tasks on a down or drained node are replaced at once in their slot", "[reconcile]") {
  auto nodes = Nodes({"n1", "n2"});
  nodes["n1"].ready = false;
  std::vector<api::Task> tasks{Task("a", 1, "n1", api::TASK_RUNNING, 1, 2),
                               Task("b", 2, "n2", api::TASK_RUNNING, 1)};
  Plan p = ReconcileReplicated(Replicated(2), tasks, nodes, 0);
  REQUIRE(p.create.size() == 1);
  CHECK(p.create[0].slot() == 1);
  CHECK(p.create[0].node_id().empty());
  CHECK(p.create[0].not_before() == 0);
  CHECK(p.create[0].attempt() == 2);  // not a restart: the count is unchanged
  REQUIRE(p.update.size() == 1);
  CHECK(p.update[0].id() == "a");
  nodes["n1"].ready = true;
  nodes["n2"].availability = api::AVAILABILITY_DRAIN;
  p = ReconcileReplicated(Replicated(2), tasks, nodes, 0);
  REQUIRE(p.update.size() == 1);
  CHECK(p.update[0].id() == "b");
}

TEST_CASE("global: one task per eligible node, none on drained or ineligible ones", "[reconcile]") {
  api::Service s;
  s.set_id("s");
  s.mutable_spec()->mutable_global();
  auto nodes = Nodes({"n1", "n2", "n3", "n4"});
  nodes["n2"].availability = api::AVAILABILITY_DRAIN;
  nodes["n3"].eligible = false;
  nodes["n4"].ready = false;  // down: no new task until it is back
  std::vector<api::Task> tasks{Task("a", 0, "n2", api::TASK_RUNNING, 1),
                               Task("gone", 0, "n9", api::TASK_RUNNING, 1)};
  Plan p = ReconcileGlobal(s, tasks, nodes, 0);
  REQUIRE(p.create.size() == 1);
  CHECK(p.create[0].node_id() == "n1");
  CHECK(p.create[0].slot() == 0);
  REQUIRE(p.update.size() == 2);
  for (const auto& t : p.update)
    CHECK(t.desired_state() == api::TASK_SHUTDOWN);
}

TEST_CASE("history is pruned to the limit per slot, oldest first, never live tasks",
          "[reconcile]") {
  std::vector<api::Task> tasks;
  for (int i = 0; i < 8; ++i) {
    api::Task t = Task("t" + std::to_string(i), 1, "n1", api::TASK_FAILED, 10 + i);
    t.set_desired_state(api::TASK_SHUTDOWN);
    tasks.push_back(t);
  }
  tasks.push_back(Task("live", 1, "n1", api::TASK_RUNNING, 30));
  auto stopping = Task("stopping", 1, "n1", api::TASK_RUNNING, 5);
  stopping.set_desired_state(api::TASK_SHUTDOWN);
  tasks.push_back(stopping);
  auto pruned = Prune(tasks, 5);
  std::set<std::string> ids;
  for (const auto& t : pruned)
    ids.insert(t.id());
  // live + stopping + t7..t5 stay (5); t4..t0 go.
  CHECK(ids == std::set<std::string>{"t0", "t1", "t2", "t3", "t4"});
}

namespace {

api::Service Updating(uint64_t replicas, uint64_t parallelism, int64_t started) {
  api::Service s = Replicated(replicas);
  s.set_spec_version(2);
  s.mutable_spec()->mutable_update()->set_parallelism(parallelism);
  s.mutable_spec()->mutable_update()->set_monitor_ns(0);
  s.mutable_update_status()->set_state(api::UpdateStatus::UPDATING);
  s.mutable_update_status()->set_started_at(started);
  *s.mutable_previous_spec() = s.spec();
  return s;
}

api::Task Versioned(api::Task t, uint64_t spec_version, int64_t created) {
  t.set_spec_version(spec_version);
  t.mutable_meta()->set_created_at(created);
  return t;
}

}  // namespace

TEST_CASE("a rolling update replaces old tasks parallelism at a time, then completes",
          "[reconcile]") {
  const auto nodes = Nodes({"n1"});
  api::Service s = Updating(3, 1, 100);
  std::vector<api::Task> tasks;
  for (uint64_t slot = 1; slot <= 3; ++slot) {
    tasks.push_back(
        Versioned(Task("old" + std::to_string(slot), slot, "n1", api::TASK_RUNNING, slot), 1, 50));
  }
  Plan p = ReconcileReplicated(s, tasks, nodes, 200);
  REQUIRE(p.create.size() == 1);  // one at a time
  CHECK(p.create[0].slot() == 1);
  CHECK(p.create[0].spec_version() == 2);
  REQUIRE(p.update.size() == 1);
  CHECK(p.update[0].id() == "old1");
  CHECK(p.update[0].desired_state() == api::TASK_SHUTDOWN);

  // While the new task is not running yet, nothing more is replaced.
  tasks[0].set_desired_state(api::TASK_SHUTDOWN);
  tasks.push_back(Versioned(Task("new1", 1, "n1", api::TASK_STARTING, 10), 2, 210));
  CHECK(ReconcileReplicated(s, tasks, nodes, 220).empty());
  // Once it runs, and has run for the monitor period, the next slot goes.
  tasks.back().mutable_status()->set_state(api::TASK_RUNNING);
  tasks.back().mutable_status()->set_timestamp(225);
  s.mutable_spec()->mutable_update()->set_monitor_ns(50);
  p = ReconcileReplicated(s, tasks, nodes, 230);
  CHECK(p.create.empty());
  CHECK(p.wake_at == 275);
  p = ReconcileReplicated(s, tasks, nodes, 280);
  REQUIRE(p.create.size() == 1);
  CHECK(p.create[0].slot() == 2);

  // The delay holds the next batch back and says when to look again.
  s.mutable_spec()->mutable_update()->set_monitor_ns(0);
  s.mutable_spec()->mutable_update()->set_delay_ns(1000);
  tasks.back().mutable_status()->set_timestamp(300);
  p = ReconcileReplicated(s, tasks, nodes, 400);
  CHECK(p.create.empty());
  CHECK(p.wake_at == 1300);

  // All on the new version and running: the update is completed.
  std::vector<api::Task> done;
  for (uint64_t slot = 1; slot <= 3; ++slot)
    done.push_back(
        Versioned(Task("n" + std::to_string(slot), slot, "n1", api::TASK_RUNNING, 20), 2, 210));
  p = ReconcileReplicated(s, done, nodes, 500);
  REQUIRE(p.service);
  CHECK(p.service->update_status().state() == api::UpdateStatus::COMPLETED);
  CHECK(p.service->update_status().completed_at() == 500);
}

TEST_CASE("a failing update pauses by default, or rolls back when told to", "[reconcile]") {
  const auto nodes = Nodes({"n1"});
  api::Service s = Updating(2, 1, 100);
  s.mutable_previous_spec()->mutable_task()->mutable_container()->set_image("web:1");
  std::vector<api::Task> tasks{Versioned(Task("old2", 2, "n1", api::TASK_RUNNING, 1), 1, 50),
                               Versioned(Task("new1", 1, "n1", api::TASK_FAILED, 5), 2, 150)};
  Plan p = ReconcileReplicated(s, tasks, nodes, 200);
  REQUIRE(p.service);
  CHECK(p.service->update_status().state() == api::UpdateStatus::PAUSED);
  CHECK(p.service->update_status().message() ==
        "update paused due to failure or early termination of task new1");
  for (const auto& t : p.update)
    CHECK(t.id() != "old2");  // the old task stays

  // A tolerated failure ratio goes on.
  s.mutable_spec()->mutable_update()->set_max_failure_ratio(0.5);
  p = ReconcileReplicated(s, tasks, nodes, 200);
  CHECK_FALSE(p.service);

  s.mutable_spec()->mutable_update()->set_max_failure_ratio(0);
  s.mutable_spec()->mutable_update()->set_failure_action(api::UpdateConfig::ROLLBACK);
  p = ReconcileReplicated(s, tasks, nodes, 200);
  REQUIRE(p.service);
  CHECK(p.service->update_status().state() == api::UpdateStatus::ROLLBACK_STARTED);
  CHECK(p.service->spec().task().container().image() == "web:1");
  CHECK(p.service->spec_version() == 3);
}

TEST_CASE("a start-first update starts the new task before it stops the old one", "[reconcile]") {
  const auto nodes = Nodes({"n1"});
  api::Service s = Updating(2, 1, 100);
  s.mutable_spec()->mutable_update()->set_order(api::UpdateConfig::START_FIRST);
  std::vector<api::Task> tasks = {Versioned(Task("old1", 1, "n1", api::TASK_RUNNING, 1), 1, 50),
                                  Versioned(Task("old2", 2, "n1", api::TASK_RUNNING, 2), 1, 50)};
  Plan p = ReconcileReplicated(s, tasks, nodes, 200);
  REQUIRE(p.create.size() == 1);
  CHECK(p.create[0].slot() == 1);
  CHECK(p.create[0].replaces() == "old1");
  CHECK(p.update.empty());  // the old task keeps running meanwhile

  // The replacement is starting: both stay, nothing else is replaced.
  api::Task next = Versioned(Task("new1", 1, "n1", api::TASK_STARTING, 10), 2, 210);
  next.set_replaces("old1");
  tasks.push_back(next);
  CHECK(ReconcileReplicated(s, tasks, nodes, 220).empty());

  // It runs: the old one stops, and (the monitor being 0) the next slot starts its own.
  tasks.back().mutable_status()->set_state(api::TASK_RUNNING);
  tasks.back().mutable_status()->set_timestamp(225);
  p = ReconcileReplicated(s, tasks, nodes, 230);
  REQUIRE(p.update.size() == 1);
  CHECK(p.update[0].id() == "old1");
  CHECK(p.update[0].desired_state() == api::TASK_SHUTDOWN);
  REQUIRE(p.create.size() == 1);
  CHECK(p.create[0].slot() == 2);
  CHECK(p.create[0].replaces() == "old2");

  // A replacement that fails does not take the old task down with it.
  api::Task bad = Versioned(Task("new2", 2, "n1", api::TASK_FAILED, 11), 2, 240);
  bad.set_replaces("old2");
  tasks[0].set_desired_state(api::TASK_SHUTDOWN);
  tasks.push_back(bad);
  p = ReconcileReplicated(s, tasks, nodes, 250);
  for (const auto& u : p.update)
    CHECK(u.id() != "old2");
  REQUIRE(p.service);
  CHECK(p.service->update_status().state() == api::UpdateStatus::PAUSED);

  // Stop-first, for comparison: the old task is told to stop in the same plan.
  api::Service stop_first = Updating(1, 1, 100);
  p = ReconcileReplicated(
      stop_first, {Versioned(Task("old1", 1, "n1", api::TASK_RUNNING, 1), 1, 50)}, nodes, 200);
  REQUIRE(p.update.size() == 1);
  CHECK(p.update[0].id() == "old1");
  CHECK(p.create.size() == 1);
}

namespace {

// Applies a rebalancing plan as the store and scheduler would: the old tasks stop, each new one
// goes to the fitting node with the fewest of the service's tasks, and runs.
void Apply(const Plan& p, std::vector<api::Task>& tasks, const std::map<std::string, NodeView>& nodes,
           int64_t now) {
  for (const auto& u : p.update) {
    for (auto& t : tasks) {
      if (t.id() == u.id()) t = u;
    }
  }
  for (auto t : p.create) {
    std::map<std::string, int> count;
    for (const auto& [id, n] : nodes) {
      if (n.fits) count[id] = 0;
    }
    for (const auto& o : tasks) {
      if (o.desired_state() <= api::TASK_RUNNING && count.count(o.node_id())) ++count[o.node_id()];
    }
    auto best = std::min_element(count.begin(), count.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
    t.set_id("m" + std::to_string(tasks.size()));
    t.set_node_id(best->first);
    t.mutable_status()->set_state(api::TASK_RUNNING);
    t.mutable_meta()->set_created_at(now);
    tasks.push_back(t);
  }
}

std::map<std::string, int> PerNode(const std::vector<api::Task>& tasks) {
  std::map<std::string, int> out;
  for (const auto& t : tasks) {
    if (t.desired_state() <= api::TASK_RUNNING) ++out[t.node_id()];
  }
  return out;
}

}  // namespace

TEST_CASE("rebalancing moves tasks to even a service out, only when asked, a batch at a time",
          "[reconcile]") {
  api::Service s = Replicated(4);
  s.mutable_spec()->mutable_update()->set_parallelism(1);
  std::vector<api::Task> tasks;
  for (uint64_t slot = 1; slot <= 4; ++slot) {
    tasks.push_back(Task("t" + std::to_string(slot), slot, "n1", api::TASK_RUNNING, slot));
    tasks.back().set_spec_version(1);
  }
  auto nodes = Nodes({"n1", "n2", "n3"});
  for (auto& [id, n] : nodes)
    n.fits = true;

  // Without the label nothing moves.
  CHECK(ReconcileReplicated(s, tasks, nodes, 1000).empty());

  (*s.mutable_spec()->mutable_labels())[kRebalanceLabel] = "true";
  Plan p = ReconcileReplicated(s, tasks, nodes, 1000);
  REQUIRE(p.update.size() == 1);  // parallelism 1
  CHECK(p.update[0].id() == "t4");  // the highest slot of the fullest node
  CHECK(p.update[0].desired_state() == api::TASK_SHUTDOWN);
  REQUIRE(p.create.size() == 1);
  CHECK(p.create[0].slot() == 4);
  CHECK(p.create[0].replaces() == "t4");
  CHECK(p.create[0].node_id().empty());  // the scheduler's to place

  // While the new task is not running yet, the next batch waits.
  std::vector<api::Task> pending = tasks;
  pending[3].set_desired_state(api::TASK_SHUTDOWN);
  pending.push_back(p.create[0]);
  pending.back().set_id("new");
  CHECK(ReconcileReplicated(s, pending, nodes, 1000).empty());

  int moves = 0;
  for (int round = 0; round < 10; ++round) {
    Plan next = ReconcileReplicated(s, tasks, nodes, 1000 + round);
    if (next.empty()) break;
    moves += static_cast<int>(next.create.size());
    Apply(next, tasks, nodes, 1000 + round);
  }
  CHECK(moves == 2);
  CHECK(PerNode(tasks) == std::map<std::string, int>{{"n1", 2}, {"n2", 1}, {"n3", 1}});
}

TEST_CASE("rebalancing keeps to parallelism 0, the delay, fitting nodes, updates and spread",
          "[reconcile]") {
  api::Service s = Replicated(6);
  (*s.mutable_spec()->mutable_labels())[kRebalanceLabel] = "true";
  s.mutable_spec()->mutable_update()->set_parallelism(0);  // every move at once
  std::vector<api::Task> tasks;
  for (uint64_t slot = 1; slot <= 6; ++slot) {
    tasks.push_back(Task("t" + std::to_string(slot), slot, "n1", api::TASK_RUNNING, slot));
    tasks.back().set_spec_version(1);
    tasks.back().mutable_meta()->set_created_at(500);
  }
  auto nodes = Nodes({"n1", "n2", "n3"});
  nodes["n1"].fits = nodes["n2"].fits = true;  // n3 cannot take one (constraints, resources)

  // At most one new task per node and batch: one to n2 only.
  Plan p = ReconcileReplicated(s, tasks, nodes, 1000);
  CHECK(p.create.size() == 1);
  for (int round = 0; round < 10; ++round) {
    Plan next = ReconcileReplicated(s, tasks, nodes, 1000 + round);
    if (next.empty()) break;
    Apply(next, tasks, nodes, 1000 + round);
  }
  CHECK(PerNode(tasks) == std::map<std::string, int>{{"n1", 3}, {"n2", 3}});

  // The update delay since the newest task's start.
  api::Service delayed = s;
  delayed.mutable_spec()->mutable_update()->set_delay_ns(1000);
  std::vector<api::Task> fresh;
  for (uint64_t slot = 1; slot <= 4; ++slot) {
    fresh.push_back(Task("f" + std::to_string(slot), slot, "n1", api::TASK_RUNNING, slot));
    fresh.back().set_spec_version(1);
    fresh.back().mutable_meta()->set_created_at(900);
  }
  delayed.mutable_spec()->mutable_replicated()->set_replicas(4);
  p = ReconcileReplicated(delayed, fresh, nodes, 1500);
  CHECK(p.create.empty());
  CHECK(p.wake_at == 1900);
  CHECK(ReconcileReplicated(delayed, fresh, nodes, 1900).create.size() == 1);

  // Not during an update, not with placement preferences, never for a drained target.
  api::Service updating = delayed;
  updating.mutable_update_status()->set_state(api::UpdateStatus::UPDATING);
  CHECK(ReconcileReplicated(updating, fresh, nodes, 5000).create.empty());
  api::Service spread = delayed;
  spread.mutable_spec()->mutable_task()->mutable_placement()->add_spread("node.labels.zone");
  CHECK(ReconcileReplicated(spread, fresh, nodes, 5000).empty());
  auto drained = nodes;
  drained["n2"].availability = api::AVAILABILITY_DRAIN;
  CHECK(ReconcileReplicated(delayed, fresh, drained, 5000).empty());
}
