// skep network create|ls|inspect|rm|prune: the swarm's overlay networks, in Docker's shapes.
#include <algorithm>
#include <iostream>

#include "daemon/cli/command.h"
#include "daemon/cli/format.h"

namespace skep::cli {
namespace {

const ListFormat kNetworkList{"table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
                              {{"ID", "NETWORK ID"},
                               {"Name", "NAME"},
                               {"Driver", "DRIVER"},
                               {"Scope", "SCOPE"},
                               {"IPv6", "IPV6"},
                               {"Internal", "INTERNAL"},
                               {"CreatedAt", "CREATED AT"}}};

// key=value pairs of a repeated flag.
void KeyValues(const Invocation& inv, const std::string& flag,
               google::protobuf::Map<std::string, std::string>* out) {
  for (const auto& kv : inv.All(flag)) {
    const size_t eq = kv.find('=');
    if (eq == 0) throw UsageError("invalid --" + flag + " \"" + kv + "\": the key is empty");
    (*out)[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
  }
}

int Create(const Invocation& inv) {
  api::CreateNetworkRequest req;
  auto* spec = req.mutable_spec();
  spec->set_name(inv.args[0]);
  spec->set_driver(inv.Get("driver", "overlay"));
  if (inv.Has("scope") && inv.Get("scope") != "swarm") {
    throw UsageError("invalid --scope \"" + inv.Get("scope") +
                     "\": swarm networks are swarm-scoped");
  }
  if (inv.All("subnet").size() > 1) throw UsageError("only one --subnet (IPv4) is supported");
  if (inv.Has("subnet") || inv.Has("gateway") || inv.Has("ip-range")) {
    auto* ipam = spec->add_ipam();
    ipam->set_subnet(inv.Get("subnet"));
    ipam->set_gateway(inv.Get("gateway"));
    ipam->set_ip_range(inv.Get("ip-range"));
  }
  spec->set_attachable(inv.Has("attachable"));
  spec->set_internal(inv.Has("internal"));
  spec->set_ingress(inv.Has("ingress"));
  KeyValues(inv, "label", spec->mutable_labels());
  KeyValues(inv, "opt", spec->mutable_options());
  api::CreateNetworkResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Control()->CreateNetwork(&ctx, req, &resp), inv.host);
  std::cout << resp.id() << "\n";
  return 0;
}

std::vector<api::Network> List(const Invocation& inv, const std::vector<std::string>& filters) {
  api::ListNetworksRequest req;
  for (const auto& f : filters)
    req.add_filters(f);
  api::ListNetworksResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Control()->ListNetworks(&ctx, req, &resp), inv.host);
  std::vector<api::Network> out(resp.networks().begin(), resp.networks().end());
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.spec().name() < b.spec().name(); });
  return out;
}

int Ls(const Invocation& inv) {
  const bool no_trunc = inv.Has("no-trunc");
  std::vector<boost::json::object> rows;
  for (const auto& n : List(inv, inv.All("filter"))) {
    rows.push_back({{"ID", no_trunc ? n.id() : n.id().substr(0, 12)},
                    {"Name", n.spec().name()},
                    {"Driver", n.spec().driver()},
                    {"Scope", "swarm"},
                    {"IPv6", false},
                    {"Internal", n.spec().internal()},
                    {"CreatedAt", Rfc3339(n.meta().created_at())}});
  }
  std::cout << FormatList(inv.Get("format"), inv.Has("quiet"), kNetworkList, rows);
  return 0;
}

boost::json::object Json(const api::Network& n) {
  boost::json::object config{{"Subnet", n.ipam().subnet()}, {"Gateway", n.ipam().gateway()}};
  if (!n.ipam().ip_range().empty()) config["IPRange"] = n.ipam().ip_range();
  boost::json::object options = SortedObject(n.spec().options());
  options["com.docker.network.driver.overlay.vxlanid_list"] = std::to_string(n.vni());
  return {{"Name", n.spec().name()},
          {"Id", n.id()},
          {"Created", Rfc3339(n.meta().created_at())},
          {"Scope", "swarm"},
          {"Driver", n.spec().driver()},
          {"EnableIPv6", false},
          {"IPAM", boost::json::object{{"Driver", "default"},
                                       {"Options", nullptr},
                                       {"Config", boost::json::array{config}}}},
          {"Internal", n.spec().internal()},
          {"Attachable", n.spec().attachable()},
          {"Ingress", n.spec().ingress()},
          {"ConfigFrom", boost::json::object{{"Network", ""}}},
          {"ConfigOnly", false},
          {"Containers", nullptr},
          {"Options", options},
          {"Labels", SortedObject(n.spec().labels())}};
}

int Inspect(const Invocation& inv) {
  std::vector<boost::json::value> out;
  for (const auto& ref : inv.args) {
    api::NetworkRef req;
    req.set_ref(ref);
    api::Network n;
    grpc::ClientContext ctx;
    Deadline(ctx);
    Check(inv.Control()->GetNetwork(&ctx, req, &n), inv.host);
    out.push_back(Json(n));
  }
  std::cout << FormatInspect(inv.Get("format"), out);
  return 0;
}

int Rm(const Invocation& inv) {
  return ForEachRef(inv, [&](const std::string& ref) {
    api::NetworkRef req;
    req.set_ref(ref);
    api::Empty resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    return inv.Control()->RemoveNetwork(&ctx, req, &resp);
  });
}

int Prune(const Invocation& inv) {
  if (!inv.Has("force")) {
    std::cout << "WARNING! This will remove all custom networks not used by at least one "
                 "service.\nAre you sure you want to continue? [y/N] "
              << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "Y") return 0;
  }
  api::PruneNetworksResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  Check(inv.Control()->PruneNetworks(&ctx, {}, &resp), inv.host);
  if (resp.removed_size() > 0) {
    std::cout << "Deleted Networks:\n";
    for (const auto& n : resp.removed())
      std::cout << n << "\n";
  }
  return 0;
}

}  // namespace

std::vector<Command> NetworkCommands() {
  const Flag format{"format", 0, "string", "Format output: 'json', or a Go template"};
  return {
      {"network create",
       "[OPTIONS] NETWORK",
       "Create a network",
       {{"driver", 'd', "string", "Driver to manage the Network (default \"overlay\")"},
        {"subnet", 0, "strings", "Subnet in CIDR format that represents a network segment", true},
        {"gateway", 0, "strings", "IPv4 Gateway for the master subnet", true},
        {"ip-range", 0, "strings", "Allocate container ip from a sub-range", true},
        {"attachable", 0, "", "Enable manual container attachment"},
        {"internal", 0, "", "Restrict external access to the network"},
        {"ingress", 0, "", "Create swarm routing-mesh network"},
        {"label", 0, "list", "Set metadata on a network", true},
        {"opt", 'o', "map", "Set driver specific options", true},
        {"scope", 0, "string", "Control the network's scope (swarm)"}},
       1,
       1,
       Create},
      {"network ls",
       "[OPTIONS]",
       "List networks",
       {{"quiet", 'q', "", "Only display network IDs"},
        {"no-trunc", 0, "", "Do not truncate the output"},
        {"filter", 'f', "filter", "Provide filter values (e.g. 'driver=overlay')", true},
        {format.name, 0, format.value, format.help}},
       0,
       0,
       Ls},
      {"network inspect",
       "[OPTIONS] NETWORK [NETWORK...]",
       "Display detailed information on one or more networks",
       {{format.name, 'f', format.value, format.help}},
       1,
       SIZE_MAX,
       Inspect},
      {"network rm", "NETWORK [NETWORK...]", "Remove one or more networks", {}, 1, SIZE_MAX, Rm},
      {"network prune",
       "[OPTIONS]",
       "Remove all unused networks",
       {{"force", 'f', "", "Do not prompt for confirmation"}},
       0,
       0,
       Prune},
  };
}

}  // namespace skep::cli
