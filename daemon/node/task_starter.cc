#include "daemon/node/task_starter.h"

#include <filesystem>

#include "daemon/common/log.h"
#include "daemon/executor/oci_spec.h"
#include "daemon/node/container_spec.h"
#include "daemon/node/health_check.h"

namespace skep::node {

namespace fs = std::filesystem;

TaskStarter::TaskStarter(const WorkerOptions& options, executor::Containerd& containerd,
                         executor::Registry& registry, TaskNetworks& networks)
    : options_(options), containerd_(containerd), registry_(registry), networks_(networks) {}

TaskStarter::Started TaskStarter::Start(const api::Task& task,
                                        const std::vector<dataplane::OverlayNetworkInfo>& nets,
                                        const std::optional<api::RegistryAuth>& auth,
                                        const Progress& progress) {
  api::TaskState failure = api::TASK_REJECTED;
  try {
    const executor::ImageInfo image = Pull(task, auth, progress);
    Started started;
    started.stop_signal = image.stop_signal;
    started.health = EffectiveHealthcheck(task.spec().container(), image.healthcheck);
    started.addr = CreateContainer(task, nets, image);
    progress(api::TASK_STARTING, "starting");
    failure = api::TASK_FAILED;
    const std::string dir = TaskDir(task.id());
    fs::create_directories(dir);
    const std::string log = executor::ShimLoggerUri(options_.logger_binary, dir, options_.logs);
    started.pid = containerd_.StartTask(task.id(), log, log);
    return started;
  } catch (const std::exception& e) {
    SKEP_LOG(warn, "worker", "task {} could not start: {}", task.id(), e.what());
    try {
      if (failure == api::TASK_FAILED) containerd_.Delete(task.id());
      networks_.DetachTask(task.id());
    } catch (const std::exception&) {
    }
    throw Failure(failure, e.what());
  }
}

executor::ImageInfo TaskStarter::Pull(const api::Task& task,
                                      const std::optional<api::RegistryAuth>& auth,
                                      const Progress& progress) {
  const std::string& image = task.spec().container().image();
  auto line = [&](const std::string& text) { progress(api::TASK_PREPARING, text); };
  if (!auth) return containerd_.Pull(image, registry_, line);
  // The service's login, for this pull only (its tokens are not shared with others).
  executor::RegistryConfig config = options_.registry;
  config.credentials[executor::RegistryDomain(auth->server())] = {auth->username(),
                                                                  auth->password()};
  executor::Registry registry(std::move(config));
  return containerd_.Pull(image, registry, line);
}

// The task's namespace and container; returns its address on the node's bridge.
std::string TaskStarter::CreateContainer(const api::Task& task,
                                         const std::vector<dataplane::OverlayNetworkInfo>& nets,
                                         const executor::ImageInfo& image) {
  const std::string& id = task.id();
  try {
    containerd_.Delete(id);  // a leftover of an attempt that died half-way
  } catch (const std::exception&) {
  }
  const TaskNetworks::Attached net = networks_.AttachTask(task, nets, TaskDir(id));
  executor::ContainerSpec spec = ContainerSpecOf(task, options_.data_dir + "/volumes");
  for (const auto& m : spec.mounts) {
    if (m.type == executor::MountSpec::Type::kVolume) fs::create_directories(m.source);
  }
  spec.netns_path = net.netns_path;
  spec.resolv_conf_path = net.resolv_conf;
  executor::ContainerRequest req;
  req.id = id;
  req.image = image;
  req.labels = {{kTaskLabel, id},
                {"skep.service.id", task.service_id()},
                {"skep.service.name", task.service_name()},
                {"skep.task.slot", std::to_string(task.slot())}};
  req.spec_json = executor::BuildOciSpec(id, image, spec);
  containerd_.CreateContainer(req);
  return net.addr;
}

}  // namespace skep::node
