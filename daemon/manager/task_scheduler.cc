#include "daemon/manager/task_scheduler.h"

#include <algorithm>
#include <map>
#include <span>
#include <string>
#include <tuple>

#include "daemon/manager/orchestrator/reconcile.h"
#include "daemon/manager/store_driven.h"
#include "scheduler/scheduler.h"

namespace skep::manager {

namespace {

// Failures of a service on a node this recent push the node down the ranking.
constexpr int64_t kRecentFailureNs = 300'000'000'000;

bool Occupies(const api::Task& t) {
  return !t.node_id().empty() && t.status().state() >= api::TASK_ASSIGNED &&
         !orchestrator::Terminal(t.status().state());
}

// A node as the scheduler sees it, with the load of `tasks`, the tasks on it.
template <class Tasks>
scheduler::NodeInfo InfoOf(const api::Node& n, const Tasks& tasks, int64_t now) {
  scheduler::NodeInfo info = NodeInfoOf(n);
  for (const auto& t : tasks) {
    if (Occupies(*t)) {
      const auto& r = t->spec().resources().reservations();
      info.reserved.nano_cpus += r.nano_cpus();
      info.reserved.memory_bytes += r.memory_bytes();
      ++info.tasks_by_service[t->service_id()];
      ++info.total_tasks;
      for (const auto& p : t->endpoint().ports()) {
        if (p.publish_mode() == api::PortConfig::HOST && p.published_port() != 0) {
          info.used_host_ports.push_back({p.protocol(), p.published_port()});
        }
      }
    } else if ((t->status().state() == api::TASK_FAILED ||
                t->status().state() == api::TASK_REJECTED) &&
               t->status().timestamp() > now - kRecentFailureNs) {
      ++info.recent_failures[t->service_id()];
    }
  }
  return info;
}

scheduler::TaskRequest RequestOf(const api::Task& t) {
  scheduler::TaskRequest r;
  r.task_id = t.id();
  r.service_id = t.service_id();
  auto parsed = scheduler::ParseConstraints(
      {t.spec().placement().constraints().begin(), t.spec().placement().constraints().end()});
  if (auto* c = std::get_if<std::vector<scheduler::Constraint>>(&parsed)) r.constraints = *c;
  r.reservations = {t.spec().resources().reservations().nano_cpus(),
                    t.spec().resources().reservations().memory_bytes()};
  r.memory_limited = t.spec().resources().limits().memory_bytes() > 0 ||
                     t.spec().resources().reservations().memory_bytes() > 0;
  for (const auto& p : t.spec().placement().platforms())
    r.platforms.push_back({p.os(), p.architecture()});
  for (const auto& p : t.endpoint().ports()) {
    if (p.publish_mode() == api::PortConfig::HOST) {
      r.host_ports.push_back({p.protocol(), p.published_port()});
    }
  }
  r.max_replicas_per_node = t.spec().placement().max_replicas();
  r.spread = {t.spec().placement().spread().begin(), t.spec().placement().spread().end()};
  return r;
}

// Where a task runs, as far as "one at a time" goes: its slot, or for a global service's
// task its node.
std::string PlaceOf(const api::Task& t) {
  return t.slot() != 0 ? "slot " + std::to_string(t.slot()) : "node " + t.node_id();
}

// How long a new task waits at most for the old task of its place to stop (SwarmKit's restart
// supervisor waits a minute too), counted from the old task's last change (its stop, or its
// node's last report on it): a node that is up but never reports the stop does not keep the
// place empty for good.
constexpr int64_t kOldTaskTimeoutNs = 60'000'000'000;

// The tasks of each service being stopped on a node that is up, by place: a new task for the
// same place waits until that one has stopped, so that no slot ever runs two tasks at once
// (a stop-first update, a scale down and up, a rebalance, a drain). One on a node that is down
// or gone holds nothing: nothing could confirm it stopped; nor one that has been stopping for
// longer than kOldTaskTimeoutNs.
class Stopping {
 public:
  Stopping(const ReadTx& tx, int64_t now) : tx_(tx), now_(now) {}

  // The task `t` waits for, or null.
  const api::Task* Holding(const api::Task& t) {
    auto [it, fresh] = by_service_.try_emplace(t.service_id());
    if (fresh) {
      for (const auto* o : tx_.tasks_of_service(t.service_id())) {
        if (o->desired_state() <= api::TASK_RUNNING || o->node_id().empty() ||
            o->status().state() < api::TASK_ASSIGNED || orchestrator::Terminal(o->status().state()))
          continue;
        if (GivenUpAt(*o) <= now_) continue;
        const api::Node* n = tx_.node(o->node_id());
        if (n == nullptr || n->status().state() == api::NODE_STATE_DOWN) continue;
        it->second.emplace(PlaceOf(*o), o);
      }
    }
    auto held = it->second.find(PlaceOf(t));
    return held == it->second.end() ? nullptr : held->second;
  }

  // When the wait for `old` ends by time alone (its last change is the store's own time).
  static int64_t GivenUpAt(const api::Task& old) {
    return old.meta().updated_at() + kOldTaskTimeoutNs;
  }

 private:
  const ReadTx& tx_;
  const int64_t now_;
  std::map<std::string, std::map<std::string, const api::Task*>> by_service_;
};

// A proposal's worth of waiting tasks, placed or told why not, into `batch`; `nodes` keep
// what each placement takes, for the next chunk.
void PlaceChunk(std::span<const Shared<api::Task>> waiting,
                std::vector<scheduler::NodeInfo>& nodes,
                const std::map<std::string, size_t>& node_index, int64_t now,
                api::StoreBatch& batch) {
  // Global tasks come with their node: the scheduler only checks that it can take them.
  std::vector<scheduler::TaskRequest> free;
  std::map<std::string, const api::Task*> by_id;
  std::map<std::string, std::string> assigned, unplaced;
  for (const auto& task : waiting) {
    const api::Task* t = task.get();
    by_id[t->id()] = t;
    if (t->node_id().empty()) {
      free.push_back(RequestOf(*t));
      continue;
    }
    auto it = node_index.find(t->node_id());
    if (it == node_index.end()) continue;  // the orchestrator removes it
    std::vector<scheduler::NodeInfo> one{nodes[it->second]};
    auto d = scheduler::Schedule(one, {RequestOf(*t)});
    if (!d.assignments.empty()) {
      nodes[it->second] = one.front();
      assigned[t->id()] = t->node_id();
    } else {
      auto verdict = scheduler::Check(nodes[it->second], RequestOf(*t));
      unplaced[t->id()] =
          "no suitable node (" + (verdict ? verdict->reason : std::string("unavailable")) + ")";
    }
  }
  auto decisions = scheduler::Schedule(nodes, free);
  for (const auto& a : decisions.assignments)
    assigned[a.task_id] = a.node_id;
  for (const auto& u : decisions.unplaced)
    unplaced[u.task_id] = u.reason;
  for (const auto& [id, node] : assigned) {
    api::Task t = *by_id.at(id);
    t.set_node_id(node);
    t.clear_scheduling_error();
    auto* st = t.mutable_status();
    st->set_state(api::TASK_ASSIGNED);
    st->set_timestamp(now);
    st->set_message("scheduler assigned task to node");
    st->clear_err();
    auto* a = batch.add_actions();
    a->set_kind(api::StoreAction::UPDATE);
    *a->mutable_task() = std::move(t);
  }
  for (const auto& [id, reason] : unplaced) {
    const api::Task* old = by_id.at(id);
    if (old->scheduling_error() == reason) continue;  // nothing new to say
    api::Task t = *old;
    t.set_scheduling_error(reason);
    t.mutable_status()->set_err(reason);
    auto* a = batch.add_actions();
    a->set_kind(api::StoreAction::UPDATE);
    *a->mutable_task() = std::move(t);
  }
}

// One pass: every task waiting for a node, placed or told why not, in one batch.
PassResult SchedulePass(const Store& store, int64_t now) {
  int64_t wake_at = 0;
  api::StoreBatch batch;
  // The tasks and nodes are copied under the store's lock and scheduled after it: the raft
  // node's apply waits for readers, and scheduling thousands of tasks takes a while.
  std::vector<Shared<api::Task>> waiting;
  std::vector<scheduler::NodeInfo> nodes;
  std::map<std::string, size_t> node_index;
  std::vector<std::pair<Shared<api::Node>, std::vector<Shared<api::Task>>>> on_nodes;
  store.View([&](const ReadTx& tx) {
    std::map<const api::Task*, std::string> held;  // waiting for their place to be free
    Stopping stopping(tx, now);
    for (auto& t : tx.share_tasks_waiting()) {
      if (t->not_before() > now) {
        wake_at = wake_at == 0 ? t->not_before() : std::min(wake_at, t->not_before());
        continue;
      }
      if (const api::Task* old = stopping.Holding(*t)) {
        held[t.get()] = "waiting for task " + old->id() + " to stop";
        const int64_t until = Stopping::GivenUpAt(*old);
        wake_at = wake_at == 0 ? until : std::min(wake_at, until);
        continue;
      }
      waiting.push_back(std::move(t));
    }
    // Told why they wait (written only when the reason is new); the old task's stop wakes us.
    for (const auto& [t, reason] : held) {
      if (t->scheduling_error() == reason) continue;
      api::Task next = *t;
      next.set_scheduling_error(reason);
      next.mutable_status()->set_err(reason);
      auto* a = batch.add_actions();
      a->set_kind(api::StoreAction::UPDATE);
      *a->mutable_task() = std::move(next);
    }
    if (waiting.empty()) return;
    // The nodes' loads are worked out after the lock, from the store's own objects.
    for (auto& n : tx.share_nodes()) {
      auto tasks = tx.share_tasks_on_node(n->id());
      on_nodes.emplace_back(std::move(n), std::move(tasks));
    }
  });
  for (const auto& [n, tasks] : on_nodes) {
    node_index[n->id()] = nodes.size();
    nodes.push_back(InfoOf(*n, tasks, now));
  }
  // Every waiting task in one pass, a proposal's worth of tasks at a time (the driver writes
  // the batch in parts): a pass reads the store once for all of them.
  for (size_t from = 0; from < waiting.size(); from += kMaxActionsPerProposal) {
    const size_t to = std::min(waiting.size(), from + kMaxActionsPerProposal);
    PlaceChunk(std::span(waiting).subspan(from, to - from), nodes, node_index, now, batch);
  }
  return {std::move(batch), wake_at};
}

}  // namespace

scheduler::NodeInfo NodeInfoOf(const api::Node& n) {
  scheduler::NodeInfo info;
  info.id = n.id();
  info.hostname = n.description().hostname();
  info.role = n.role() == api::ROLE_MANAGER ? "manager" : "worker";
  info.addr = n.status().addr();
  info.platform = {n.description().os(), n.description().arch()};
  info.labels = {n.spec().labels().begin(), n.spec().labels().end()};
  info.engine_labels = {n.description().engine_labels().begin(),
                        n.description().engine_labels().end()};
  info.ready = n.status().state() == api::NODE_STATE_READY;
  switch (n.spec().availability()) {
    case api::AVAILABILITY_PAUSE:
      info.availability = "pause";
      break;
    case api::AVAILABILITY_DRAIN:
      info.availability = "drain";
      break;
    default:
      info.availability = "active";
  }
  info.total = {n.description().nano_cpus(), n.description().memory_bytes()};
  info.memory_limits = !n.description().no_memory_cgroup();
  return info;
}

scheduler::NodeInfo NodeLoadOf(const api::Node& n, const ReadTx& tx, int64_t now) {
  return InfoOf(n, tx.tasks_on_node(n.id()), now);
}

api::ExplainServiceResponse ExplainPlacement(const ReadTx& tx, const api::Service& service,
                                             int64_t now) {
  api::ExplainServiceResponse out;
  out.set_service_id(service.id());
  out.set_service_name(service.spec().name());
  api::Task sample = orchestrator::NewTask(service, 1, "", now);
  sample.set_id("(new)");
  const scheduler::TaskRequest request = RequestOf(sample);
  std::vector<scheduler::NodeInfo> nodes;
  for (const auto* n : tx.nodes())
    nodes.push_back(InfoOf(*n, tx.tasks_on_node(n->id()), now));
  std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) {
    return std::tie(a.hostname, a.id) < std::tie(b.hostname, b.id);
  });
  std::string next;
  {
    std::vector<scheduler::NodeInfo> copy = nodes;
    const auto d = scheduler::Schedule(copy, {request});
    if (!d.assignments.empty()) next = d.assignments[0].node_id;
  }
  for (const auto& n : nodes) {
    auto* v = out.add_nodes();
    v->set_node_id(n.id);
    v->set_hostname(n.hostname);
    auto it = n.tasks_by_service.find(service.id());
    v->set_service_tasks(it == n.tasks_by_service.end() ? 0 : it->second);
    v->set_total_tasks(n.total_tasks);
    if (auto verdict = scheduler::Check(n, request)) {
      v->set_filter(verdict->filter);
      v->set_reason(verdict->reason);
    } else {
      v->set_fits(true);
    }
    v->set_next(n.id == next);
  }
  return out;
}

std::unique_ptr<LeaderComponent> MakeTaskScheduler(Context& ctx) {
  return MakeStoreDriven(ctx, "scheduler",
                         [&ctx](int64_t now) { return SchedulePass(ctx.store(), now); });
}

}  // namespace skep::manager
