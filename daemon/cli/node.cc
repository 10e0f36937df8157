// skep node ...
#include <algorithm>
#include <iostream>
#include <sstream>

#include "daemon/cli/command.h"
#include "daemon/cli/format.h"

namespace skep::cli {
namespace {

std::string StateName(api::NodeState s) {
  switch (s) {
    case api::NODE_STATE_READY:
      return "Ready";
    case api::NODE_STATE_DOWN:
      return "Down";
    default:
      return "Unknown";
  }
}

std::string AvailabilityName(api::NodeAvailability a) {
  switch (a) {
    case api::AVAILABILITY_PAUSE:
      return "Pause";
    case api::AVAILABILITY_DRAIN:
      return "Drain";
    default:
      return "Active";
  }
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string RoleName(api::NodeRole r) {
  return r == api::ROLE_MANAGER ? "manager" : "worker";
}

// Docker's node ls formatter: its default table, fields and headers.
const ListFormat kNodeList{
    "table {{.ID}}{{if .Self}} *{{end}}\t{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t"
    "{{.ManagerStatus}}\t{{.EngineVersion}}",
    {{"ID", "ID"},
     {"Self", ""},
     {"Hostname", "HOSTNAME"},
     {"Status", "STATUS"},
     {"Availability", "AVAILABILITY"},
     {"ManagerStatus", "MANAGER STATUS"},
     {"EngineVersion", "ENGINE VERSION"},
     {"TLSStatus", "TLS STATUS"}}};

int List(const Invocation& inv) {
  api::ListNodesRequest req;
  for (const auto& f : inv.All("filter"))
    req.add_filters(f);
  api::ListNodesResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Control()->ListNodes(&ctx, req, &resp), inv.host);
  std::vector<api::NodeView> nodes(resp.nodes().begin(), resp.nodes().end());
  std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) {
    return std::tie(a.node().description().hostname(), a.node().id()) <
           std::tie(b.node().description().hostname(), b.node().id());
  });
  std::vector<boost::json::object> rows;
  for (const auto& v : nodes) {
    const auto& n = v.node();
    rows.push_back({{"ID", n.id()},
                    {"Self", v.self()},
                    {"Hostname", n.description().hostname()},
                    {"Status", StateName(n.status().state())},
                    {"Availability", AvailabilityName(n.spec().availability())},
                    {"ManagerStatus", v.manager_status()},
                    {"EngineVersion", n.description().engine_version()},
                    // Docker compares the node's TLS info with the cluster's; skepd does not
                    // report either, which Docker also calls Unknown.
                    {"TLSStatus", "Unknown"}});
  }
  std::cout << FormatList(inv.Get("format"), inv.Has("quiet"), kNodeList, rows);
  return 0;
}

api::NodeView Get(const Invocation& inv, const std::string& ref) {
  api::NodeRef req;
  req.set_ref(ref);
  api::NodeView resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Control()->GetNode(&ctx, req, &resp), inv.host);
  return resp;
}

boost::json::object Json(const api::NodeView& v) {
  const auto& n = v.node();
  boost::json::object o;
  o["ID"] = n.id();
  o["Version"] = boost::json::object{{"Index", n.meta().version()}};
  o["CreatedAt"] = Rfc3339(n.meta().created_at());
  o["UpdatedAt"] = Rfc3339(n.meta().updated_at());
  o["Spec"] =
      boost::json::object{{"Labels", SortedObject(n.spec().labels())},
                          {"Role", RoleName(n.spec().desired_role())},
                          {"Availability", Lower(AvailabilityName(n.spec().availability()))}};
  const auto& d = n.description();
  o["Description"] = boost::json::object{
      {"Hostname", d.hostname()},
      {"Platform", boost::json::object{{"Architecture", d.arch()}, {"OS", d.os()}}},
      {"Resources",
       boost::json::object{{"NanoCPUs", d.nano_cpus()}, {"MemoryBytes", d.memory_bytes()}}},
      {"Engine", boost::json::object{{"EngineVersion", d.engine_version()},
                                     {"Labels", SortedObject(d.engine_labels())},
                                     {"MemoryLimit", !d.no_memory_cgroup()}}}};
  boost::json::object status{{"State", Lower(StateName(n.status().state()))},
                             {"Addr", n.status().addr()}};
  if (!n.status().message().empty()) status["Message"] = n.status().message();
  o["Status"] = status;
  // skep's own: what the node's tasks reserve.
  o["Reserved"] = boost::json::object{{"Tasks", v.tasks()},
                                      {"NanoCPUs", v.reserved_nano_cpus()},
                                      {"MemoryBytes", v.reserved_memory_bytes()}};
  if (!v.manager_status().empty()) {
    o["ManagerStatus"] = boost::json::object{
        {"Leader", v.manager_status() == "Leader"},
        {"Reachability", v.manager_status() == "Unreachable" ? "unreachable" : "reachable"},
        {"Addr", n.advertise_addr()}};
  }
  return o;
}

std::string Pretty(const api::NodeView& v) {
  const auto& n = v.node();
  std::ostringstream os;
  auto line = [&](const std::string& k, const std::string& val) {
    os << k << ":" << std::string(k.size() < 24 ? 24 - k.size() : 1, ' ') << val << "\n";
  };
  line("ID", n.id());
  if (!n.spec().labels().empty()) {
    os << "Labels:\n";
    for (const auto& [k, val] : SortedObject(n.spec().labels())) {
      os << " - " << k << "=" << val.as_string().c_str() << "\n";
    }
  }
  line("Hostname", n.description().hostname());
  line("Joined at", Rfc3339(n.meta().created_at()));
  os << "Status:\n";
  line(" State", StateName(n.status().state()));
  if (!n.status().message().empty()) line(" Message", n.status().message());
  line(" Availability", AvailabilityName(n.spec().availability()));
  line(" Address", n.status().addr());
  if (!v.manager_status().empty()) {
    os << "Manager Status:\n";
    line(" Address", n.advertise_addr());
    line(" Raft Status", v.manager_status() == "Unreachable" ? "Unreachable" : "Reachable");
    line(" Leader", v.manager_status() == "Leader" ? "Yes" : "No");
  }
  os << "Platform:\n";
  line(" Operating System", n.description().os());
  line(" Architecture", n.description().arch());
  os << "Resources:\n";
  line(" CPUs", std::to_string(n.description().nano_cpus() / 1'000'000'000));
  std::ostringstream mem;
  mem.precision(3);
  mem << static_cast<double>(n.description().memory_bytes()) / (1024.0 * 1024 * 1024) << "GiB";
  line(" Memory", mem.str());
  line(" Memory Limits", n.description().no_memory_cgroup()
                             ? "not enforced: the kernel has no memory cgroup controller"
                             : "enforced");
  // What the node's tasks reserve, and what is left for new ones (the scheduler's view).
  auto cpus = [](int64_t nano) {
    std::ostringstream s;
    s << static_cast<double>(nano) / 1e9;
    return s.str();
  };
  auto bytes = [](int64_t b) {
    std::ostringstream s;
    s.precision(3);
    if (b >= 1024LL * 1024 * 1024) {
      s << static_cast<double>(b) / (1024.0 * 1024 * 1024) << "GiB";
    } else {
      s << static_cast<double>(b) / (1024.0 * 1024) << "MiB";
    }
    return s.str();
  };
  os << "Reserved:\n";
  line(" Tasks", std::to_string(v.tasks()));
  line(" CPUs", cpus(v.reserved_nano_cpus()));
  line(" Memory", bytes(v.reserved_memory_bytes()));
  os << "Available:\n";
  line(" CPUs", cpus(std::max<int64_t>(0, n.description().nano_cpus() - v.reserved_nano_cpus())));
  line(" Memory",
       bytes(std::max<int64_t>(0, n.description().memory_bytes() - v.reserved_memory_bytes())));
  if (!n.description().engine_labels().empty()) {
    os << "Engine Labels:\n";
    for (const auto& [k, val] : SortedObject(n.description().engine_labels())) {
      os << " - " << k << "=" << val.as_string().c_str() << "\n";
    }
  }
  line("Engine Version", n.description().engine_version());
  return os.str();
}

int Inspect(const Invocation& inv) {
  // As Docker: --pretty wins over --format, and "pretty" is a format of its own that takes
  // nothing more.
  const std::string format = inv.Has("pretty") ? "pretty" : inv.Get("format");
  if (format.rfind("pretty", 0) == 0 && format != "pretty") {
    throw UsageError(
        "cannot supply extra formatting options to the pretty template\n"
        "See 'skep node inspect --help'.");
  }
  std::vector<boost::json::value> out;
  std::string pretty;
  for (size_t i = 0; i < inv.args.size(); ++i) {
    const api::NodeView v = Get(inv, inv.args[i]);
    out.push_back(Json(v));
    if (i > 0) pretty += "\n";
    pretty += Pretty(v);
  }
  std::cout << (format == "pretty" ? pretty : FormatInspect(format, out));
  return 0;
}

api::NodeView Update(const Invocation& inv, api::UpdateNodeRequest req) {
  api::NodeView resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Control()->UpdateNode(&ctx, req, &resp), inv.host);
  return resp;
}

int SetRole(const Invocation& inv, api::NodeRole role) {
  int rc = 0;
  for (const auto& ref : inv.args) {
    try {
      const api::NodeView current = Get(inv, ref);
      const std::string name = ref;
      if (current.node().spec().desired_role() == role) {
        std::cout << "Node " << name << " is already a " << RoleName(role) << ".\n";
        continue;
      }
      api::UpdateNodeRequest req;
      req.set_ref(current.node().id());
      req.set_set_role(true);
      req.set_role(role);
      Update(inv, req);
      if (role == api::ROLE_MANAGER) {
        std::cout << "Node " << name << " promoted to a manager in the swarm.\n";
      } else {
        std::cout << "Manager " << name << " demoted in the swarm.\n";
      }
    } catch (const DaemonError& e) {
      std::cerr << "skep: " << e.what() << "\n";
      rc = 1;
    }
  }
  return rc;
}

int UpdateCmd(const Invocation& inv) {
  api::UpdateNodeRequest req;
  req.set_ref(inv.args[0]);
  if (inv.Has("availability")) {
    const std::string a = inv.Get("availability");
    req.set_set_availability(true);
    if (a == "active") {
      req.set_availability(api::AVAILABILITY_ACTIVE);
    } else if (a == "pause") {
      req.set_availability(api::AVAILABILITY_PAUSE);
    } else if (a == "drain") {
      req.set_availability(api::AVAILABILITY_DRAIN);
    } else {
      throw UsageError("invalid argument \"" + a +
                       "\" for --availability: use active, pause or drain\nSee 'skep node "
                       "update --help'.");
    }
  }
  for (const auto& l : inv.All("label-add")) {
    const size_t eq = l.find('=');
    const std::string key = l.substr(0, eq);
    if (key.empty()) {
      throw UsageError("invalid argument \"" + l +
                       "\" for --label-add: the key is empty\n"
                       "See 'skep node update --help'.");
    }
    (*req.mutable_label_add())[key] = eq == std::string::npos ? "" : l.substr(eq + 1);
  }
  for (const auto& k : inv.All("label-rm"))
    req.add_label_rm(k);
  if (!req.set_availability() && req.label_add().empty() && req.label_rm().empty()) {
    throw UsageError(
        "nothing to update: give --availability, --label-add or --label-rm\n"
        "See 'skep node update --help'.");
  }
  Update(inv, req);
  std::cout << inv.args[0] << "\n";
  return 0;
}

int Remove(const Invocation& inv) {
  int rc = 0;
  for (const auto& ref : inv.args) {
    api::RemoveNodeRequest req;
    req.set_ref(ref);
    req.set_force(inv.Has("force"));
    api::Empty resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    try {
      Check(inv.Control()->RemoveNode(&ctx, req, &resp), inv.host);
      std::cout << ref << "\n";
    } catch (const DaemonError& e) {
      std::cerr << "skep: " << e.what() << "\n";
      rc = 1;
    }
  }
  return rc;
}

}  // namespace

std::vector<Command> NodeCommands() {
  return {
      {"node ls",
       "[OPTIONS]",
       "List nodes in the swarm",
       {{"quiet", 'q', "", "Only display IDs"},
        {"filter", 'f', "filter",
         "Filter output (id=, name=, role=manager|worker, label=, "
         "node.label=)",
         true},
        {"format", 0, "string",
         "Format output: 'table', 'table TEMPLATE', 'json', or a Go template"}},
       0,
       0,
       List},
      {"node inspect",
       "[OPTIONS] NODE [NODE...]",
       "Display detailed information on nodes",
       {{"format", 'f', "string", "Format output: 'json', or a Go template"},
        {"pretty", 0, "", "Print the information in a human friendly format"}},
       1,
       SIZE_MAX,
       Inspect},
      {"node promote",
       "NODE [NODE...]",
       "Promote nodes to managers",
       {},
       1,
       SIZE_MAX,
       [](const Invocation& inv) { return SetRole(inv, api::ROLE_MANAGER); }},
      {"node demote",
       "NODE [NODE...]",
       "Demote managers to workers",
       {},
       1,
       SIZE_MAX,
       [](const Invocation& inv) { return SetRole(inv, api::ROLE_WORKER); }},
      {"node update",
       "[OPTIONS] NODE",
       "Update a node",
       {{"availability", 0, "string", "Availability of the node (active, pause, drain)"},
        {"label-add", 0, "list", "Add or update a node label (key=value)", true},
        {"label-rm", 0, "list", "Remove a node label if it exists", true}},
       1,
       1,
       UpdateCmd},
      {"node rm",
       "[OPTIONS] NODE [NODE...]",
       "Remove nodes from the swarm",
       {{"force", 'f', "", "Remove a node even if it is not down"}},
       1,
       SIZE_MAX,
       Remove},
  };
}

}  // namespace skep::cli
