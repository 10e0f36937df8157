// A task's health check, as Docker runs HEALTHCHECK: which check applies, the command it runs
// in the container, and what each probe's result makes of the task's health. No I/O and no
// clock: the worker runs the probes (containerd's exec) on its timers and passes the time in.
//
// A running task with a check is STARTING until a probe passes, then HEALTHY; `retries`
// consecutive failures (those in the start period do not count until one has passed) make it
// UNHEALTHY, and the worker kills its container for the task to fail.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "daemon/executor/image.h"
#include "dispatcher.pb.h"

namespace skep::node {

// The check a task runs with: the image's HEALTHCHECK, with what the service sets in its place
// (its command, and each duration or the retries it gives); none when the service says NONE
// (`--no-healthcheck`), or the image does and the service gives no command, or neither has one.
std::optional<api::HealthConfig> EffectiveHealthcheck(
    const api::ContainerSpec& spec, const std::optional<executor::Healthcheck>& image);

// The argv a probe runs: CMD-SHELL through /bin/sh -c, CMD as given.
std::vector<std::string> ProbeArgv(const api::HealthConfig& check);

// Docker's defaults where the check leaves a setting at zero.
std::chrono::nanoseconds ProbeInterval(const api::HealthConfig& check);
std::chrono::milliseconds ProbeTimeout(const api::HealthConfig& check);

// The state of one task's check, from its start.
class HealthCheck {
 public:
  using Clock = std::chrono::steady_clock;

  // A check that starts now; `healthy` when the task was already found healthy (a re-attached
  // task keeps its health while its checks go on).
  HealthCheck(api::HealthConfig config, Clock::time_point now, bool healthy = false);

  const api::HealthConfig& config() const { return config_; }

  // A probe's exit code: the task's health after it. UNHEALTHY is final.
  api::HealthState OnProbe(int exit_code, Clock::time_point now);
  int failures() const { return failures_; }
  // The ID of the next probe's exec (unique per task while it lives).
  std::string NextExecId() { return "health-" + std::to_string(++probes_); }

 private:
  api::HealthConfig config_;
  Clock::time_point started_;
  bool healthy_once_;
  int failures_ = 0;  // consecutive, outside the start period
  uint32_t probes_ = 0;
  api::HealthState state_;
};

}  // namespace skep::node
