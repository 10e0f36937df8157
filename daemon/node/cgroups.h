// What the kernel's control groups let this node enforce on its tasks.
#pragma once

#include <optional>
#include <string>

namespace skep::node {

// Whether the memory controller is enabled, so that a task's memory limit can be enforced.
// `v2_controllers`: the root's cgroup.controllers when /sys/fs/cgroup is the unified (v2)
// hierarchy, else nullopt; `proc_cgroups`: the text of /proc/cgroups (v1: the controller
// must be enabled and mounted). A Raspberry Pi kernel leaves it disabled unless
// cmdline.txt says cgroup_enable=memory.
bool MemoryControllerEnabled(const std::optional<std::string>& v2_controllers,
                             const std::string& proc_cgroups);
// The same, from this machine's files.
bool MemoryControllerEnabled();

}  // namespace skep::node
