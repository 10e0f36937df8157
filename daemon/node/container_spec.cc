#include "daemon/node/container_spec.h"

namespace skep::node {

namespace {

executor::MountSpec MountOf(const api::Mount& m, const api::Task& task,
                            const std::string& volumes_dir, int& anonymous) {
  executor::MountSpec ms;
  ms.target = m.target();
  ms.readonly = m.read_only();
  switch (m.type()) {
    case api::Mount::BIND:
      ms.type = executor::MountSpec::Type::kBind;
      ms.source = m.source();
      break;
    case api::Mount::VOLUME: {
      ms.type = executor::MountSpec::Type::kVolume;
      const std::string name =
          m.source().empty() ? task.id() + "-" + std::to_string(anonymous++) : m.source();
      ms.source = volumes_dir + "/" + name;
      break;
    }
    case api::Mount::TMPFS:
      ms.type = executor::MountSpec::Type::kTmpfs;
      ms.tmpfs_size_bytes = m.tmpfs_size_bytes();
      if (m.tmpfs_mode()) ms.tmpfs_mode = m.tmpfs_mode();
      break;
    default:
      break;
  }
  return ms;
}

}  // namespace

executor::ContainerSpec ContainerSpecOf(const api::Task& task, const std::string& volumes_dir) {
  const auto& c = task.spec().container();
  executor::ContainerSpec s;
  s.command = {c.command().begin(), c.command().end()};
  s.args = {c.args().begin(), c.args().end()};
  s.env = {c.env().begin(), c.env().end()};
  s.dir = c.dir();
  s.user = c.user();
  s.hostname = c.hostname();
  s.labels = {c.labels().begin(), c.labels().end()};
  s.stop_signal = c.stop_signal();
  const auto& limits = task.spec().resources().limits();
  s.nano_cpus = limits.nano_cpus();
  s.memory_bytes = limits.memory_bytes();
  s.pids_limit = limits.pids();
  int anonymous = 0;
  for (const auto& m : c.mounts())
    s.mounts.push_back(MountOf(m, task, volumes_dir, anonymous));
  return s;
}

}  // namespace skep::node
