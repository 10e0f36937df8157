#include "daemon/manager/allocator/component.h"

#include "daemon/manager/allocator/allocator.h"
#include "daemon/manager/store_driven.h"

namespace skep::manager {

namespace {

template <class T>
std::vector<const T*> Pointers(const std::vector<Shared<T>>& objects) {
  std::vector<const T*> out;
  out.reserve(objects.size());
  for (const auto& o : objects)
    out.push_back(o.get());
  return out;
}

}  // namespace

std::unique_ptr<LeaderComponent> MakeAllocator(Context& ctx) {
  return MakeStoreDriven(ctx, "allocator", [&ctx](int64_t now) {
    PassResult r;
    // The objects are taken under the store's lock (its own, immutable ones: no copies) and
    // the plan is made after it: allocating for 100,000 new tasks takes a while, and the
    // store's apply waits for readers. Of the tasks, those that hold addresses and those that
    // need them, from the store's indexes: not every task of a large swarm on every pass.
    std::vector<Shared<api::Network>> networks;
    std::vector<Shared<api::Service>> services;
    std::vector<Shared<api::Node>> nodes;
    std::vector<Shared<api::Task>> tasks;
    ctx.store().View([&](const ReadTx& tx) {
      networks = tx.share_networks();
      services = tx.share_services();
      nodes = tx.share_nodes();
      tasks = tx.share_tasks_with_addresses();
      for (auto& t : tx.share_tasks_in_state(api::TASK_NEW)) {
        if (t->networks_size() == 0) tasks.push_back(std::move(t));  // else listed already
      }
    });
    auto plan = allocator::PlanAllocations(Pointers(networks), Pointers(services),
                                           Pointers(tasks), Pointers(nodes), now);
    for (auto& s : plan.services) {
      auto* a = r.batch.add_actions();
      a->set_kind(api::StoreAction::UPDATE);
      *a->mutable_service() = std::move(s);
    }
    for (auto& n : plan.nodes) {
      auto* a = r.batch.add_actions();
      a->set_kind(api::StoreAction::UPDATE);
      *a->mutable_node() = std::move(n);
    }
    for (auto& t : plan.tasks) {
      auto* a = r.batch.add_actions();
      a->set_kind(api::StoreAction::UPDATE);
      *a->mutable_task() = std::move(t);
    }
    return r;
  });
}

}  // namespace skep::manager
