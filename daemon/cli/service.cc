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
#include "daemon/cli/service_flags.h"
#include "daemon/cli/service_inspect.h"
#include "daemon/cli/specs.h"

namespace skep::cli {
namespace {




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




int Inspect(const Invocation& inv) {
  std::vector<api::ServiceView> views;
  for (const auto& ref : inv.args)
    views.push_back(Get(inv, ref));
  if (inv.Has("pretty")) {
    for (const auto& v : views)
      PrintPretty(v, std::cout);
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


}  // namespace

std::vector<Command> ServiceCommands() {
  std::vector<Flag> create = CommonServiceFlags();
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
  std::vector<Flag> update = CommonServiceFlags();
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
