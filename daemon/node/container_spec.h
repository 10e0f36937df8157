// What a task's container is made of, in the executor's terms (daemon/executor/oci_spec.h):
// its command, environment, user, limits and mounts as its service's spec gives them. Pure.
#pragma once

#include <string>

#include "daemon/executor/oci_spec.h"
#include "dispatcher.pb.h"

namespace skep::node {

// A named volume lives in <volumes_dir>/<name> and outlives its tasks; an anonymous one is
// named after the task and its place among the task's volumes. The caller creates the
// volumes' directories.
executor::ContainerSpec ContainerSpecOf(const api::Task& task, const std::string& volumes_dir);

}  // namespace skep::node
