// Overlay networks as the managers keep them: created, allocated, listed, refused, removed.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "tests/integration/lab.h"

using namespace skep::testing;

TEST_CASE("networks are allocated at create, refused when they overlap, kept while in use",
          "[integration]") {
  Lab lab("itnetwork", 20, 1, 1);
  // The swarm starts with the routing mesh's network.
  Output o = lab.Skep("m1", {"network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"});
  CHECK(o.out == "ingress overlay swarm\n");
  CHECK(lab.Skep("m1", {"network", "inspect", "--format", "{{json .IPAM.Config}} {{.Ingress}}",
                        "ingress"})
            .out == "[{\"Subnet\":\"10.0.0.0/24\",\"Gateway\":\"10.0.0.1\"}] true\n");

  o = lab.Skep(
      "m1", {"network", "create", "--driver", "overlay", "--subnet", "10.0.9.0/24", "servicenet"});
  INFO(o.text());
  REQUIRE(o.code == 0);
  CHECK(o.out.size() == 26);  // the ID and a newline
  const std::string servicenet = o.out.substr(0, o.out.size() - 1);
  REQUIRE(lab.Skep("m1", {"network", "create", "--label", "team=a", "apps_net"}).code == 0);
  // From the default pool, after the subnets in use; VNIs from 4096 up.
  CHECK(lab.Skep("m1", {"network", "inspect", "--format",
                        "{{range .IPAM.Config}}{{.Subnet}}{{end}} "
                        "{{index .Options \"com.docker.network.driver.overlay.vxlanid_list\"}}",
                        "apps_net", "servicenet"})
            .out == "10.0.1.0/24 4098\n10.0.9.0/24 4097\n");
  // The table: sorted by name, IDs cut to 12.
  o = lab.Skep("m1", {"network", "ls"});
  CHECK(o.out.rfind("NETWORK ID     NAME         DRIVER    SCOPE\n", 0) == 0);
  CHECK(lab.Skep("m1", {"network", "ls", "-q"}).out.size() == 3 * 13);
  CHECK(
      lab.Skep("m1", {"network", "ls", "--filter", "label=team=a", "--format", "{{.Name}}"}).out ==
      "apps_net\n");

  // Bad input: a clear error, and nothing changes.
  struct Bad {
    std::vector<std::string> args;
    std::string error;
  };
  for (const Bad& b :
       std::vector<Bad>{{{"--subnet", "10.0.9.128/25", "other"},
                         "subnet 10.0.9.128/25 overlaps with network servicenet (10.0.9.0/24)"},
                        {{"--subnet", "10.0.30.1/24", "other"}, "host bits are set"},
                        {{"--subnet", "banana", "other"}, "expected an IPv4 CIDR"},
                        {{"--gateway", "10.0.40.1", "other"}, "needs a subnet"},
                        {{"servicenet"}, "network with name servicenet already exists"},
                        {{"--ingress", "other"}, "an ingress network already exists: ingress"},
                        {{"--driver", "bridge", "other"}, "is not supported"}}) {
    std::vector<std::string> args{"network", "create"};
    args.insert(args.end(), b.args.begin(), b.args.end());
    o = lab.Skep("m1", args);
    INFO(o.text());
    CHECK(o.code == 1);
    CHECK(o.err.find(b.error) != std::string::npos);
  }
  CHECK(lab.Skep("m1", {"network", "ls", "-q"}).out.size() == 3 * 13);

  // Services attach by name; an unknown network or the ingress network is refused.
  o = lab.Skep(
      "m1", {"service", "create", "-d", "--name", "web", "--network", "servicenet", "skep/web:1"});
  INFO(o.text());
  REQUIRE(o.code == 0);
  CHECK(lab.Skep("m1", {"service", "inspect", "--format",
                        "{{range .Spec.TaskTemplate.Networks}}{{.Target}}{{end}}", "web"})
            .out == servicenet + "\n");
  // The allocator: a virtual IP for the service, an address for each task, on servicenet.
  REQUIRE(lab.Skep("m1", {"service", "create", "--name", "api", "--replicas", "2", "--network",
                          "servicenet", "skep/web:1"})
              .code == 0);
  // Every address on servicenet is handed out once: web's VIP and task, api's VIP and tasks.
  std::set<std::string> addrs;
  size_t count = 0;
  for (const char* svc : {"web", "api"}) {
    std::istringstream vips(lab.Skep("m1", {"service", "inspect", "--format",
                                            "{{range .Endpoint.VirtualIPs}}{{.Addr}} {{end}}", svc})
                                .out);
    std::istringstream tasks(
        lab.Skep("m1", {"service", "ps", "--format", "{{.Networks}}", svc}).out);
    for (std::istringstream* in : {&vips, &tasks}) {
      std::string a;
      while (*in >> a) {
        INFO(svc << " " << a);
        CHECK(a.rfind("10.0.9.", 0) == 0);
        CHECK(a.substr(a.size() - 3) == "/24");
        addrs.insert(a);
        ++count;
      }
    }
  }
  CHECK(count == 5);  // web's task may still be pulling: it has its address all the same
  CHECK(addrs.size() == count);
  REQUIRE(lab.Skep("m1", {"service", "rm", "api"}).code == 0);
  o = lab.Skep("m1",
               {"service", "create", "-d", "--name", "lost", "--network", "nope", "skep/web:1"});
  CHECK(o.code == 1);
  CHECK(o.err.find("network nope not found") != std::string::npos);
  o = lab.Skep("m1",
               {"service", "create", "-d", "--name", "lost", "--network", "ingress", "skep/web:1"});
  CHECK(o.code == 1);
  CHECK(o.err.find("cannot be explicitly attached to the ingress network") != std::string::npos);
  CHECK(lab.Skep("m1", {"service", "ls", "-q"}).out.size() == 13);

  // A port published through the routing mesh without a number gets one from 30000 up; one
  // another service publishes is refused, naming it; a number beyond 65535 is not a port.
  REQUIRE(lab.Skep("m1", {"service", "create", "-d", "--name", "mesh", "-p", "80", "skep/web:1"})
              .code == 0);
  CHECK(lab.Skep("m1",
                 {"service", "inspect", "--format",
                  "{{range .Spec.EndpointSpec.Ports}}{{.PublishedPort}} {{.PublishMode}}{{end}}",
                  "mesh"})
            .out == "30000 ingress\n");
  o = lab.Skep("m1",
               {"service", "create", "-d", "--name", "mesh2", "-p", "30000:80", "skep/web:1"});
  CHECK(o.code == 1);
  CHECK(o.err.find("port 30000/tcp is already published by service mesh") != std::string::npos);
  o = lab.Skep("m1",
               {"service", "create", "-d", "--name", "mesh2", "-p", "70000:80", "skep/web:1"});
  CHECK(o.code == 2);
  CHECK(o.err.find("70000 is not a port") != std::string::npos);
  REQUIRE(lab.Skep("m1", {"service", "rm", "mesh"}).code == 0);

  // In use: not removed, not pruned.
  o = lab.Skep("m1", {"network", "rm", "servicenet"});
  CHECK(o.code == 1);
  CHECK(o.err.find("network servicenet is in use by service web") != std::string::npos);
  o = lab.Skep("m1", {"network", "prune", "-f"});
  CHECK(o.out == "Deleted Networks:\napps_net\n");
  REQUIRE(lab.Skep("m1", {"service", "rm", "web"}).code == 0);
  o = lab.Skep("m1", {"network", "rm", "servicenet"});
  CHECK(o.out == "servicenet\n");
  CHECK(lab.Skep("m1", {"network", "ls", "--format", "{{.Name}}"}).out == "ingress\n");
  o = lab.Skep("m1", {"network", "rm", "servicenet"});
  CHECK(o.code == 1);
  CHECK(o.err.find("network servicenet not found") != std::string::npos);
}

TEST_CASE("tasks on an overlay network reach each other across nodes by address", "[integration]") {
  Lab lab("itoverlay", 21, 1, 2);
  REQUIRE(lab.Skep("m1", {"network", "create", "--subnet", "10.0.9.0/24", "servicenet"}).code == 0);
  REQUIRE(
      lab.Skep("m1", {"service", "create", "--name", "client", "--constraint", "node.hostname==w1",
                      "--network", "servicenet", "skep/busybox:1", "sleep", "600"})
          .code == 0);
  REQUIRE(lab.Skep("m1", {"service", "create", "--name", "web", "--constraint", "node.hostname==w2",
                          "--network", "servicenet", "skep/web:1"})
              .code == 0);
  auto only = [&](const std::string& service, const std::string& field) {
    std::string v = lab.Skep("m1", {"service", "ps", "--no-trunc", "--filter",
                                    "desired-state=running", "--format", field, service})
                        .out;
    return v.substr(0, v.find('\n'));
  };
  const std::string client = only("client", "{{.ID}}");
  const std::string web_addr = only("web", "{{.Networks}}");
  REQUIRE(web_addr.rfind("10.0.9.", 0) == 0);
  const std::string web_ip = web_addr.substr(0, web_addr.find('/'));
  // From inside the client task's namespace on w1, to the web task on w2, over VXLAN.
  const std::string netns = lab.Root() + "/w1/data/netns/" + client;
  Output page;
  CHECK(Eventually([&] {
    page = Run({"nsenter", "--net=" + netns, "curl", "-s", "-m", "3", "http://" + web_ip + "/"});
    return page.out.rfind("web v1 on ", 0) == 0;
  }));
  INFO(page.text());
  // The client's interface on the overlay leaves room for the VXLAN header.
  CHECK(
      Run({"nsenter", "--net=" + netns, "ip", "-o", "link", "show", "eth1"}).out.find("mtu 1450") !=
      std::string::npos);

  // Scaled away, the web task leaves no entry on w1's side: no FDB entry, no neighbour.
  REQUIRE(lab.Skep("m1", {"service", "scale", "web=0"}).code == 0);
  std::string sandbox;
  for (const auto& line : [&] {
         std::vector<std::string> v;
         std::istringstream in(Run({"ls", lab.Root() + "/w1/data/netns"}).out);
         std::string l;
         while (in >> l)
           v.push_back(l);
         return v;
       }()) {
    if (line.rfind("ov-", 0) == 0 && line.find('.') == std::string::npos) sandbox = line;
  }
  REQUIRE_FALSE(sandbox.empty());
  const std::string mac = "02:42:0a:00:09:" + [&] {
    char b[3];
    std::snprintf(b, sizeof(b), "%02x", std::stoi(web_ip.substr(web_ip.rfind('.') + 1)));
    return std::string(b);
  }();
  CHECK(Eventually([&] {
    const std::string path = lab.Root() + "/w1/data/netns/" + sandbox;
    // Neither the VXLAN device nor the bridge above it keeps an entry for the MAC.
    const std::string fdb = Run({"nsenter", "--net=" + path, "bridge", "fdb", "show"}).out;
    const std::string neigh = Run({"nsenter", "--net=" + path, "ip", "neigh", "show"}).out;
    return fdb.find(mac + " ") == std::string::npos &&
           neigh.find(web_ip + " ") == std::string::npos;
  }));
  CHECK(Run({"nsenter", "--net=" + netns, "curl", "-s", "-m", "2", "http://" + web_ip + "/"}).out ==
        "");
}

namespace {

// The task IDs (12 characters) that answered `n` requests to `url` from `netns` (the host's
// namespace when empty); web:1 answers "web v1 on <task id>".
std::map<std::string, int> Answers(const std::string& netns, const std::string& url, int n) {
  std::map<std::string, int> seen;
  for (int i = 0; i < n; ++i) {
    std::vector<std::string> argv = {"curl", "-s", "-m", "3", url};
    if (!netns.empty()) argv.insert(argv.begin(), {"nsenter", "--net=" + netns});
    const std::string out = Run(argv).out;
    const std::string prefix = "web v1 on ";
    seen[out.rfind(prefix, 0) == 0 ? out.substr(prefix.size(), 12) : "(" + out + ")"]++;
  }
  return seen;
}

std::set<std::string> Keys(const std::map<std::string, int>& m) {
  std::set<std::string> out;
  for (const auto& [k, v] : m)
    out.insert(k);
  return out;
}

std::set<std::string> RunningTasks(const Lab& lab, const std::string& service) {
  std::istringstream in(lab.Skep("m1", {"service", "ps", "-q", "--filter",
                                        "desired-state=running", service})
                            .out);
  std::set<std::string> out;
  for (std::string id; in >> id;)
    out.insert(id);
  return out;
}

}  // namespace

TEST_CASE("a port published through the routing mesh answers on every node, spread over the tasks",
          "[integration]") {
  Lab lab("itmesh", 22, 1, 2);
  // Both tasks on w1: m1 and w2 run none.
  Output o = lab.Skep("m1", {"service", "create", "--name", "web", "--replicas", "2", "--constraint",
                             "node.hostname==w1", "--publish", "8080:80", "skep/web:1"});
  INFO(o.text());
  REQUIRE(o.code == 0);
  const std::set<std::string> tasks = RunningTasks(lab, "web");
  REQUIRE(tasks.size() == 2);
  for (const char* node : {"m1", "w1", "w2"}) {
    const std::string url = "http://" + lab.Ip(node) + ":8080/";
    std::map<std::string, int> seen;
    CHECK(Eventually([&] {
      seen = Answers("", url, 1);
      return tasks.count(seen.begin()->first) == 1;
    }));
    seen = Answers("", url, 100);
    INFO(node << " answered " << seen.size() << " ways, first " << seen.begin()->first);
    CHECK(Keys(seen) == tasks);  // every answer from a task, every task at least once
  }

  // Scaled down, the mesh answers only with the task that is left.
  REQUIRE(lab.Skep("m1", {"service", "scale", "web=1"}).code == 0);
  const std::set<std::string> left = RunningTasks(lab, "web");
  REQUIRE(left.size() == 1);
  CHECK(Eventually([&] { return Keys(Answers("", "http://" + lab.Ip("w2") + ":8080/", 10)) == left; }));

  // A port another service publishes already is refused, naming that service.
  o = lab.Skep("m1", {"service", "create", "--name", "other", "--publish", "8080:80", "skep/web:1"});
  CHECK(o.code == 1);
  CHECK(o.err.find("web") != std::string::npos);
  // Removed, the port is closed everywhere.
  REQUIRE(lab.Skep("m1", {"service", "rm", "web"}).code == 0);
  CHECK(Eventually([&] {
    return Run({"curl", "-s", "-m", "2", "http://" + lab.Ip("m1") + ":8080/"}).code != 0;
  }));
}

TEST_CASE("a service's virtual IP spreads connections over its tasks", "[integration]") {
  // On a swarm whose VXLAN port is not the default one.
  Lab lab("itvip", 23, 1, 2, {"--data-path-port", "4790"});
  REQUIRE(lab.Skep("m1", {"network", "create", "--subnet", "10.0.9.0/24", "servicenet"}).code == 0);
  REQUIRE(lab.Skep("m1", {"service", "create", "--name", "api", "--replicas", "3", "--network",
                          "servicenet", "skep/web:1"})
              .code == 0);
  REQUIRE(lab.Skep("m1", {"service", "create", "--name", "client", "--constraint",
                          "node.hostname==w1", "--network", "servicenet", "skep/busybox:1", "sleep",
                          "600"})
              .code == 0);
  std::string vip = lab.Skep("m1", {"service", "inspect", "--format",
                                    "{{range .Endpoint.VirtualIPs}}{{.Addr}}{{end}}", "api"})
                        .out;
  vip = vip.substr(0, vip.find('/'));
  REQUIRE(vip.rfind("10.0.9.", 0) == 0);
  std::string id = lab.Skep("m1", {"service", "ps", "-q", "--no-trunc", "client"}).out;
  id = id.substr(0, id.find('\n'));
  const std::string netns = lab.Root() + "/w1/data/netns/" + id;
  const std::set<std::string> tasks = RunningTasks(lab, "api");
  REQUIRE(tasks.size() == 3);
  std::map<std::string, int> seen;
  CHECK(Eventually([&] {
    seen = Answers(netns, "http://" + vip + "/", 6);
    return Keys(seen) == tasks;
  }));
  INFO(seen.size());
  CHECK(Keys(seen) == tasks);
  // The overlay's VXLAN devices use the swarm's data path port.
  const std::string sandboxes = Run({"ls", lab.Root() + "/w1/data/netns"}).out;
  const auto at = sandboxes.find("ov-");
  REQUIRE(at != std::string::npos);
  const std::string sandbox = sandboxes.substr(at, sandboxes.find_first_of(".\n", at) - at);
  CHECK(Run({"nsenter", "--net=" + lab.Root() + "/w1/data/netns/" + sandbox, "ip", "-d", "link",
             "show", "type", "vxlan"})
            .out.find("dstport 4790") != std::string::npos);
  // A port out of range is refused before anything is asked of skepd.
  Output bad = lab.Skep("m1", {"swarm", "init", "--data-path-port", "80"});
  CHECK(bad.code != 0);
  CHECK(bad.err.find("the data path port must be within 1024 - 49151") != std::string::npos);
}

TEST_CASE("tasks find services by name on the networks they share, and only there",
          "[integration]") {
  Lab lab("itdns", 24, 1, 2);
  for (const char* n : {"servicenet", "apps_net", "log_net", "other_net"})
    REQUIRE(lab.Skep("m1", {"network", "create", n}).code == 0);
  // web on three networks, on w2; client shares one of them, on w1; stranger shares none.
  Output o = lab.Skep("m1", {"service", "create", "--name", "web", "--constraint",
                             "node.hostname==w2", "--network", "servicenet", "--network",
                             "apps_net", "--network", "log_net", "skep/web:1"});
  INFO(o.text());
  REQUIRE(o.code == 0);
  for (const char* svc : {"client", "stranger"}) {
    REQUIRE(lab.Skep("m1", {"service", "create", "--name", svc, "--constraint", "node.hostname==w1",
                            "--network", svc == std::string("client") ? "servicenet" : "other_net",
                            "skep/busybox:1", "sleep", "600"})
                .code == 0);
  }
  // An address on each of web's networks, in their order.
  std::string addrs = lab.Skep("m1", {"service", "ps", "--format", "{{.Networks}}", "web"}).out;
  INFO(addrs);
  CHECK(std::count(addrs.begin(), addrs.end(), '/') == 3);
  std::string vip = lab.Skep("m1", {"service", "inspect", "--format",
                                    "{{(index .Endpoint.VirtualIPs 0).Addr}}", "web"})
                        .out;
  vip = vip.substr(0, vip.find('/'));
  const std::string web_ip = addrs.substr(0, addrs.find('/'));
  const std::string client = lab.RunningTask("client");
  const std::string stranger = lab.RunningTask("stranger");

  // By service name: its VIP on the shared network; tasks.<name>: the task's address.
  o = lab.Exec("w1", client, {"nslookup", "web"});
  INFO(o.text());
  CHECK(o.code == 0);
  CHECK(o.out.find("Address: " + vip + "\n") != std::string::npos);
  o = lab.Exec("w1", client, {"nslookup", "tasks.web"});
  CHECK(o.out.find("Address: " + web_ip + "\n") != std::string::npos);
  for (const std::string& host : {std::string("web"), std::string("tasks.web"), web_ip}) {
    o = lab.Exec("w1", client, {"timeout", "5", "wget", "-q", "-O", "-", "http://" + host + "/"});
    INFO(host << ": " << o.text());
    CHECK(o.out.rfind("web v1 on ", 0) == 0);
  }
  // A raw TCP connection to the service's port through its VIP.
  o = lab.Exec("w1", client, {"sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 web 80"});
  CHECK(o.out.find("web v1 on ") != std::string::npos);

  // The stranger shares no network with web: no name, no way through.
  o = lab.Exec("w1", stranger, {"nslookup", "tasks.web"});
  CHECK(o.out.find(web_ip) == std::string::npos);
  o = lab.Exec("w1", stranger, {"timeout", "3", "wget", "-q", "-O", "-", "http://" + web_ip + "/"});
  CHECK(o.code != 0);
  CHECK(o.out.empty());

  // Scaled to two, tasks.web names both; scaled to none, the name is gone from the client.
  REQUIRE(lab.Skep("m1", {"service", "scale", "web=2"}).code == 0);
  CHECK(Eventually([&] {
    o = lab.Exec("w1", client, {"nslookup", "tasks.web"});
    return std::count(o.out.begin(), o.out.end(), '\n') > 0 &&
           o.out.find("Address: 10.", o.out.find("Address: 10.") + 1) != std::string::npos;
  }));
  REQUIRE(lab.Skep("m1", {"service", "scale", "web=0"}).code == 0);
  CHECK(Eventually([&] {
    return lab.Exec("w1", client, {"nslookup", "tasks.web"}).out.find(web_ip) == std::string::npos;
  }));
}

namespace {

// The remote endpoints the kernel holds in NODE's sandbox of a network: the addresses of the
// VXLAN device's neighbour entries, and those behind the MACs of its forwarding entries (the
// device's own and the bridge's).
std::pair<std::set<std::string>, std::set<std::string>> KernelPeers(const Lab& lab,
                                                                     const std::string& node,
                                                                     const std::string& network) {
  const std::string ns = "--net=" + lab.Root() + "/" + node + "/data/netns/ov-" + network;
  std::set<std::string> neigh, fdb;
  std::istringstream n(Run({"nsenter", ns, "ip", "neigh", "show", "nud", "permanent"}).out);
  for (std::string line; std::getline(n, line);)
    neigh.insert(line.substr(0, line.find(' ')));
  std::istringstream f(Run({"nsenter", ns, "bridge", "fdb", "show"}).out);
  for (std::string line; std::getline(f, line);) {
    unsigned a, b, c, d;
    if (line.find(" dev vx") == std::string::npos) continue;  // local tasks' ports
    if (std::sscanf(line.c_str(), "02:42:%x:%x:%x:%x", &a, &b, &c, &d) == 4) {
      fdb.insert(std::to_string(a) + "." + std::to_string(b) + "." + std::to_string(c) + "." +
                 std::to_string(d));
    }
  }
  return {neigh, fdb};
}

// The addresses on the service's first network of its running tasks on nodes other than
// `except`, as the managers see them.
std::set<std::string> LiveAddresses(const Lab& lab, const std::string& service,
                                    const std::string& except) {
  std::istringstream in(lab.Skep("m1", {"service", "ps", "--filter", "desired-state=running",
                                        "--format", "{{.Node}} {{.CurrentState}} {{.Networks}}",
                                        service})
                            .out);
  std::set<std::string> out;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::string node, state, rest;
    ls >> node >> state;
    std::getline(ls, rest);
    const auto at = rest.find("10.");
    if (node == except || state != "Running" || at == std::string::npos) continue;
    out.insert(rest.substr(at, rest.find('/', at) - at));
  }
  return out;
}

// The backends of `vip` in the VIP rules of a task's namespace (nftables table skep_lb).
std::set<std::string> VipBackends(const Lab& lab, const std::string& node, const std::string& task,
                                  const std::string& vip) {
  const std::string rules = Run({"nsenter", "--net=" + lab.Root() + "/" + node + "/data/netns/" + task,
                                 "nft", "list", "table", "ip", "skep_lb"})
                                .out;
  std::set<std::string> out;
  std::istringstream in(rules);
  for (std::string line; std::getline(in, line);) {
    if (line.find("ip daddr " + vip + " ") == std::string::npos) continue;
    std::istringstream words(line.substr(line.find('{') + 1));
    for (std::string w; words >> w;) {
      if (w.rfind("10.", 0) == 0) out.insert(w.substr(0, w.find_first_of(",}")));
    }
  }
  return out;
}

std::set<std::string> Resolved(const Lab& lab, const std::string& node, const std::string& task,
                               const std::string& name) {
  std::istringstream in(lab.Exec(node, task, {"nslookup", name}).out);
  std::set<std::string> out;
  bool answers = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Name:", 0) == 0) answers = true;
    if (answers && line.rfind("Address: ", 0) == 0) out.insert(line.substr(9));
  }
  return out;
}

}  // namespace

TEST_CASE("endpoints that go leave no entry, name or VIP backend behind: scaled down, node killed, skepd restarted",
          "[integration]") {
  Lab lab("itgone", 25, 1, 3);
  Output o = lab.Skep("m1", {"network", "create", "servicenet"});
  REQUIRE(o.code == 0);
  const std::string net = o.out.substr(0, o.out.size() - 1);
  REQUIRE(lab.Skep("m1", {"service", "create", "--name", "client", "--constraint",
                          "node.hostname==w1", "--network", "servicenet", "skep/busybox:1", "sleep",
                          "600"})
              .code == 0);
  REQUIRE(lab.Skep("m1", {"service", "create", "--name", "web", "--replicas", "3", "--constraint",
                          "node.role==worker", "--constraint", "node.hostname!=w1", "--network",
                          "servicenet", "skep/web:1"})
              .code == 0);
  const std::string client = lab.RunningTask("client");
  std::string vip = lab.Skep("m1", {"service", "inspect", "--format",
                                    "{{(index .Endpoint.VirtualIPs 0).Addr}}", "web"})
                        .out;
  vip = vip.substr(0, vip.find('/'));
  // w1's kernel, the client's DNS and its VIP rules hold exactly the live remote tasks.
  auto converged = [&] {
    const std::set<std::string> live = LiveAddresses(lab, "web", "w1");
    auto [neigh, fdb] = KernelPeers(lab, "w1", net);
    return !live.empty() && neigh == live && fdb == live &&
           Resolved(lab, "w1", client, "tasks.web") == live &&
           VipBackends(lab, "w1", client, vip) == live;
  };
  auto explain = [&] {
    auto [neigh, fdb] = KernelPeers(lab, "w1", net);
    std::string s = "live:";
    for (const auto& a : LiveAddresses(lab, "web", "w1")) s += " " + a;
    s += "\nneigh:";
    for (const auto& a : neigh) s += " " + a;
    s += "\nfdb:";
    for (const auto& a : fdb) s += " " + a;
    s += "\ndns:";
    for (const auto& a : Resolved(lab, "w1", client, "tasks.web")) s += " " + a;
    s += "\nvip " + vip + ":";
    for (const auto& a : VipBackends(lab, "w1", client, vip)) s += " " + a;
    return s + "\n" + lab.Logs(10);
  };
  CHECK(Eventually(converged));
  INFO(explain());
  CHECK(LiveAddresses(lab, "web", "w1").size() == 3);

  // Scaled down.
  REQUIRE(lab.Skep("m1", {"service", "scale", "web=1"}).code == 0);
  CHECK(Eventually(converged));
  CHECK(LiveAddresses(lab, "web", "w1").size() == 1);
  REQUIRE(lab.Skep("m1", {"service", "scale", "web=2"}).code == 0);

  // A worker killed (its skepd: the containers stay, unreachable to the managers): the others
  // find it failed, its tasks' entries go, their replacements' come.
  std::string victim;
  for (const char* n : {"w2", "w3"}) {
    if (lab.Skep("m1", {"node", "ps", "--filter", "desired-state=running", "-q", n}).out.find(
            lab.RunningTask("web").substr(0, 12)) != std::string::npos) {
      victim = n;
    }
  }
  REQUIRE_FALSE(victim.empty());
  lab.Kill(victim);
  CHECK(Eventually([&] {
    return converged() && LiveAddresses(lab, "web", victim).size() == LiveAddresses(lab, "web", "w1").size();
  }, std::chrono::seconds(40)));
  INFO(explain());

  // Back, it stops what is no longer its own, and nothing of it comes back.
  lab.Start(victim);
  CHECK(Eventually(converged, std::chrono::seconds(40)));

  // kill -9 and a restart of a skepd whose tasks keep running: their entries stay right.
  const std::string other = victim == "w2" ? "w3" : "w2";
  lab.Kill(other);
  lab.Start(other);
  CHECK(Eventually(converged, std::chrono::seconds(40)));
  INFO(explain());
  CHECK(Resolved(lab, "w1", client, "tasks.web").size() == 2);
}

TEST_CASE("a node cut off is failed by the others and converges again after the heal",
          "[integration]") {
  Lab lab("itcut", 26, 1, 2);
  Output o = lab.Skep("m1", {"network", "create", "servicenet"});
  REQUIRE(o.code == 0);
  const std::string net = o.out.substr(0, o.out.size() - 1);
  REQUIRE(lab.Skep("m1", {"service", "create", "--name", "client", "--constraint",
                          "node.hostname==w1", "--network", "servicenet", "skep/busybox:1", "sleep",
                          "600"})
              .code == 0);
  REQUIRE(lab.Skep("m1", {"service", "create", "--name", "web", "--constraint", "node.hostname==w2",
                          "--network", "servicenet", "skep/web:1"})
              .code == 0);
  const std::string client = lab.RunningTask("client");
  const std::set<std::string> before = LiveAddresses(lab, "web", "w1");
  REQUIRE(before.size() == 1);
  CHECK(Eventually([&] { return KernelPeers(lab, "w1", net).first == before; }));

  // Cut: w1 finds w2 failed; its endpoint goes from w1's kernel and DNS.
  lab.Cut("w2");
  CHECK(Eventually(
      [&] {
        return KernelPeers(lab, "w1", net).first.empty() &&
               Resolved(lab, "w1", client, "tasks.web").empty();
      },
      std::chrono::seconds(40)));
  // Healed: w2 is back in the gossip cluster and the tables agree again.
  lab.Heal("w2");
  CHECK(Eventually(
      [&] {
        const std::set<std::string> live = LiveAddresses(lab, "web", "w1");
        return !live.empty() && KernelPeers(lab, "w1", net).first == live &&
               Resolved(lab, "w1", client, "tasks.web") == live;
      },
      std::chrono::seconds(60)));
  INFO(lab.Logs(10));
  // And a task on w2 reaches the client's node again over the overlay: the web page by name.
  o = lab.Exec("w1", client, {"timeout", "5", "wget", "-q", "-O", "-", "http://web/"});
  CHECK(o.out.rfind("web v1 on ", 0) == 0);
}
