// The allocator as a leader-only component: after every change it gives services their
// virtual IPs and NEW tasks their addresses (allocator.h), in one proposal.
#pragma once

#include <memory>

#include "daemon/manager/context.h"

namespace skep::manager {

std::unique_ptr<LeaderComponent> MakeAllocator(Context& ctx);

}  // namespace skep::manager
