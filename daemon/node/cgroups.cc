#include "daemon/node/cgroups.h"

#include <fstream>
#include <sstream>

namespace skep::node {

bool MemoryControllerEnabled(const std::optional<std::string>& v2_controllers,
                             const std::string& proc_cgroups) {
  if (v2_controllers) {
    std::istringstream in(*v2_controllers);
    for (std::string name; in >> name;)
      if (name == "memory") return true;
    return false;
  }
  // "#subsys_name hierarchy num_cgroups enabled", one line per controller; hierarchy 0: not
  // mounted anywhere.
  std::istringstream in(proc_cgroups);
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string name;
    int hierarchy = 0, cgroups = 0, enabled = 0;
    if (fields >> name >> hierarchy >> cgroups >> enabled && name == "memory") {
      return enabled == 1 && hierarchy != 0;
    }
  }
  return false;
}

bool MemoryControllerEnabled() {
  std::optional<std::string> v2;
  if (std::ifstream controllers("/sys/fs/cgroup/cgroup.controllers"); controllers) {
    std::stringstream text;
    text << controllers.rdbuf();
    v2 = text.str();
  }
  std::stringstream proc;
  if (std::ifstream cgroups("/proc/cgroups"); cgroups) proc << cgroups.rdbuf();
  return MemoryControllerEnabled(v2, proc.str());
}

}  // namespace skep::node
