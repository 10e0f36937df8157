// skep service ...
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "daemon/executor/image_ref.h"
#include "daemon/cli/command.h"
#include "daemon/cli/format.h"
#include "daemon/cli/registry_login.h"
#include "daemon/cli/specs.h"

namespace skep::cli {
namespace {

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
  // Health checks: --health-cmd and its settings, or --no-healthcheck.
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
  auto* r = task->mutable_restart();
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

api::ServiceView Get(const Invocation& inv, const std::string& ref) {
  api::ServiceRef req;
  req.set_ref(ref);
  api::ServiceView resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Control()->GetService(&ctx, req, &resp), inv.host);
  return resp;
}

std::vector<api::TaskView> Tasks(const Invocation& inv, const std::vector<std::string>& filters) {
  api::ListTasksRequest req;
  for (const auto& f : filters)
    req.add_filters(f);
  api::ListTasksResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Control()->ListTasks(&ctx, req, &resp), inv.host);
  return {resp.tasks().begin(), resp.tasks().end()};
}

std::string StateName(api::TaskState s) {
  switch (s) {
    case api::TASK_NEW:
      return "New";
    case api::TASK_PENDING:
      return "Pending";
    case api::TASK_ASSIGNED:
      return "Assigned";
    case api::TASK_ACCEPTED:
      return "Accepted";
    case api::TASK_PREPARING:
      return "Preparing";
    case api::TASK_READY:
      return "Ready";
    case api::TASK_STARTING:
      return "Starting";
    case api::TASK_RUNNING:
      return "Running";
    case api::TASK_COMPLETE:
      return "Complete";
    case api::TASK_SHUTDOWN:
      return "Shutdown";
    case api::TASK_FAILED:
      return "Failed";
    case api::TASK_REJECTED:
      return "Rejected";
    case api::TASK_REMOVE:
      return "Remove";
    case api::TASK_ORPHANED:
      return "Orphaned";
    default:
      return "Unknown";
  }
}

std::string PortsOf(const api::EndpointSpec& e) {
  std::string out;
  for (const auto& p : e.ports()) {
    if (!out.empty()) out += ", ";
    out += "*:" + std::to_string(p.published_port()) + "->" + std::to_string(p.target_port()) +
           "/" + p.protocol();
  }
  return out;
}

std::string NetworkAddrs(const api::Task& t) {
  std::string out;
  for (const auto& n : t.networks()) {
    for (const auto& a : n.addresses())
      out += (out.empty() ? "" : ",") + a;
  }
  return out;
}

// A task's host-mode published ports, as Docker's service ps shows them.
std::string HostPortsOf(const api::Task& t) {
  std::string out;
  for (const auto& p : t.endpoint().ports()) {
    if (p.publish_mode() != api::PortConfig::HOST) continue;
    if (!out.empty()) out += ",";
    out += "*:" + std::to_string(p.published_port()) + "->" + std::to_string(p.target_port()) +
           "/" + p.protocol();
  }
  return out;
}

std::string ImageShort(const std::string& image) {
  return image.substr(0, image.find('@'));
}

// ---------------------------------------------------------------------------------------------

int Converge(const Invocation& inv, const std::string& id, bool rollback = false);
std::string HealthSuffix(const api::TaskStatus& s);

// --with-registry-auth: the login `skep login` (or `docker login`) stored for the image's
// registry.
api::RegistryAuth StoredLogin(const std::string& image) {
  if (auto auth = StoredLoginForImage(image)) return *auth;
  std::string registry = "docker.io";
  try {
    registry = executor::ParseImageRef(image).domain;
  } catch (const std::exception&) {
  }
  const std::string key = LoginKey(registry);
  throw UsageError("--with-registry-auth: no login for " + key + " in " + DockerConfigPath() +
                   " (skep login" + (registry == "docker.io" ? "" : " " + registry) + ")");
}

int Create(const Invocation& inv) {
  api::CreateServiceRequest req;
  auto* spec = req.mutable_spec();
  spec->set_name(inv.Get("name"));
  const std::string mode = inv.Get("mode", "replicated");
  if (mode == "global") {
    if (inv.Has("replicas")) throw UsageError("replicas can only be used with replicated mode");
    spec->mutable_global();
  } else if (mode == "replicated") {
    spec->mutable_replicated()->set_replicas(
        inv.Has("replicas") ? ParseCount("replicas", inv.Get("replicas")) : 1);
  } else {
    throw UsageError("invalid --mode \"" + mode + "\": replicated or global");
  }
  // Docker's defaults: one task at a time (the rest are the fields' zero values, and a
  // monitor left unset means 5 s).
  spec->mutable_update()->set_parallelism(1);
  spec->mutable_rollback()->set_parallelism(1);
  auto* c = spec->mutable_task()->mutable_container();
  c->set_image(inv.args[0]);
  for (size_t i = 1; i < inv.args.size(); ++i)
    c->add_args(inv.args[i]);
  for (const auto& file : inv.All("env-file")) {
    std::ifstream in(file);
    if (!in) throw UsageError("cannot read the env file " + file);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || line[0] == '#') continue;
      c->add_env(line);
    }
  }
  for (const auto& e : inv.All("env"))
    c->add_env(e);
  for (const auto& l : inv.All("label")) {
    auto [k, v] = KeyValue("label", l);
    (*spec->mutable_labels())[k] = v;
  }
  if (inv.Has("rebalance")) (*spec->mutable_labels())["skep.rebalance"] = "true";
  for (const auto& l : inv.All("container-label")) {
    auto [k, v] = KeyValue("container-label", l);
    (*c->mutable_labels())[k] = v;
  }
  for (const auto& m : inv.All("mount"))
    *c->add_mounts() = ParseMount(m);
  for (const auto& p : inv.All("publish"))
    *spec->mutable_endpoint()->add_ports() = ParsePort(p);
  for (const auto& n : inv.All("network"))
    spec->add_networks()->set_target(n);  // the managers resolve the name
  for (const auto& k : inv.All("constraint"))
    spec->mutable_task()->mutable_placement()->add_constraints(k);
  for (const auto& p : inv.All("placement-pref"))
    spec->mutable_task()->mutable_placement()->add_spread(ParsePlacementPref("placement-pref", p));
  ApplyCommonFlags(inv, spec);
  if (inv.Has("with-registry-auth")) *req.mutable_registry_auth() = StoredLogin(c->image());
  api::CreateServiceResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Control()->CreateService(&ctx, req, &resp), inv.host);
  std::cout << resp.id() << "\n";
  if (inv.Has("detach")) return 0;
  return Converge(inv, resp.id());
}

// Waits until every task of the service runs, printing Docker's progress lines (the final
// state only, when the output is not a terminal).
int Converge(const Invocation& inv, const std::string& id, bool rollback) {
  const bool tty = isatty(STDOUT_FILENO);
  size_t drawn = 0;
  for (;;) {
    const api::ServiceView v = Get(inv, id);
    std::map<std::string, std::string> slots;  // "1/3" -> state
    uint64_t running = 0;
    for (const auto& t : Tasks(inv, {"service=" + id, "desired-state=running"})) {
      const auto& task = t.task();
      if (task.spec_version() != v.service().spec_version()) continue;
      const std::string key = task.slot() ? std::to_string(task.slot()) : t.node_hostname();
      slots[key] = task.status().err().empty()
                       ? StateName(task.status().state()) + HealthSuffix(task.status())
                       : task.status().err();
      // Running, and healthy when it has a check.
      if (task.status().state() == api::TASK_RUNNING &&
          task.status().health() != api::HEALTH_STARTING &&
          task.status().health() != api::HEALTH_UNHEALTHY) {
        ++running;
      }
    }
    const uint64_t desired = v.desired();
    const auto us = v.service().update_status().state();
    // An update converges when the orchestrator says it completed, not merely when enough
    // tasks of the new spec run: it may still be monitoring them, or about to pause.
    const bool updating =
        us == api::UpdateStatus::UPDATING || us == api::UpdateStatus::ROLLBACK_STARTED;
    const bool done = desired > 0 && running == desired && !updating;
    // An update that paused, or turned into a rollback the user did not ask for, failed.
    const bool rolled_back =
        us == api::UpdateStatus::ROLLBACK_STARTED || us == api::UpdateStatus::ROLLBACK_COMPLETED;
    const bool failed = us == api::UpdateStatus::PAUSED ||
                        us == api::UpdateStatus::ROLLBACK_PAUSED || (rolled_back && !rollback);
    if (tty || done || failed) {
      std::ostringstream out;
      if (tty && drawn > 0) out << "\033[" << drawn << "A\033[J";
      out << "overall progress: " << running << " out of " << desired << " tasks\n";
      size_t lines = 1;
      for (const auto& [slot, state] : slots) {
        out << slot << "/" << desired << ": " << state << "\n";
        ++lines;
      }
      if (failed) {
        out << "update " << v.service().update_status().message() << "\n";
      } else if (done) {
        out << "verify: Service converged\n";
      }
      std::cout << out.str() << std::flush;
      drawn = lines;
    }
    // A failed update can also look converged (a rollback runs the old spec under a new
    // version): the failure decides.
    if (failed) return 1;
    if (done) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

const ListFormat kServiceList{
    "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}",
    {{"ID", "ID"},
     {"Name", "NAME"},
     {"Mode", "MODE"},
     {"Replicas", "REPLICAS"},
     {"Image", "IMAGE"},
     {"Ports", "PORTS"}}};

int List(const Invocation& inv) {
  api::ListServicesRequest req;
  for (const auto& f : inv.All("filter"))
    req.add_filters(f);
  api::ListServicesResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Control()->ListServices(&ctx, req, &resp), inv.host);
  std::vector<api::ServiceView> services(resp.services().begin(), resp.services().end());
  std::sort(services.begin(), services.end(), [](const auto& a, const auto& b) {
    return a.service().spec().name() < b.service().spec().name();
  });
  std::vector<boost::json::object> rows;
  for (const auto& v : services) {
    const auto& s = v.service();
    rows.push_back({{"ID", s.id().substr(0, 12)},
                    {"Name", s.spec().name()},
                    {"Mode", s.spec().has_global() ? "global" : "replicated"},
                    {"Replicas", std::to_string(v.running()) + "/" + std::to_string(v.desired())},
                    {"Image", ImageShort(s.spec().task().container().image())},
                    {"Ports", PortsOf(s.spec().endpoint())}});
  }
  std::cout << FormatList(inv.Get("format"), inv.Has("quiet"), kServiceList, rows);
  return 0;
}

// " (healthy)", " (unhealthy)", " (starting)" for a running task with a health check.
std::string HealthSuffix(const api::TaskStatus& s) {
  if (s.state() != api::TASK_RUNNING) return "";
  switch (s.health()) {
    case api::HEALTH_STARTING:
      return " (starting)";
    case api::HEALTH_HEALTHY:
      return " (healthy)";
    case api::HEALTH_UNHEALTHY:
      return " (unhealthy)";
    default:
      return "";
  }
}

const ListFormat kTaskList{
    "table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t"
    "{{.Error}}\t{{.Ports}}",
    {{"ID", "ID"},
     {"Name", "NAME"},
     {"Image", "IMAGE"},
     {"Node", "NODE"},
     {"DesiredState", "DESIRED STATE"},
     {"CurrentState", "CURRENT STATE"},
     {"Error", "ERROR"},
     {"Ports", "PORTS"}}};

// The rows of `service ps` / `node ps`: each slot's tasks newest first, history as \_.
int PrintTasks(const Invocation& inv, std::vector<api::TaskView> tasks) {
  const bool no_trunc = inv.Has("no-trunc");
  std::sort(tasks.begin(), tasks.end(), [](const auto& a, const auto& b) {
    const auto& x = a.task();
    const auto& y = b.task();
    const std::string kx = x.slot() ? std::to_string(x.slot()) : x.node_id();
    const std::string ky = y.slot() ? std::to_string(y.slot()) : y.node_id();
    if (a.service_name() != b.service_name()) return a.service_name() < b.service_name();
    if (x.slot() != y.slot()) return x.slot() < y.slot();
    if (kx != ky) return kx < ky;
    if (x.meta().created_at() != y.meta().created_at()) {
      return x.meta().created_at() > y.meta().created_at();  // the current task first
    }
    return x.id() < y.id();
  });
  std::vector<boost::json::object> rows;
  std::string last_group;
  for (const auto& v : tasks) {
    const auto& t = v.task();
    const std::string group =
        v.service_name() + "." + (t.slot() ? std::to_string(t.slot()) : t.node_id());
    const bool history = group == last_group;
    last_group = group;
    std::string name = t.slot() ? v.service_name() + "." + std::to_string(t.slot())
                                : v.service_name() + "." + t.node_id();
    if (history) name = " \\_ " + name;
    std::string err = t.status().err();
    if (!no_trunc && err.size() > 30) err = err.substr(0, 29) + "…";
    if (!err.empty()) err = "\"" + err + "\"";
    const std::string image = t.spec().container().image();
    rows.push_back(
        {{"ID", no_trunc ? t.id() : t.id().substr(0, 12)},
         {"Name", name},
         {"Image", no_trunc ? image : ImageShort(image)},
         {"Node", v.node_hostname()},
         {"DesiredState", StateName(t.desired_state() <= api::TASK_RUNNING ? api::TASK_RUNNING
                                                                           : t.desired_state())},
         {"CurrentState", StateName(t.status().state()) + " " + HumanAgo(t.status().timestamp()) +
                              HealthSuffix(t.status())},
         {"Error", err},
         {"Ports", HostPortsOf(t)},
         // Not columns of the table, for --format: the task's address on its node, and what
         // its node last said of it (pull progress while it is preparing).
         {"Addr", t.status().addr()},
         {"Message", t.status().message()},
         // Its addresses on its networks, from the allocator.
         {"Networks", NetworkAddrs(t)}});
  }
  std::cout << FormatList(inv.Get("format"), inv.Has("quiet"), kTaskList, rows);
  return 0;
}

int Ps(const Invocation& inv) {
  std::vector<api::TaskView> all;
  for (const auto& ref : inv.args) {
    const api::ServiceView s = Get(inv, ref);
    std::vector<std::string> filters{"service=" + s.service().id()};
    for (const auto& f : inv.All("filter"))
      filters.push_back(f);
    for (auto& t : Tasks(inv, filters))
      all.push_back(std::move(t));
  }
  return PrintTasks(inv, std::move(all));
}

int NodePs(const Invocation& inv) {
  std::vector<std::string> refs = inv.args;
  if (refs.empty()) refs.push_back("self");
  std::vector<api::TaskView> all;
  for (const auto& ref : refs) {
    api::NodeRef nr;
    nr.set_ref(ref);
    api::NodeView node;
    grpc::ClientContext ctx;
    Deadline(ctx);
    Check(inv.Control()->GetNode(&ctx, nr, &node), inv.host);
    std::vector<std::string> filters{"node=" + node.node().id()};
    for (const auto& f : inv.All("filter"))
      filters.push_back(f);
    for (auto& t : Tasks(inv, filters))
      all.push_back(std::move(t));
  }
  return PrintTasks(inv, std::move(all));
}

boost::json::value ServiceJson(const api::ServiceView& v) {
  const auto& s = v.service();
  const auto& spec = s.spec();
  const auto& c = spec.task().container();
  boost::json::object container{{"Image", c.image()}};
  if (c.args_size()) container["Args"] = boost::json::array(c.args().begin(), c.args().end());
  if (c.command_size()) {
    container["Command"] = boost::json::array(c.command().begin(), c.command().end());
  }
  if (c.env_size()) container["Env"] = boost::json::array(c.env().begin(), c.env().end());
  if (!c.dir().empty()) container["Dir"] = c.dir();
  if (!c.user().empty()) container["User"] = c.user();
  if (c.has_healthcheck()) {
    const auto& h = c.healthcheck();
    boost::json::object hc{{"Test", boost::json::array(h.test().begin(), h.test().end())}};
    if (h.interval_ns()) hc["Interval"] = h.interval_ns();
    if (h.timeout_ns()) hc["Timeout"] = h.timeout_ns();
    if (h.retries()) hc["Retries"] = h.retries();
    if (h.start_period_ns()) hc["StartPeriod"] = h.start_period_ns();
    container["Healthcheck"] = std::move(hc);
  }
  boost::json::object placement;
  if (spec.task().placement().constraints_size()) {
    placement["Constraints"] = boost::json::array(spec.task().placement().constraints().begin(),
                                                  spec.task().placement().constraints().end());
  }
  if (spec.task().placement().max_replicas()) {
    placement["MaxReplicas"] = spec.task().placement().max_replicas();
  }
  if (spec.task().placement().spread_size()) {
    boost::json::array prefs;
    for (const auto& d : spec.task().placement().spread())
      prefs.push_back(boost::json::object{{"Spread", boost::json::object{{"SpreadDescriptor", d}}}});
    placement["Preferences"] = std::move(prefs);
  }
  boost::json::object mode;
  if (spec.has_global()) {
    mode["Global"] = boost::json::object{};
  } else {
    mode["Replicated"] = boost::json::object{{"Replicas", spec.replicated().replicas()}};
  }
  boost::json::object task_template{{"ContainerSpec", container}, {"Placement", placement}};
  boost::json::array ports;
  for (const auto& p : spec.endpoint().ports()) {
    ports.push_back(
        {{"Protocol", p.protocol()},
         {"TargetPort", p.target_port()},
         {"PublishedPort", p.published_port()},
         {"PublishMode", p.publish_mode() == api::PortConfig::HOST ? "host" : "ingress"}});
  }
  boost::json::object endpoint{
      {"Mode", spec.endpoint().mode() == api::EndpointSpec::DNSRR ? "dnsrr" : "vip"}};
  if (!ports.empty()) endpoint["Ports"] = std::move(ports);
  if (spec.networks_size() > 0) {
    boost::json::array nets;
    for (const auto& a : spec.networks()) {
      boost::json::object n{{"Target", a.target()}};
      if (a.aliases_size() > 0) {
        n["Aliases"] = boost::json::array(a.aliases().begin(), a.aliases().end());
      }
      nets.push_back(std::move(n));
    }
    task_template["Networks"] = std::move(nets);
  }
  auto update_config = [](const api::UpdateConfig& u) {
    static const char* kActions[] = {"pause", "continue", "rollback"};
    return boost::json::object{
        {"Parallelism", u.parallelism()},
        {"Delay", u.delay_ns()},
        {"FailureAction", kActions[u.failure_action() % 3]},
        {"Monitor", u.has_monitor_ns() ? u.monitor_ns() : 5'000'000'000},
        // Whole numbers as integers, as Go's encoder prints them (not 0E0).
        {"MaxFailureRatio", u.max_failure_ratio() == static_cast<int64_t>(u.max_failure_ratio())
                                ? boost::json::value(static_cast<int64_t>(u.max_failure_ratio()))
                                : boost::json::value(u.max_failure_ratio())},
        {"Order", u.order() == api::UpdateConfig::START_FIRST ? "start-first" : "stop-first"}};
  };
  boost::json::object out{
      {"ID", s.id()},
      {"Version", boost::json::object{{"Index", s.meta().version()}}},
      {"CreatedAt", Rfc3339(s.meta().created_at())},
      {"UpdatedAt", Rfc3339(s.meta().updated_at())},
      {"Spec", boost::json::object{{"Name", spec.name()},
                                   {"Labels", SortedObject(spec.labels())},
                                   {"TaskTemplate", task_template},
                                   {"Mode", mode},
                                   {"UpdateConfig", update_config(spec.update())},
                                   {"RollbackConfig", update_config(spec.rollback())},
                                   {"EndpointSpec", endpoint}}}};
  // As allocated: the spec, the ports as published (numbers given from the range included)
  // and a virtual IP on each network.
  boost::json::object allocated{{"Spec", endpoint}};
  if (endpoint.contains("Ports")) allocated["Ports"] = endpoint.at("Ports");
  if (s.virtual_ips_size() > 0) {
    boost::json::array vips;
    for (const auto& v : s.virtual_ips()) {
      for (const auto& addr : v.addresses())
        vips.push_back(boost::json::object{{"NetworkID", v.network_id()}, {"Addr", addr}});
    }
    allocated["VirtualIPs"] = std::move(vips);
  }
  out["Endpoint"] = std::move(allocated);
  if (s.update_status().state() != api::UpdateStatus::NONE) {
    static const char* kStates[] = {"",
                                    "updating",
                                    "paused",
                                    "completed",
                                    "rollback_started",
                                    "rollback_paused",
                                    "rollback_completed"};
    out["UpdateStatus"] = boost::json::object{{"State", kStates[s.update_status().state()]},
                                              {"Message", s.update_status().message()}};
  }
  // skep's own: why tasks wait, and the running tasks' last health check.
  auto notes = [](const auto& list, const char* text_key) {
    static const char* kHealth[] = {"none", "starting", "healthy", "unhealthy"};
    boost::json::array out;
    for (const auto& n : list) {
      boost::json::object o{{"ID", n.task_id()}, {"Slot", n.slot()}, {"Node", n.node()},
                            {text_key, n.text()}};
      if (n.health() != api::HEALTH_NONE) o["Health"] = kHealth[n.health() % 4];
      out.push_back(std::move(o));
    }
    return out;
  };
  if (v.pending_count() > 0) {
    out["PendingTasks"] = boost::json::object{{"Count", v.pending_count()},
                                              {"Tasks", notes(v.pending(), "Reason")}};
  }
  if (v.checks_size() > 0) out["HealthChecks"] = notes(v.checks(), "Output");
  return out;
}

// "web.2" for a slot, "web.<task id>" for a global service's task.
std::string NoteName(const api::ServiceView& v, const api::TaskNote& n) {
  return v.service().spec().name() + "." + (n.slot() ? std::to_string(n.slot()) : n.task_id());
}

// The first line of a check's output, at most 60 characters.
std::string FirstLine(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  return line.size() > 60 ? line.substr(0, 57) + "..." : line;
}

int Inspect(const Invocation& inv) {
  std::vector<api::ServiceView> views;
  for (const auto& ref : inv.args)
    views.push_back(Get(inv, ref));
  if (inv.Has("pretty")) {
    for (const auto& v : views) {
      const auto& s = v.service();
      std::cout << "\nID:             " << s.id() << "\nName:           " << s.spec().name()
                << "\nService Mode:   " << (s.spec().has_global() ? "Global" : "Replicated")
                << "\n";
      if (!s.spec().has_global()) {
        std::cout << " Replicas:      " << s.spec().replicated().replicas() << "\n";
      }
      std::cout << "Placement:\n";
      for (const auto& c : s.spec().task().placement().constraints())
        std::cout << " Constraints:   [" << c << "]\n";
      if (s.spec().task().placement().spread_size()) {
        std::cout << " Preferences:   [";
        for (int i = 0; i < s.spec().task().placement().spread_size(); ++i)
          std::cout << (i ? " " : "") << "{Spread " << s.spec().task().placement().spread(i)
                    << "}";
        std::cout << "]\n";
      }
      std::cout << "ContainerSpec:\n Image:         " << s.spec().task().container().image()
                << "\n";
      if (v.pending_count() > 0) {
        std::cout << "Pending Tasks:  " << v.pending_count() << "\n";
        for (const auto& n : v.pending())
          std::cout << " " << NoteName(v, n) << ": " << n.text() << "\n";
      }
      if (v.checks_size() > 0) {
        static const char* kHealth[] = {"none", "starting", "healthy", "unhealthy"};
        std::cout << "Health Checks:\n";
        for (const auto& n : v.checks())
          std::cout << " " << NoteName(v, n) << (n.node().empty() ? "" : " on " + n.node())
                    << ": " << kHealth[n.health() % 4]
                    << (n.text().empty() ? "" : ", " + FirstLine(n.text())) << "\n";
      }
    }
    return 0;
  }
  std::vector<boost::json::value> objects;
  for (const auto& v : views)
    objects.push_back(ServiceJson(v));
  std::cout << FormatInspect(inv.Get("format"), objects);
  return 0;
}

int Remove(const Invocation& inv) {
  return ForEachRef(inv, [&](const std::string& ref) {
    api::ServiceRef req;
    req.set_ref(ref);
    api::Empty resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    return inv.Control()->RemoveService(&ctx, req, &resp);
  });
}

api::ServiceView Update(const Invocation& inv, const api::ServiceView& current,
                        const api::ServiceSpec& spec, bool rollback,
                        const api::RegistryAuth* auth = nullptr) {
  api::UpdateServiceRequest req;
  req.set_ref(current.service().id());
  req.set_version(current.service().meta().version());
  *req.mutable_spec() = spec;
  req.set_rollback(rollback);
  if (auth != nullptr) *req.mutable_registry_auth() = *auth;
  api::ServiceView resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Control()->UpdateService(&ctx, req, &resp), inv.host);
  return resp;
}

int Scale(const Invocation& inv) {
  int rc = 0;
  for (const auto& arg : inv.args) {
    const size_t eq = arg.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw UsageError("invalid scale specifier '" + arg + "': expected SERVICE=REPLICAS");
    }
    const uint64_t n = ParseCount("replicas", arg.substr(eq + 1));
    try {
      const api::ServiceView v = Get(inv, arg.substr(0, eq));
      if (v.service().spec().has_global()) {
        throw DaemonError("scale can only be used with replicated mode (service " +
                          v.service().spec().name() + " is global)");
      }
      api::ServiceSpec spec = v.service().spec();
      spec.mutable_replicated()->set_replicas(n);
      Update(inv, v, spec, false);
      std::cout << arg.substr(0, eq) << " scaled to " << n << "\n";
      if (!inv.Has("detach") && n > 0) rc |= Converge(inv, v.service().id());
    } catch (const DaemonError& e) {
      std::cerr << "skep: " << e.what() << "\n";
      rc = 1;
    }
  }
  return rc;
}

int UpdateCmd(const Invocation& inv) {
  const api::ServiceView v = Get(inv, inv.args[0]);
  api::ServiceSpec spec = v.service().spec();
  auto* c = spec.mutable_task()->mutable_container();
  if (inv.Has("image")) c->set_image(inv.Get("image"));
  if (inv.Has("replicas")) {
    if (spec.has_global()) throw UsageError("replicas can only be used with replicated mode");
    spec.mutable_replicated()->set_replicas(ParseCount("replicas", inv.Get("replicas")));
  }
  for (const auto& key : inv.All("env-rm")) {
    auto* env = c->mutable_env();
    env->erase(std::remove_if(
                   env->begin(), env->end(),
                   [&](const std::string& e) { return e == key || e.rfind(key + "=", 0) == 0; }),
               env->end());
  }
  for (const auto& e : inv.All("env-add")) {
    const std::string key = e.substr(0, e.find('='));
    auto* env = c->mutable_env();
    env->erase(std::remove_if(
                   env->begin(), env->end(),
                   [&](const std::string& x) { return x == key || x.rfind(key + "=", 0) == 0; }),
               env->end());
    c->add_env(e);
  }
  auto* placement = spec.mutable_task()->mutable_placement();
  for (const auto& k : inv.All("constraint-rm")) {
    auto* cs = placement->mutable_constraints();
    cs->erase(std::remove(cs->begin(), cs->end(), k), cs->end());
  }
  for (const auto& k : inv.All("constraint-add"))
    placement->add_constraints(k);
  for (const auto& p : inv.All("placement-pref-rm")) {
    const std::string d = ParsePlacementPref("placement-pref-rm", p);
    auto* s = placement->mutable_spread();
    s->erase(std::remove(s->begin(), s->end(), d), s->end());
  }
  for (const auto& p : inv.All("placement-pref-add"))
    placement->add_spread(ParsePlacementPref("placement-pref-add", p));
  for (const auto& l : inv.All("label-add")) {
    auto [k, val] = KeyValue("label-add", l);
    (*spec.mutable_labels())[k] = val;
  }
  for (const auto& l : inv.All("label-rm"))
    spec.mutable_labels()->erase(l);
  if (inv.Has("rebalance") && inv.Has("no-rebalance"))
    throw UsageError("--rebalance and --no-rebalance cannot be combined");
  if (inv.Has("rebalance")) (*spec.mutable_labels())["skep.rebalance"] = "true";
  if (inv.Has("no-rebalance")) spec.mutable_labels()->erase("skep.rebalance");
  for (const auto& p : inv.All("publish-add"))
    *spec.mutable_endpoint()->add_ports() = ParsePort(p);
  for (const auto& ref : inv.All("network-rm")) {
    api::NetworkRef req;
    req.set_ref(ref);
    api::Network n;
    grpc::ClientContext ctx;
    Deadline(ctx);
    Check(inv.Control()->GetNetwork(&ctx, req, &n), inv.host);
    auto* nets = spec.mutable_networks();
    const auto before = nets->size();
    nets->erase(std::remove_if(nets->begin(), nets->end(),
                               [&](const auto& a) { return a.target() == n.id(); }),
                nets->end());
    if (nets->size() == before) {
      throw DaemonError("service " + spec.name() + " is not attached to network " + ref);
    }
  }
  for (const auto& n : inv.All("network-add"))
    spec.add_networks()->set_target(n);
  ApplyCommonFlags(inv, &spec);
  if (inv.Has("force")) spec.mutable_task()->set_force_update(spec.task().force_update() + 1);
  const bool rollback = inv.Has("rollback");
  std::optional<api::RegistryAuth> auth;
  if (inv.Has("with-registry-auth")) auth = StoredLogin(spec.task().container().image());
  Update(inv, v, spec, rollback, auth ? &*auth : nullptr);
  std::cout << v.service().spec().name() << "\n";
  if (inv.Has("detach")) return 0;
  return Converge(inv, v.service().id(), rollback);
}

// skep's own: the scheduler's verdict on every node for a new task of the service.
int Explain(const Invocation& inv) {
  api::ServiceRef ref;
  ref.set_ref(inv.args[0]);
  api::ExplainServiceResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Control()->ExplainService(&ctx, ref, &resp), inv.host);
  std::vector<std::vector<std::string>> rows;
  std::string next;
  size_t fit = 0;
  for (const auto& n : resp.nodes()) {
    if (n.next()) next = n.hostname();
    if (n.fits()) ++fit;
    rows.push_back({n.hostname(), n.node_id().substr(0, 12), n.fits() ? "yes" : "no",
                    std::to_string(n.service_tasks()), std::to_string(n.total_tasks()),
                    n.fits() ? (n.next() ? "the next task goes here" : "")
                             : n.filter() + ": " + n.reason()});
  }
  std::cout << Table({"NODE", "ID", "FITS", "SERVICE TASKS", "TASKS", "WHY"}, rows);
  std::cout << "\n"
            << fit << " of " << resp.nodes_size() << " nodes can take a new task of "
            << resp.service_name();
  if (!next.empty()) std::cout << "; the next one would go to " << next;
  std::cout << ".\n";
  return 0;
}

int Rollback(const Invocation& inv) {
  const api::ServiceView v = Get(inv, inv.args[0]);
  Update(inv, v, {}, true);
  std::cout << v.service().spec().name() << "\n";
  if (inv.Has("detach")) return 0;
  return Converge(inv, v.service().id(), true);
}

std::vector<Flag> CommonFlags() {
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

}  // namespace

std::vector<Command> ServiceCommands() {
  std::vector<Flag> create = CommonFlags();
  for (auto f :
       std::vector<Flag>{{"name", 0, "string", "Service name"},
                         {"replicas", 0, "uint", "Number of tasks"},
                         {"mode", 0, "string", "Service mode (replicated or global)"},
                         {"constraint", 0, "list", "Placement constraints", true},
                         {"placement-pref", 0, "pref", "Add a placement preference", true},
                         {"env", 'e', "list", "Set environment variables", true},
                         {"env-file", 0, "list", "Read in a file of environment variables", true},
                         {"label", 'l', "list", "Service labels", true},
                         {"container-label", 0, "list", "Container labels", true},
                         {"mount", 0, "mount", "Attach a filesystem mount to the service", true},
                         {"publish", 'p', "port", "Publish a port as a node port", true},
                         {"network", 0, "network", "Network attachments", true},
                         {"rebalance", 0, "",
                          "Move tasks to even the service out when nodes join or come back "
                          "(label skep.rebalance=true)"}})
    create.push_back(f);
  std::vector<Flag> update = CommonFlags();
  for (auto f : std::vector<Flag>{
           {"image", 0, "string", "Service image tag"},
           {"replicas", 0, "uint", "Number of tasks"},
           {"env-add", 0, "list", "Add or update an environment variable", true},
           {"env-rm", 0, "list", "Remove an environment variable", true},
           {"constraint-add", 0, "list", "Add or update a placement constraint", true},
           {"constraint-rm", 0, "list", "Remove a constraint", true},
           {"placement-pref-add", 0, "pref", "Add a placement preference", true},
           {"placement-pref-rm", 0, "pref", "Remove a placement preference", true},
           {"label-add", 0, "list", "Add or update a service label", true},
           {"label-rm", 0, "list", "Remove a label by its key", true},
           {"publish-add", 0, "port", "Add or update a published port", true},
           {"network-add", 0, "network", "Add a network", true},
           {"network-rm", 0, "list", "Remove a network", true},
           {"force", 0, "", "Force update even if no changes require it"},
           {"rollback", 0, "", "Rollback to previous specification"},
           {"rebalance", 0, "", "Move tasks to even the service out when nodes join or come back"},
           {"no-rebalance", 0, "", "Stop rebalancing the service"}})
    update.push_back(f);
  const Flag format{"format", 0, "string",
                    "Format output: 'table', 'table TEMPLATE', 'json', or a Go template"};
  return {
      {"service create", "[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new service", create, 1,
       SIZE_MAX, Create, true},
      {"service ls",
       "[OPTIONS]",
       "List services",
       {{"quiet", 'q', "", "Only display IDs"},
        {"filter", 'f', "filter", "Filter output (id=, name=, label=, mode=)", true},
        format},
       0,
       0,
       List},
      {"service ps",
       "[OPTIONS] SERVICE [SERVICE...]",
       "List the tasks of one or more services",
       {{"quiet", 'q', "", "Only display task IDs"},
        {"no-trunc", 0, "", "Do not truncate output"},
        {"filter", 'f', "filter", "Filter output (desired-state=, node=, id=)", true},
        format},
       1,
       SIZE_MAX,
       Ps},
      {"service inspect",
       "[OPTIONS] SERVICE [SERVICE...]",
       "Display detailed information on one or more services",
       {{"format", 'f', "string", "Format output: 'json', or a Go template"},
        {"pretty", 0, "", "Print the information in a human friendly format"}},
       1,
       SIZE_MAX,
       Inspect},
      {"service rm",
       "SERVICE [SERVICE...]",
       "Remove one or more services",
       {},
       1,
       SIZE_MAX,
       Remove},
      {"service scale",
       "SERVICE=REPLICAS [SERVICE=REPLICAS...]",
       "Scale one or multiple replicated services",
       {{"detach", 'd', "", "Exit immediately instead of waiting for the service to converge"}},
       1,
       SIZE_MAX,
       Scale},
      {"service update", "[OPTIONS] SERVICE", "Update a service", update, 1, 1, UpdateCmd},
      {"service rollback",
       "[OPTIONS] SERVICE",
       "Revert changes to a service's configuration",
       {{"detach", 'd', "", "Exit immediately instead of waiting for the service to converge"}},
       1,
       1,
       Rollback},
      {"service explain",
       "SERVICE",
       "Show, for every node, whether a new task of the service could go there, and if not why",
       {},
       1,
       1,
       Explain},
      {"node ps",
       "[OPTIONS] [NODE...]",
       "List tasks running on one or more nodes, defaults to current node",
       {{"quiet", 'q', "", "Only display task IDs"},
        {"no-trunc", 0, "", "Do not truncate output"},
        {"filter", 'f', "filter", "Filter output (desired-state=, id=)", true},
        format},
       0,
       SIZE_MAX,
       NodePs},
  };
}

}  // namespace skep::cli
