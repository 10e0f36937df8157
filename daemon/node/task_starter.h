// Starting a task's container: its image pulled (with its service's registry login, if any),
// its namespace made and put on its networks, its container created and started. Every step
// blocks (containerd, the registry, netlink): on the worker's pool only.
#pragma once

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "daemon/executor/containerd.h"
#include "daemon/executor/registry.h"
#include "daemon/node/task_networks.h"
#include "daemon/node/worker.h"
#include "dispatcher.pb.h"

namespace skep::node {

// The label that marks a container as a task's, with the task's ID.
inline constexpr char kTaskLabel[] = "skep.task.id";

class TaskStarter {
 public:
  // All outlive it.
  TaskStarter(const WorkerOptions& options, executor::Containerd& containerd,
              executor::Registry& registry, TaskNetworks& networks);

  struct Started {
    uint32_t pid = 0;
    std::string stop_signal;  // the image's
    std::string addr;         // on the node's bridge
    std::optional<api::HealthConfig> health;
  };
  // A start that failed, after what it made was taken down again: REJECTED before the
  // container existed, FAILED after.
  struct Failure : std::runtime_error {
    Failure(api::TaskState state, const std::string& what)
        : std::runtime_error(what), state(state) {}
    api::TaskState state;
  };
  // `progress(state, message)` is called at each step (PREPARING with the pull's lines, then
  // STARTING). `nets`: the task's networks known here. Throws Failure.
  using Progress = std::function<void(api::TaskState, const std::string&)>;
  Started Start(const api::Task& task, const std::vector<dataplane::OverlayNetworkInfo>& nets,
                const std::optional<api::RegistryAuth>& auth, const Progress& progress);

  std::string TaskDir(const std::string& id) const { return options_.data_dir + "/tasks/" + id; }

 private:
  executor::ImageInfo Pull(const api::Task& task, const std::optional<api::RegistryAuth>& auth,
                           const Progress& progress);
  std::string CreateContainer(const api::Task& task,
                              const std::vector<dataplane::OverlayNetworkInfo>& nets,
                              const executor::ImageInfo& image);

  const WorkerOptions& options_;
  executor::Containerd& containerd_;
  executor::Registry& registry_;
  TaskNetworks& networks_;
};

}  // namespace skep::node
