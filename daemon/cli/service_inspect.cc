#include "daemon/cli/service_inspect.h"

#include <ostream>

#include "daemon/cli/format.h"

namespace skep::cli {

namespace {

// "web.2" for a slot, "web.<task id>" for a global service's task.
std::string NoteName(const api::ServiceView& v, const api::TaskNote& n) {
  return v.service().spec().name() + "." + (n.slot() ? std::to_string(n.slot()) : n.task_id());
}

// The first line of a check's output, at most 60 characters.
std::string FirstLine(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  return line.size() > 60 ? line.substr(0, 57) + "..." : line;
}

}  // namespace

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
      prefs.push_back(
          boost::json::object{{"Spread", boost::json::object{{"SpreadDescriptor", d}}}});
    placement["Preferences"] = std::move(prefs);
  }
  if (spec.task().placement().platforms_size()) {
    boost::json::array platforms;
    for (const auto& p : spec.task().placement().platforms())
      platforms.push_back(
          boost::json::object{{"Architecture", p.architecture()}, {"OS", p.os()}});
    placement["Platforms"] = std::move(platforms);
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
      boost::json::object o{
          {"ID", n.task_id()}, {"Slot", n.slot()}, {"Node", n.node()}, {text_key, n.text()}};
      if (n.health() != api::HEALTH_NONE) o["Health"] = kHealth[n.health() % 4];
      out.push_back(std::move(o));
    }
    return out;
  };
  if (v.pending_count() > 0) {
    out["PendingTasks"] =
        boost::json::object{{"Count", v.pending_count()}, {"Tasks", notes(v.pending(), "Reason")}};
  }
  if (v.checks_size() > 0) out["HealthChecks"] = notes(v.checks(), "Output");
  return out;
}

void PrintPretty(const api::ServiceView& v, std::ostream& out) {
  const auto& s = v.service();
  out << "\nID:             " << s.id() << "\nName:           " << s.spec().name()
      << "\nService Mode:   " << (s.spec().has_global() ? "Global" : "Replicated") << "\n";
  if (!s.spec().has_global()) {
    out << " Replicas:      " << s.spec().replicated().replicas() << "\n";
  }
  out << "Placement:\n";
  for (const auto& c : s.spec().task().placement().constraints())
    out << " Constraints:   [" << c << "]\n";
  if (s.spec().task().placement().spread_size()) {
    out << " Preferences:   [";
    for (int i = 0; i < s.spec().task().placement().spread_size(); ++i)
      out << (i ? " " : "") << "{Spread " << s.spec().task().placement().spread(i) << "}";
    out << "]\n";
  }
  out << "ContainerSpec:\n Image:         " << s.spec().task().container().image() << "\n";
  if (v.pending_count() > 0) {
    out << "Pending Tasks:  " << v.pending_count() << "\n";
    for (const auto& n : v.pending())
      out << " " << NoteName(v, n) << ": " << n.text() << "\n";
  }
  if (v.checks_size() > 0) {
    static const char* kHealth[] = {"none", "starting", "healthy", "unhealthy"};
    out << "Health Checks:\n";
    for (const auto& n : v.checks())
      out << " " << NoteName(v, n) << (n.node().empty() ? "" : " on " + n.node()) << ": "
          << kHealth[n.health() % 4] << (n.text().empty() ? "" : ", " + FirstLine(n.text()))
          << "\n";
  }
}

}  // namespace skep::cli
