#include "daemon/manager/orchestrator/orchestrator.h"

#include <boost/asio/post.hpp>

#include <optional>
#include <set>

#include "daemon/common/clock.h"
#include "daemon/common/log.h"
#include "daemon/common/pki.h"
#include "daemon/manager/orchestrator/reconcile.h"
#include "daemon/manager/store_driven.h"
#include "daemon/manager/task_scheduler.h"
#include "scheduler/constraint.h"

namespace skep::orchestrator {

namespace asio = boost::asio;
using manager::ReadTx;
using manager::StoreEvent;

namespace {

// Whether a node passes a service's constraints, for global services.
bool Eligible(const api::Service& s, const api::Node& n) {
  auto parsed = scheduler::ParseConstraints({s.spec().task().placement().constraints().begin(),
                                             s.spec().task().placement().constraints().end()});
  auto* constraints = std::get_if<std::vector<scheduler::Constraint>>(&parsed);
  if (constraints == nullptr) return false;
  const scheduler::NodeInfo info = manager::NodeInfoOf(n);
  for (const auto& c : *constraints) {
    if (!scheduler::Matches(c, info)) return false;
  }
  return true;
}

class Orchestrator final : public std::enable_shared_from_this<Orchestrator> {
 public:
  explicit Orchestrator(manager::Context& ctx)
      : ctx_(ctx), strand_(ctx.MakeStrand()), pacer_(strand_, ctx.clock()) {}

  void Start(uint64_t term) {
    asio::post(strand_, [self = shared_from_this(), term] {
      self->running_ = true;
      self->term_ = term;
      ++self->epoch_;
      self->live_ = std::make_shared<std::atomic<bool>>(true);
      self->sub_ = self->ctx_.store().Watch([weak = self->weak_from_this()](const StoreEvent& ev) {
        if (auto me = weak.lock()) me->OnEvent(ev);
      });
      self->all_dirty_ = true;
      self->Run();
    });
  }

  // Returns at once: the work on the strand ends at its next step, and what it still proposes
  // carries the old term.
  void Stop() {
    asio::post(strand_, [self = shared_from_this()] {
      self->running_ = false;
      ++self->epoch_;
      *self->live_ = false;
      self->sub_.Cancel();
      self->timer_.reset();
      self->pacer_.Reset();
      self->wake_timer_.reset();
      self->wake_.clear();
      self->in_flight_.clear();
      self->dirty_.clear();
      self->dirty_nodes_.clear();
    });
  }

 private:
  // Where the store applies entries: only enqueue.
  void OnEvent(const StoreEvent& ev) {
    std::string service, node;
    bool all = false;
    if (const auto* t = ev.task()) service = t->service_id();
    if (const auto* s = ev.service()) service = s->id();
    if (const auto* n = ev.node()) node = n->id();  // node loss, drains, global services
    if (ev.cluster()) all = true;                    // the history limit
    asio::post(strand_, [self = shared_from_this(), service, node, all, last = ev.last_in_batch] {
      if (!self->running_) return;
      if (all) self->all_dirty_ = true;
      if (!service.empty()) self->dirty_.insert(service);
      if (!node.empty()) self->dirty_nodes_.insert(node);
      if (last) self->Run();
    });
  }

  void Run() {
    if (!running_) return;
    // As the store-driven components: a large service's reports are planned in batches.
    if (!pacer_.Clear([weak = weak_from_this(), epoch = epoch_] {
          if (auto me = weak.lock(); me && epoch == me->epoch_) me->Run();
        }))
      return;
    const auto start = ctx_.clock().SteadyNow();
    RunNow();
    pacer_.Ran(start);
  }

  void RunNow() {
    std::set<std::string> todo;
    if (all_dirty_) {
      all_dirty_ = false;
      // Every service, and the tasks of removed services too.
      ctx_.store().View([&](const ReadTx& tx) {
        for (const auto* s : tx.services())
          todo.insert(s->id());
        for (const auto& id : tx.services_with_tasks()) {
          if (!tx.service(id)) todo.insert(id);
        }
      });
    }
    if (!dirty_nodes_.empty()) {
      // A node's change concerns the services with tasks on it, the global ones (a task for
      // it, or none) and those that rebalance (a node to move to); not every other. Nodes
      // change all the time in a large swarm (sessions, heartbeats after a failover).
      ctx_.store().View([&](const ReadTx& tx) {
        for (const auto& id : dirty_nodes_) {
          for (const auto* t : tx.tasks_on_node(id))
            todo.insert(t->service_id());
        }
        for (const auto* s : tx.services()) {
          if (s->spec().has_global() || Rebalances(*s)) todo.insert(s->id());
        }
      });
      dirty_nodes_.clear();
    }
    todo.insert(dirty_.begin(), dirty_.end());
    dirty_.clear();
    for (const auto& id : todo) {
      if (in_flight_.count(id)) {
        dirty_.insert(id);  // planned again once the write in flight is settled
        continue;
      }
      Reconcile(id);
    }
  }

  // What a service's plan is made from.
  struct Inputs {
    int64_t history = kDefaultTaskHistory;
    std::vector<manager::Shared<api::Task>> tasks;
    std::optional<api::Service> service;  // none: removed
    std::map<std::string, NodeView> nodes;
  };

  void Reconcile(const std::string& service_id) {
    const int64_t now = ctx_.clock().Now();
    const Inputs in = Read(service_id, now);
    api::StoreBatch batch;
    int64_t wake_at = 0;
    if (!in.service) {
      batch = RemovedServiceBatch(in.tasks);
    } else {
      batch = PlanBatch(in, now, &wake_at);
    }
    if (wake_at) WakeAt(service_id, wake_at);
    if (batch.actions_size() == 0) return;
    Propose(service_id, std::move(batch));
  }

  // What the plan needs is taken under the store's lock (the tasks are the store's own,
  // immutable objects), and the plan made after: the raft node's apply waits for readers, and
  // planning a large service takes a while.
  Inputs Read(const std::string& service_id, int64_t now) {
    Inputs in;
    ctx_.store().View([&](const ReadTx& tx) {
      if (const auto* c = tx.cluster(); c && c->spec().orchestration().has_task_history_limit()) {
        in.history = c->spec().orchestration().task_history_limit();
      }
      in.tasks = tx.share_tasks_of_service(service_id);
      const api::Service* s = tx.service(service_id);
      if (s == nullptr) return;
      in.service = *s;
      for (const auto* n : tx.nodes()) {
        NodeView v;
        v.id = n->id();
        v.ready = n->status().state() != api::NODE_STATE_DOWN;
        v.availability = n->spec().availability();
        v.eligible = !s->spec().has_global() || Eligible(*s, *n);
        in.nodes[n->id()] = v;
      }
      if (Rebalances(*s) && !s->spec().has_global()) {
        const api::ExplainServiceResponse verdicts = manager::ExplainPlacement(tx, *s, now);
        for (const auto& verdict : verdicts.nodes()) {
          if (auto it = in.nodes.find(verdict.node_id()); it != in.nodes.end())
            it->second.fits = verdict.fits();
        }
      }
    });
    return in;
  }

  // A removed service's tasks go once stopped (the agents stop them).
  static api::StoreBatch RemovedServiceBatch(const std::vector<manager::Shared<api::Task>>& tasks) {
    api::StoreBatch batch;
    for (const auto& t : tasks) {
      if (t->node_id().empty() || Terminal(t->status().state())) {
        auto* a = batch.add_actions();
        a->set_kind(api::StoreAction::REMOVE);
        *a->mutable_task() = *t;
      } else if (t->desired_state() < api::TASK_REMOVE) {
        auto* a = batch.add_actions();
        a->set_kind(api::StoreAction::UPDATE);
        *a->mutable_task() = *t;
        a->mutable_task()->set_desired_state(api::TASK_REMOVE);
      }
    }
    return batch;
  }

  // The service's plan as a batch, with the history beyond its limit pruned.
  static api::StoreBatch PlanBatch(const Inputs& in, int64_t now, int64_t* wake_at) {
    const api::Service& svc = *in.service;
    Plan plan = svc.spec().has_global() ? ReconcileGlobal(svc, in.tasks, in.nodes, now)
                                        : ReconcileReplicated(svc, in.tasks, in.nodes, now);
    api::StoreBatch batch;
    if (plan.service) {
      auto* a = batch.add_actions();
      a->set_kind(api::StoreAction::UPDATE);
      *a->mutable_service() = std::move(*plan.service);
    }
    if (plan.wake_at) *wake_at = plan.wake_at;
    for (auto& t : plan.update) {
      auto* a = batch.add_actions();
      a->set_kind(api::StoreAction::UPDATE);
      *a->mutable_task() = std::move(t);
    }
    for (auto& t : plan.create) {
      t.set_id(pki::RandomId());
      auto* a = batch.add_actions();
      a->set_kind(api::StoreAction::CREATE);
      *a->mutable_task() = std::move(t);
    }
    std::set<std::string> changed;
    for (const auto& a : batch.actions())
      changed.insert(a.task().id());
    for (auto& t : Prune(in.tasks, in.history)) {
      if (changed.count(t.id())) continue;
      auto* a = batch.add_actions();
      a->set_kind(api::StoreAction::REMOVE);
      *a->mutable_task() = std::move(t);
    }
    return batch;
  }

  // A large plan goes out in parts, in order; the service is planned again after the last.
  void Propose(const std::string& service_id, api::StoreBatch batch) {
    in_flight_.insert(service_id);
    manager::ProposeInParts(ctx_, std::move(batch), term_, live_,
                            [self = shared_from_this(), service_id,
                             epoch = epoch_](const Status& r) {
      asio::post(self->strand_, [self, service_id, epoch, r] {
        if (epoch != self->epoch_) return;
        self->in_flight_.erase(service_id);
        if (!r.ok()) {
          SKEP_LOG(debug, "orchestrator", "plan for service {} not written ({}); planning again",
                   service_id, r.message());
          if (r.code() == Code::kNotLeader || r.code() == Code::kNoLeader ||
              r.code() == Code::kNoQuorum) {
            return;
          }
          self->dirty_.insert(service_id);
          self->Retry();
          return;
        }
        // The events of the write mark what changed; anything marked meanwhile runs now.
        if (!self->dirty_.empty()) self->Run();
      });
    });
  }

  // A write that failed for a passing reason is tried again a little later, not in a loop.
  void Retry() {
    if (timer_) return;
    timer_ = ctx_.clock().After(strand_, std::chrono::milliseconds(200),
                                [weak = weak_from_this(), epoch = epoch_] {
                                  auto me = weak.lock();
                                  if (!me || epoch != me->epoch_) return;
                                  me->timer_.reset();
                                  me->Run();
                                });
  }

  // Plans that change by time alone (an update's delay) are made again when it has passed.
  void WakeAt(const std::string& service_id, int64_t at) {
    wake_[service_id] = at;
    int64_t first = at;
    for (const auto& [id, t] : wake_)
      first = std::min(first, t);
    wake_timer_ = ctx_.clock().After(
        strand_, std::chrono::nanoseconds(std::max<int64_t>(0, first - ctx_.clock().Now())),
        [weak = weak_from_this(), epoch = epoch_] {
          auto self = weak.lock();
          if (!self || epoch != self->epoch_) return;
          const int64_t now = self->ctx_.clock().Now();
          for (auto it = self->wake_.begin(); it != self->wake_.end();) {
            if (it->second <= now) {
              self->dirty_.insert(it->first);
              it = self->wake_.erase(it);
            } else {
              ++it;
            }
          }
          self->Run();
          if (!self->wake_.empty()) {
            auto next = *self->wake_.begin();
            self->WakeAt(next.first, next.second);
          }
        });
  }

  manager::Context& ctx_;
  manager::Strand strand_;
  // All below: on the strand.
  std::map<std::string, int64_t> wake_;
  std::unique_ptr<Timer> wake_timer_;
  bool running_ = false;
  uint64_t term_ = 0;
  uint64_t epoch_ = 0;  // bumped at every start and stop: late callbacks of an old term drop out
  // False once stopped: the rest of a plan written in parts does not go out.
  std::shared_ptr<std::atomic<bool>> live_ = std::make_shared<std::atomic<bool>>(false);
  Subscription sub_;
  bool all_dirty_ = false;
  std::set<std::string> dirty_;
  std::set<std::string> dirty_nodes_;  // nodes that changed since the last run
  std::set<std::string> in_flight_;
  std::unique_ptr<Timer> timer_;
  manager::Pacer pacer_;
};

// Shared ownership lets callbacks outlive a stop safely; the manager holds this wrapper.
class Holder final : public manager::LeaderComponent {
 public:
  explicit Holder(manager::Context& ctx) : impl_(std::make_shared<Orchestrator>(ctx)) {}
  void Start(uint64_t term) override { impl_->Start(term); }
  void Stop() override { impl_->Stop(); }

 private:
  std::shared_ptr<Orchestrator> impl_;
};

}  // namespace

std::unique_ptr<manager::LeaderComponent> MakeOrchestrator(manager::Context& ctx) {
  return std::make_unique<Holder>(ctx);
}

}  // namespace skep::orchestrator
