// What agents send the dispatcher (daemon/manager/dispatcher.cc): the input is parsed as an
// UpdateTaskStatusRequest, a SessionRequest and a HeartbeatRequest. Sessions and heartbeats
// are only stored or looked up; task statuses go further, into the store and from there into
// the orchestrator's pure reconcilers, which read their states, health and timestamps. So the
// statuses the dispatcher admits are applied to the tasks of two sample services, one of them
// in the middle of a rolling update, and both are reconciled, as the leader would next. Any
// crash or UBSan report is a finding; I/O free.
//
// The dispatcher's admission rule lives inside its request handler, not in a function of its
// own, so it is restated here: only the reporting node's tasks, and a state never moves back.
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "daemon/manager/orchestrator/reconcile.h"
#include "dispatcher.pb.h"

namespace {

namespace api = skep::api;
namespace orchestrator = skep::orchestrator;

constexpr int64_t kNow = 1'700'000'000'000'000'000;  // unix nanoseconds
constexpr int64_t kSecond = 1'000'000'000;
const std::string kReporter = "n1";  // the node named by the caller's certificate

api::Task MakeTask(const api::Service& s, const std::string& id, uint64_t slot,
                   const std::string& node, uint64_t spec_version, api::TaskState state,
                   api::TaskState desired, int64_t created) {
  api::Task t = orchestrator::NewTask(s, slot, node, created);
  t.set_id(id);
  t.mutable_meta()->set_version(spec_version * 10 + slot);
  t.mutable_meta()->set_created_at(created);
  t.set_spec_version(spec_version);
  t.set_desired_state(desired);
  t.mutable_status()->set_state(state);
  t.mutable_status()->set_timestamp(created + kSecond);
  return t;
}

// A replicated service of 3 updating from spec version 1 to 2, one replica at a time, rolling
// back when more than half the new tasks fail.
api::Service Replicated() {
  api::Service s;
  s.set_id("svc-r");
  s.mutable_spec()->set_name("web");
  s.mutable_spec()->mutable_replicated()->set_replicas(3);
  auto* update = s.mutable_spec()->mutable_update();
  update->set_parallelism(1);
  update->set_delay_ns(2 * kSecond);
  update->set_monitor_ns(5 * kSecond);
  update->set_failure_action(api::UpdateConfig::ROLLBACK);
  update->set_max_failure_ratio(0.5);
  s.mutable_spec()->mutable_task()->mutable_restart()->set_max_attempts(3);
  s.mutable_spec()->mutable_task()->mutable_restart()->set_window_ns(60 * kSecond);
  *s.mutable_previous_spec() = s.spec();
  s.set_spec_version(2);
  s.mutable_update_status()->set_state(api::UpdateStatus::UPDATING);
  s.mutable_update_status()->set_started_at(kNow - 60 * kSecond);
  return s;
}

std::vector<api::Task> ReplicatedTasks(const api::Service& s) {
  const int64_t before = kNow - 600 * kSecond, during = kNow - 30 * kSecond;
  return {
      MakeTask(s, "t1", 1, "n1", 2, api::TASK_RUNNING, api::TASK_RUNNING, during),
      MakeTask(s, "t2", 2, "n1", 2, api::TASK_STARTING, api::TASK_RUNNING, during),
      MakeTask(s, "t3", 3, "n2", 1, api::TASK_RUNNING, api::TASK_RUNNING, before),
      MakeTask(s, "t4", 1, "n1", 1, api::TASK_SHUTDOWN, api::TASK_SHUTDOWN, before),
      MakeTask(s, "t5", 2, "n1", 1, api::TASK_ASSIGNED, api::TASK_SHUTDOWN, before),
  };
}

// A global service with a task on each of n1 and n2, restarted on failure after 1 s.
api::Service Global() {
  api::Service s;
  s.set_id("svc-g");
  s.mutable_spec()->set_name("agent");
  s.mutable_spec()->mutable_global();
  s.mutable_spec()->mutable_task()->mutable_restart()->set_condition(
      api::RestartPolicy::ON_FAILURE);
  s.mutable_spec()->mutable_task()->mutable_restart()->set_delay_ns(kSecond);
  s.set_spec_version(1);
  return s;
}

std::vector<api::Task> GlobalTasks(const api::Service& s) {
  const int64_t created = kNow - 300 * kSecond;
  return {
      MakeTask(s, "g1", 0, "n1", 1, api::TASK_RUNNING, api::TASK_RUNNING, created),
      MakeTask(s, "g2", 0, "n2", 1, api::TASK_ACCEPTED, api::TASK_RUNNING, created),
  };
}

// The statuses of `request` the dispatcher writes, on `tasks` as the store holds them.
void Admit(const api::UpdateTaskStatusRequest& request, std::vector<api::Task>& tasks) {
  const std::vector<api::Task> stored = tasks;
  for (const auto& u : request.updates()) {
    for (size_t i = 0; i < stored.size(); ++i) {
      const api::Task& t = stored[i];
      if (t.id() != u.task_id() || t.node_id() != kReporter) continue;
      if (u.status().state() < t.status().state()) continue;
      *tasks[i].mutable_status() = u.status();
    }
  }
}

void Reconcile(const api::Service& s, const std::vector<api::Task>& tasks, bool global) {
  const std::map<std::string, orchestrator::NodeView> nodes{
      {"n1", {"n1", true, api::AVAILABILITY_ACTIVE, true}},
      {"n2", {"n2", true, api::AVAILABILITY_ACTIVE, true}},
      {"n3", {"n3", false, api::AVAILABILITY_ACTIVE, true}},
  };
  for (const auto& t : tasks) {
    (void)orchestrator::Ready(t);
    (void)orchestrator::Terminal(t.status().state());
  }
  for (int64_t now : {kNow, kNow + 10 * kSecond}) {
    orchestrator::Plan plan = global ? orchestrator::ReconcileGlobal(s, tasks, nodes, now)
                                     : orchestrator::ReconcileReplicated(s, tasks, nodes, now);
    (void)plan.empty();
  }
  (void)orchestrator::Prune(tasks, orchestrator::kDefaultTaskHistory);
}

}  // namespace

// Strings that are not UTF-8 are refused by the parser, which logs each one: not worth the
// noise at a million inputs a minute.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int n = static_cast<int>(size);
  api::SessionRequest session;
  (void)session.ParseFromArray(data, n);
  api::HeartbeatRequest heartbeat;
  (void)heartbeat.ParseFromArray(data, n);
  api::UpdateTaskStatusRequest request;
  if (!request.ParseFromArray(data, n)) return 0;

  const api::Service replicated = Replicated();
  std::vector<api::Task> replicated_tasks = ReplicatedTasks(replicated);
  Admit(request, replicated_tasks);
  Reconcile(replicated, replicated_tasks, false);

  const api::Service global = Global();
  std::vector<api::Task> global_tasks = GlobalTasks(global);
  Admit(request, global_tasks);
  Reconcile(global, global_tasks, true);
  return 0;
}
