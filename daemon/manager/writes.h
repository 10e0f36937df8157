// Read-modify-write of one object, without waiting: `modify` changes a fresh copy of the node
// (or the cluster) or refuses with a status; nothing is written when it changed nothing; a
// write that lost a race with another change (kConflict) is made again from the newer copy, a
// few times. `modify` and `done` run on `executor` (the caller's strand); `done` gets the
// outcome and, on success, the object as it is now.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <functional>
#include <string>

#include "daemon/manager/context.h"

namespace skep::manager {

template <class T>
using Modify = std::function<Status(T&)>;
template <class T>
using Updated = std::function<void(const Status&, const T& now)>;

void UpdateNode(Context& ctx, boost::asio::any_io_executor executor, std::string id,
                Modify<api::Node> modify, Updated<api::Node> done, uint64_t term = 0);
void UpdateCluster(Context& ctx, boost::asio::any_io_executor executor, Modify<api::Cluster> modify,
                   Updated<api::Cluster> done, uint64_t term = 0);

}  // namespace skep::manager
