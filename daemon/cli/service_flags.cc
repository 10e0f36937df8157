#include "daemon/cli/service_flags.h"

#include "daemon/cli/specs.h"

namespace skep::cli {

uint64_t ParseCount(const std::string& flag, const std::string& v) {
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos) {
    throw UsageError("invalid argument \"" + v + "\" for \"--" + flag + "\": not a number");
  }
  try {
    return std::stoull(v);
  } catch (const std::out_of_range&) {
    throw UsageError("invalid argument \"" + v + "\" for \"--" + flag + "\": too large");
  }
}

namespace {

void ParseUpdateConfig(const Invocation& inv, const std::string& prefix, api::UpdateConfig* u) {
  if (inv.Has(prefix + "-parallelism")) {
    u->set_parallelism(ParseCount(prefix + "-parallelism", inv.Get(prefix + "-parallelism")));
  }
  if (inv.Has(prefix + "-delay")) {
    u->set_delay_ns(ParseDurationNs(prefix + "-delay", inv.Get(prefix + "-delay")));
  }
  if (inv.Has(prefix + "-monitor")) {
    u->set_monitor_ns(ParseDurationNs(prefix + "-monitor", inv.Get(prefix + "-monitor")));
  }
  if (inv.Has(prefix + "-max-failure-ratio")) {
    const std::string v = inv.Get(prefix + "-max-failure-ratio");
    size_t used = 0;
    float ratio = -1;
    try {
      ratio = std::stof(v, &used);
    } catch (const std::exception&) {
    }
    if (used != v.size() || !(ratio >= 0 && ratio <= 1)) {
      throw UsageError("invalid argument \"" + v + "\" for \"--" + prefix +
                       "-max-failure-ratio\": a number from 0 to 1");
    }
    u->set_max_failure_ratio(ratio);
  }
  if (inv.Has(prefix + "-failure-action")) {
    const std::string a = inv.Get(prefix + "-failure-action");
    if (a == "pause") {
      u->set_failure_action(api::UpdateConfig::PAUSE);
    } else if (a == "continue") {
      u->set_failure_action(api::UpdateConfig::CONTINUE);
    } else if (a == "rollback" && prefix == "update") {
      u->set_failure_action(api::UpdateConfig::ROLLBACK);
    } else {
      throw UsageError("invalid --" + prefix + "-failure-action \"" + a + "\"");
    }
  }
  if (inv.Has(prefix + "-order")) {
    const std::string o = inv.Get(prefix + "-order");
    if (o != "stop-first" && o != "start-first") {
      throw UsageError("invalid --" + prefix + "-order \"" + o + "\": stop-first or start-first");
    }
    u->set_order(o == "start-first" ? api::UpdateConfig::START_FIRST
                                    : api::UpdateConfig::STOP_FIRST);
  }
}

// --health-cmd and its settings, or --no-healthcheck.
void ApplyHealthFlags(const Invocation& inv, api::ContainerSpec* c) {
  if (inv.Has("no-healthcheck") &&
      (inv.Has("health-cmd") || inv.Has("health-interval") || inv.Has("health-timeout") ||
       inv.Has("health-retries") || inv.Has("health-start-period"))) {
    throw UsageError("--no-healthcheck conflicts with --health-* options");
  }
  if (inv.Has("no-healthcheck")) {
    c->mutable_healthcheck()->clear_test();
    c->mutable_healthcheck()->add_test("NONE");
  }
  if (inv.Has("health-cmd")) {
    auto* h = c->mutable_healthcheck();
    h->clear_test();
    h->add_test("CMD-SHELL");
    h->add_test(inv.Get("health-cmd"));
  }
  if (inv.Has("health-interval")) {
    c->mutable_healthcheck()->set_interval_ns(
        ParseDurationNs("health-interval", inv.Get("health-interval")));
  }
  if (inv.Has("health-timeout")) {
    c->mutable_healthcheck()->set_timeout_ns(
        ParseDurationNs("health-timeout", inv.Get("health-timeout")));
  }
  if (inv.Has("health-start-period")) {
    c->mutable_healthcheck()->set_start_period_ns(
        ParseDurationNs("health-start-period", inv.Get("health-start-period")));
  }
  if (inv.Has("health-retries")) {
    c->mutable_healthcheck()->set_retries(
        static_cast<int32_t>(ParseCount("health-retries", inv.Get("health-retries"))));
  }
}

void ApplyResourceFlags(const Invocation& inv, api::TaskSpec* task) {
  if (inv.Has("replicas-max-per-node")) {
    task->mutable_placement()->set_max_replicas(
        ParseCount("replicas-max-per-node", inv.Get("replicas-max-per-node")));
  }
  auto* res = task->mutable_resources();
  if (inv.Has("reserve-cpu")) {
    res->mutable_reservations()->set_nano_cpus(ParseCpus("reserve-cpu", inv.Get("reserve-cpu")));
  }
  if (inv.Has("reserve-memory")) {
    res->mutable_reservations()->set_memory_bytes(
        ParseBytes("reserve-memory", inv.Get("reserve-memory")));
  }
  if (inv.Has("limit-cpu")) {
    res->mutable_limits()->set_nano_cpus(ParseCpus("limit-cpu", inv.Get("limit-cpu")));
  }
  if (inv.Has("limit-memory")) {
    res->mutable_limits()->set_memory_bytes(ParseBytes("limit-memory", inv.Get("limit-memory")));
  }
}

void ApplyRestartFlags(const Invocation& inv, api::RestartPolicy* r) {
  if (inv.Has("restart-condition")) {
    const std::string cond = inv.Get("restart-condition");
    if (cond == "any") {
      r->set_condition(api::RestartPolicy::ANY);
    } else if (cond == "on-failure") {
      r->set_condition(api::RestartPolicy::ON_FAILURE);
    } else if (cond == "none") {
      r->set_condition(api::RestartPolicy::NONE);
    } else {
      throw UsageError("invalid --restart-condition \"" + cond + "\": none, on-failure or any");
    }
  }
  if (inv.Has("restart-delay")) {
    r->set_delay_ns(ParseDurationNs("restart-delay", inv.Get("restart-delay")));
  }
  if (inv.Has("restart-max-attempts")) {
    r->set_max_attempts(ParseCount("restart-max-attempts", inv.Get("restart-max-attempts")));
  }
  if (inv.Has("restart-window")) {
    r->set_window_ns(ParseDurationNs("restart-window", inv.Get("restart-window")));
  }
}

}  // namespace

// The flags create and update share, applied to a spec.
void ApplyCommonFlags(const Invocation& inv, api::ServiceSpec* spec) {
  auto* task = spec->mutable_task();
  auto* c = task->mutable_container();
  if (inv.Has("user")) c->set_user(inv.Get("user"));
  if (inv.Has("workdir")) c->set_dir(inv.Get("workdir"));
  if (inv.Has("hostname")) c->set_hostname(inv.Get("hostname"));
  if (inv.Has("stop-signal")) c->set_stop_signal(inv.Get("stop-signal"));
  if (inv.Has("stop-grace-period")) {
    c->set_stop_grace_period_ns(ParseDurationNs("stop-grace-period", inv.Get("stop-grace-period")));
  }
  if (inv.Has("entrypoint")) {
    c->clear_command();
    for (const auto& w : Split(inv.Get("entrypoint"), ' '))
      if (!w.empty()) c->add_command(w);
  }
  ApplyHealthFlags(inv, c);
  ApplyResourceFlags(inv, task);
  ApplyRestartFlags(inv, task->mutable_restart());
  ParseUpdateConfig(inv, "update", spec->mutable_update());
  ParseUpdateConfig(inv, "rollback", spec->mutable_rollback());
  if (inv.Has("endpoint-mode")) {
    const std::string m = inv.Get("endpoint-mode");
    if (m != "vip" && m != "dnsrr") {
      throw UsageError("invalid --endpoint-mode \"" + m + "\": vip or dnsrr");
    }
    spec->mutable_endpoint()->set_mode(m == "dnsrr" ? api::EndpointSpec::DNSRR
                                                    : api::EndpointSpec::VIP);
  }
}

std::vector<Flag> CommonServiceFlags() {
  return {
      {"user", 'u', "string", "Username or UID (format: <name|uid>[:<group|gid>])"},
      {"health-cmd", 0, "string", "Command to run to check health"},
      {"health-interval", 0, "duration", "Time between running the check (ms|s|m|h)"},
      {"health-timeout", 0, "duration", "Maximum time to allow one check to run (ms|s|m|h)"},
      {"health-retries", 0, "int", "Consecutive failures needed to report unhealthy"},
      {"health-start-period", 0, "duration",
       "Start period for the container to initialize before counting retries towards unstable "
       "(ms|s|m|h)"},
      {"no-healthcheck", 0, "", "Disable any container-specified HEALTHCHECK"},
      {"workdir", 'w', "string", "Working directory inside the container"},
      {"hostname", 0, "string", "Container hostname"},
      {"entrypoint", 0, "command", "Overwrite the default ENTRYPOINT of the image"},
      {"stop-signal", 0, "string", "Signal to stop the container"},
      {"stop-grace-period", 0, "duration", "Time to wait before force killing a container"},
      {"replicas-max-per-node", 0, "uint", "Maximum number of tasks per node (0 = unlimited)"},
      {"reserve-cpu", 0, "decimal", "Reserve CPUs"},
      {"reserve-memory", 0, "bytes", "Reserve Memory"},
      {"limit-cpu", 0, "decimal", "Limit CPUs"},
      {"limit-memory", 0, "bytes", "Limit Memory"},
      {"restart-condition", 0, "string", "Restart when condition is met (none, on-failure, any)"},
      {"restart-delay", 0, "duration", "Delay between restart attempts (default 5s)"},
      {"restart-max-attempts", 0, "uint", "Maximum number of restarts before giving up"},
      {"restart-window", 0, "duration", "Window used to evaluate the restart policy"},
      {"update-parallelism", 0, "uint", "Maximum number of tasks updated simultaneously"},
      {"update-delay", 0, "duration", "Delay between updates"},
      {"update-failure-action", 0, "string",
       "Action on update failure (pause, continue, rollback)"},
      {"update-monitor", 0, "duration", "Duration after each task update to monitor for failure"},
      {"update-max-failure-ratio", 0, "float", "Failure rate to tolerate during an update"},
      {"update-order", 0, "string", "Update order (start-first, stop-first)"},
      {"rollback-parallelism", 0, "uint", "Maximum number of tasks rolled back simultaneously"},
      {"rollback-delay", 0, "duration", "Delay between task rollbacks"},
      {"rollback-failure-action", 0, "string", "Action on rollback failure (pause, continue)"},
      {"rollback-monitor", 0, "duration", "Duration after each task rollback to monitor"},
      {"rollback-max-failure-ratio", 0, "float", "Failure rate to tolerate during a rollback"},
      {"rollback-order", 0, "string", "Rollback order (start-first, stop-first)"},
      {"endpoint-mode", 0, "string", "Endpoint mode (vip or dnsrr) (default \"vip\")"},
      {"with-registry-auth", 0, "", "Send registry authentication details to swarm agents"},
      {"detach", 'd', "", "Exit immediately instead of waiting for the service to converge"}};
}

}  // namespace skep::cli
