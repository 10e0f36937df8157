// The leader's orchestrator: keeps every service's tasks as its spec says (replicated slots,
// one task per eligible node for global services, restarts under the restart policy,
// replacement of tasks on nodes that go down or are drained), prunes task history, and deletes
// the tasks of removed services once they have stopped. Decisions come from reconcile.h; this
// class only feeds it from the store and writes its plans.
//
// It owns its state on one strand, woken by store events; a service whose plan is being
// written is not planned again until that write's outcome is known, so no decision is made
// twice from a stale view.
#pragma once

#include <memory>

#include "daemon/manager/context.h"

namespace skep::orchestrator {

std::unique_ptr<manager::LeaderComponent> MakeOrchestrator(manager::Context& ctx);

}  // namespace skep::orchestrator
