#include "daemon/node/health_check.h"

namespace skep::node {

std::optional<api::HealthConfig> EffectiveHealthcheck(
    const api::ContainerSpec& spec, const std::optional<executor::Healthcheck>& image) {
  api::HealthConfig out;
  if (image) {
    out.mutable_test()->Assign(image->test.begin(), image->test.end());
    out.set_interval_ns(image->interval_ns);
    out.set_timeout_ns(image->timeout_ns);
    out.set_start_period_ns(image->start_period_ns);
    out.set_retries(image->retries);
  }
  if (spec.has_healthcheck()) {
    const api::HealthConfig& h = spec.healthcheck();
    if (h.test_size() > 0) *out.mutable_test() = h.test();
    if (h.interval_ns()) out.set_interval_ns(h.interval_ns());
    if (h.timeout_ns()) out.set_timeout_ns(h.timeout_ns());
    if (h.start_period_ns()) out.set_start_period_ns(h.start_period_ns());
    if (h.retries()) out.set_retries(h.retries());
  }
  if (out.test_size() == 0 || out.test(0) == "NONE") return std::nullopt;
  return out;
}

std::vector<std::string> ProbeArgv(const api::HealthConfig& check) {
  if (check.test(0) == "CMD-SHELL") {
    return {"/bin/sh", "-c", check.test_size() > 1 ? check.test(1) : "true"};
  }
  if (check.test(0) == "CMD") return {check.test().begin() + 1, check.test().end()};
  return {check.test().begin(), check.test().end()};
}

std::chrono::nanoseconds ProbeInterval(const api::HealthConfig& check) {
  return check.interval_ns() > 0 ? std::chrono::nanoseconds(check.interval_ns())
                                 : std::chrono::seconds(30);
}

std::chrono::milliseconds ProbeTimeout(const api::HealthConfig& check) {
  return check.timeout_ns() > 0 ? std::chrono::milliseconds(check.timeout_ns() / 1'000'000)
                                : std::chrono::milliseconds(30'000);
}

HealthCheck::HealthCheck(api::HealthConfig config, Clock::time_point now, bool healthy)
    : config_(std::move(config)),
      started_(now),
      healthy_once_(healthy),
      state_(healthy ? api::HEALTH_HEALTHY : api::HEALTH_STARTING) {}

api::HealthState HealthCheck::OnProbe(int exit_code, Clock::time_point now) {
  if (state_ == api::HEALTH_UNHEALTHY) return state_;
  if (exit_code == 0) {
    failures_ = 0;
    healthy_once_ = true;
    return state_ = api::HEALTH_HEALTHY;
  }
  if (healthy_once_ || now - started_ >= std::chrono::nanoseconds(config_.start_period_ns())) {
    ++failures_;
  }
  const int retries = config_.retries() > 0 ? config_.retries() : 3;
  if (failures_ >= retries) state_ = api::HEALTH_UNHEALTHY;
  return state_;
}

}  // namespace skep::node
