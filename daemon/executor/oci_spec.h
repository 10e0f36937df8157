// The OCI runtime spec (config.json) for a task's container, built from the image's config and
// the task's ContainerSpec. Pure: no I/O. The defaults are containerd's (oci/spec.go) plus the
// device rules `ctr run` and Docker add; the image-config rules are Docker's:
//   argv = command + args            when a command is given (it replaces the Entrypoint, and
//                                    the image's Cmd is dropped, as with `docker run --entrypoint`)
//   argv = Entrypoint + (args or Cmd) otherwise
//   env  = HOSTNAME, the image's Env (or a default PATH), then the spec's: KEY=VALUE sets,
//          a bare KEY unsets; HOME from the user's passwd entry unless set
//   cwd  = dir, else WorkingDir, else /
//   user = uid[:gid] or name[:group] (spec, else the image's USER), names resolved from the
//          image's /etc/passwd and /etc/group (ImageInfo::passwd/group); a uid without a passwd
//          entry gets gid 0; supplementary groups are the groups that list the user.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "daemon/executor/image.h"

namespace skep::executor {

struct MountSpec {
  enum class Type { kBind, kVolume, kTmpfs };
  Type type = Type::kBind;
  std::string source;  // host path (bind) or the host directory backing the volume
  std::string target;  // absolute path in the container
  bool readonly = false;
  int64_t tmpfs_size_bytes = 0;  // 0 = the kernel's default (half the RAM)
  uint32_t tmpfs_mode = 01777;
};

struct ContainerSpec {
  std::vector<std::string> command;  // replaces the image's Entrypoint
  std::vector<std::string> args;     // replaces the image's Cmd
  std::vector<std::string> env;      // KEY=VALUE sets, KEY unsets
  std::string dir;
  std::string user;
  std::string hostname;                       // empty = the first 12 characters of the container id
  std::map<std::string, std::string> labels;  // become OCI annotations
  std::vector<MountSpec> mounts;
  std::string stop_signal;  // empty = the image's, else SIGTERM (see StopSignal)
  int64_t nano_cpus = 0;    // 1e9 = one CPU; 0 = unlimited
  int64_t memory_bytes = 0;
  int64_t pids_limit = 0;
  std::string netns_path;  // an existing network namespace; empty = a new one
  // Host files bind-mounted read-only over the container's (optional).
  std::string resolv_conf_path;
  std::string hosts_path;
  std::string hostname_path;
};

// config.json for container `id`, with cgroupsPath "<cgroup_parent>/<id>" (cgroupfs driver;
// the same path works on cgroup v1 and v2). Throws ExecutorError(kInvalidArgument) for an
// empty argv, a relative mount target or working dir, an unknown user or group, or a bad
// stop signal.
std::string BuildOciSpec(const std::string& id, const ImageInfo& image, const ContainerSpec& spec,
                         const std::string& cgroup_parent = "/skep");

// The signal that asks the container to stop: spec.stop_signal, else the image's StopSignal,
// else SIGTERM. Accepts "SIGTERM", "TERM", "15", case-insensitive.
int StopSignal(const ImageInfo& image, const ContainerSpec& spec);
int ParseSignal(const std::string& name);

// Resolved process identity (exposed for tests).
struct ProcessUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;  // includes gid, as containerd does
  std::string home;                       // from passwd, "/" when unknown
};
ProcessUser ResolveUser(const std::string& user, const std::string& passwd,
                        const std::string& group);

// `base` with `overrides` applied: KEY=VALUE replaces KEY or appends, a bare KEY removes it.
std::vector<std::string> MergeEnv(std::vector<std::string> base,
                                  const std::vector<std::string>& overrides);

}  // namespace skep::executor
