#include "daemon/manager/allocator/component.h"

#include "daemon/manager/allocator/allocator.h"
#include "daemon/manager/store_driven.h"

namespace skep::manager {

std::unique_ptr<LeaderComponent> MakeAllocator(Manager* manager) {
  return MakeStoreDriven(manager, "allocator", [manager](int64_t now) {
    PassResult r;
    manager->store().View([&](const ReadTx& tx) {
      auto plan = allocator::PlanAllocations(tx.networks(), tx.services(), tx.tasks(), tx.nodes(), now);
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
    });
    return r;
  });
}

}  // namespace skep::manager
