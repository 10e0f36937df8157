// The leader's scheduler component: places PENDING tasks on nodes with the pure scheduler
// (scheduler/), writing every decision of a pass in one proposal. A task it cannot place stays
// PENDING with the reason, and is looked at again whenever a node, a label, or the load changes
// (any store change that could make it fit), with no timer; the only timer waits for the
// restart delay of replacement tasks (Task.not_before).
#pragma once

#include <memory>

#include "control.pb.h"
#include "daemon/manager/context.h"
#include "scheduler/types.h"

namespace skep::manager {

std::unique_ptr<LeaderComponent> MakeTaskScheduler(Context& ctx);

// The scheduler's verdict, node by node, on a task of `service` made now from its spec, and
// where the next one would go: what `skep service explain` prints.
api::ExplainServiceResponse ExplainPlacement(const ReadTx& tx, const api::Service& service,
                                             int64_t now);

// What the scheduler knows of a node with its load: reservations, task counts, host ports.
scheduler::NodeInfo NodeLoadOf(const api::Node& n, const ReadTx& tx, int64_t now);

// What the scheduler knows of a node from its object alone (no load: reserved and task counts
// are left empty).
scheduler::NodeInfo NodeInfoOf(const api::Node& n);

}  // namespace skep::manager
