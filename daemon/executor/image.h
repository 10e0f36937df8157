// What the executor knows about a pulled image: its identity in containerd and the parts of
// its config that decide how a container runs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace skep::executor {

// A content-addressed blob (OCI descriptor).
struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:<hex>"
  int64_t size = 0;
};

// Docker's HEALTHCHECK (OCI configs have none). Durations in nanoseconds, 0 = the default.
struct Healthcheck {
  std::vector<std::string> test;  // ["CMD", ...], ["CMD-SHELL", "..."], ["NONE"]
  int64_t interval_ns = 0;
  int64_t timeout_ns = 0;
  int64_t start_period_ns = 0;
  int retries = 0;
};

struct ImageInfo {
  std::string name;           // normalized reference, the image's name in containerd
  std::string target_digest;  // what the reference resolved to (an index or a manifest)
  std::string digest;         // the manifest for this platform
  std::string chain_id;       // the top layer's snapshot (the rootfs parent)

  // From the image config.
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;
  std::string working_dir;
  std::string user;
  std::string stop_signal;
  std::vector<std::string> exposed_ports;  // "80/tcp"
  std::optional<Healthcheck> healthcheck;
  std::map<std::string, std::string> labels;

  // The rootfs's /etc/passwd and /etc/group (empty when absent), read once the image is
  // unpacked, so that a USER name can be resolved without touching the rootfs again.
  std::string passwd;
  std::string group;
};

}  // namespace skep::executor
