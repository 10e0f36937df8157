// Services as a user drives them on a lab cluster: the leader's orchestrator keeps the tasks
// the spec asks for and its scheduler places them on the nodes the constraints allow.
#include <catch2/catch.hpp>
#include <map>
#include <sstream>
#include <thread>

#include "tests/integration/lab.h"

using namespace skep::testing;
using namespace std::chrono_literals;

namespace {

struct TaskRow {
  std::string name, node, desired, state, error;
};

// `service ps` rows through --format, one per task.
std::vector<TaskRow> Ps(const Lab& lab, const std::string& service,
                        const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args{
      "service", "ps", "--format",
      "{{.Name}}|{{.Node}}|{{.DesiredState}}|{{.CurrentState}}|{{.Error}}"};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(service);
  const Output o = lab.Skep("m1", args);
  std::vector<TaskRow> rows;
  std::istringstream in(o.out);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    std::string part;
    while (std::getline(ls, part, '|'))
      f.push_back(part);
    f.resize(5);
    rows.push_back({f[0], f[1], f[2], f[3].substr(0, f[3].find(' ')), f[4]});
  }
  return rows;
}

// Placed on a node: assigned there, or further along (the worker runs it).
bool Placed(const std::string& state) {
  return state == "Assigned" || state == "Accepted" || state == "Preparing" ||
         state == "Starting" || state == "Running";
}

std::vector<TaskRow> Live(const Lab& lab, const std::string& service) {
  std::vector<TaskRow> out;
  for (auto& r : Ps(lab, service, {"--filter", "desired-state=running"}))
    out.push_back(r);
  return out;
}

}  // namespace

TEST_CASE("services get their tasks placed where the constraints allow", "[integration]") {
  Lab lab("itsvc", 10, 1, 2);
  Output o = lab.Skep("m1", {"service", "create", "-d", "--name", "web", "--replicas", "3",
                             "--constraint", "node.role == worker", "skep/web:1"});
  INFO(o.text());
  REQUIRE(o.code == 0);
  CHECK(Eventually([&] {
    auto rows = Live(lab, "web");
    if (rows.size() != 3) return false;
    for (const auto& r : rows) {
      if (!Placed(r.state) || (r.node != "w1" && r.node != "w2")) return false;
    }
    return true;
  }));
  std::map<std::string, int> per_node;
  for (const auto& r : Live(lab, "web"))
    ++per_node[r.node];
  CHECK(per_node.size() == 2);  // spread over both workers

  // An unsatisfiable constraint leaves tasks pending with the reason; a label places them.
  o = lab.Skep("m1", {"service", "create", "-d", "--name", "logger", "--replicas", "2",
                      "--constraint", "node.labels.logger==true", "skep/web:1"});
  REQUIRE(o.code == 0);
  CHECK(Eventually([&] {
    auto rows = Ps(lab, "logger", {"--no-trunc"});
    return rows.size() == 2 && rows[0].state == "Pending" &&
           rows[0].error.find(
               "no suitable node (scheduling constraints not satisfied on 3 "
               "nodes)") != std::string::npos;
  }));
  // explain: every node's verdict on a new task, with the filter that said no.
  o = lab.Skep("m1", {"service", "explain", "logger"});
  INFO(o.text());
  CHECK(o.code == 0);
  CHECK(o.out.rfind("NODE   ID             FITS   SERVICE TASKS   TASKS   WHY\n", 0) == 0);
  CHECK(o.out.find("w1     ") != std::string::npos);
  CHECK(o.out.find("constraints: scheduling constraint node.labels.logger==true not satisfied") !=
        std::string::npos);
  CHECK(o.out.find("\n0 of 3 nodes can take a new task of logger.\n") != std::string::npos);
  REQUIRE(lab.Skep("m1", {"node", "update", "--label-add", "logger=true", "w2"}).code == 0);
  CHECK(Eventually([&] {
    auto rows = Live(lab, "logger");
    return rows.size() == 2 && rows[0].node == "w2" && rows[1].node == "w2" &&
           Placed(rows[0].state);
  }));
  o = lab.Skep("m1", {"service", "explain", "logger"});
  CHECK(o.out.find("1 of 3 nodes can take a new task of logger; the next one would go to w2.") !=
        std::string::npos);
  CHECK(lab.Skep("m1", {"service", "explain", "nosuch"}).err.find("service nosuch not found") !=
        std::string::npos);
  // node inspect shows what the node's tasks reserve and what is left.
  o = lab.Skep("m1", {"node", "inspect", "--pretty", "w2"});
  CHECK(o.out.find("Reserved:\n Tasks:") != std::string::npos);
  CHECK(o.out.find("Available:\n CPUs:") != std::string::npos);
  o = lab.Skep("m1", {"node", "inspect", "--format", "{{.Reserved.Tasks}}", "w2"});
  CHECK(std::stoi(o.out) >= 2);  // logger's two tasks, and web's

  // Scale 5 -> 0 -> 3: the highest slots go first; history stays.
  REQUIRE(lab.Skep("m1", {"service", "scale", "-d", "web=5"}).code == 0);
  CHECK(Eventually([&] { return Live(lab, "web").size() == 5; }));
  REQUIRE(lab.Skep("m1", {"service", "scale", "-d", "web=0"}).code == 0);
  CHECK(Eventually([&] { return Live(lab, "web").empty(); }));
  CHECK(Ps(lab, "web").size() == 5);
  REQUIRE(lab.Skep("m1", {"service", "scale", "-d", "web=3"}).code == 0);
  CHECK(Eventually([&] {
    auto rows = Live(lab, "web");
    return rows.size() == 3 && rows[0].name == "web.1" && rows[2].name == "web.3";
  }));
  o = lab.Skep("m1", {"service", "ls", "--format", "{{.Name}} {{.Mode}} {{.Replicas}} {{.Image}}"});
  CHECK(o.out.find("web replicated ") != std::string::npos);
  CHECK(o.out.find("/3 skep/web:1\n") != std::string::npos);

  // With a history limit of 1, only the current task of each slot stays.
  CHECK(lab.Skep("m1", {"swarm", "update", "--task-history-limit", "x"}).code == 2);
  REQUIRE(lab.Skep("m1", {"swarm", "update", "--task-history-limit", "1"}).code == 0);
  CHECK(Eventually([&] {
    int in_slots = 0;
    for (const auto& r : Ps(lab, "web")) {
      for (const char* n : {"web.1", "web.2", "web.3"})
        in_slots += r.name.size() >= 5 && r.name.substr(r.name.size() - 5) == n;
    }
    return in_slots == 3;
  }));

  // A service larger than one proposal takes (2,000 changes) is written in parts: every task is
  // created and told why it waits, the first thousands not hiding the rest, and a scale down
  // settles too.
  o = lab.Skep("m1", {"service", "create", "-d", "--name", "bulk", "--replicas", "4500",
                      "--constraint", "node.labels.bulk==true", "skep/web:1"});
  REQUIRE(o.code == 0);
  CHECK(Eventually(
      [&] {
        auto rows = Ps(lab, "bulk", {"--no-trunc"});
        if (rows.size() != 4500) return false;
        for (const auto& r : rows) {
          if (r.state != "Pending" ||
              r.error.find("scheduling constraints not satisfied") == std::string::npos)
            return false;
        }
        return true;
      },
      60s));
  REQUIRE(lab.Skep("m1", {"service", "scale", "-d", "bulk=10"}).code == 0);
  CHECK(Eventually([&] { return Live(lab, "bulk").size() == 10; }, 60s));
  REQUIRE(lab.Skep("m1", {"service", "rm", "bulk"}).code == 0);
}

TEST_CASE("global services follow drains and removals, and tasks leave drained nodes",
          "[integration]") {
  Lab lab("itglobal", 11, 1, 2);
  REQUIRE(lab.Skep("m1", {"service", "create", "-d", "--name", "agent", "--mode", "global",
                          "--constraint", "node.role==worker", "skep/web:1"})
              .code == 0);
  CHECK(Eventually([&] { return Live(lab, "agent").size() == 2; }));
  REQUIRE(lab.Skep("m1", {"service", "create", "-d", "--name", "web", "--replicas", "2",
                          "--constraint", "node.role==worker", "skep/web:1"})
              .code == 0);
  CHECK(Eventually([&] { return Live(lab, "web").size() == 2; }));

  // Drain w1: its global task goes, and the replicated tasks move to w2.
  REQUIRE(lab.Skep("m1", {"node", "update", "--availability", "drain", "w1"}).code == 0);
  CHECK(Eventually([&] {
    auto g = Live(lab, "agent");
    auto w = Live(lab, "web");
    bool all_on_w2 = w.size() == 2;
    for (const auto& r : w)
      all_on_w2 &= r.node == "w2" && Placed(r.state);
    return g.size() == 1 && g[0].node == "w2" && all_on_w2;
  }));
  // Back to active: the global service gets its task there again.
  REQUIRE(lab.Skep("m1", {"node", "update", "--availability", "active", "w1"}).code == 0);
  CHECK(Eventually([&] { return Live(lab, "agent").size() == 2; }));

  // `node rm --force` of a down node: nothing stays assigned to it.
  lab.Kill("w1");
  const std::string w1 = lab.Nodes("m1").at("w1").id;
  CHECK(Eventually([&] { return lab.Nodes("m1").at("w1").status == "Down"; }, 30s));
  REQUIRE(lab.Skep("m1", {"node", "rm", "--force", "w1"}).code == 0);
  CHECK(Eventually([&] {
    const Output o = lab.Skep("m1", {"node", "ps", w1});
    return o.code == 1 && o.err.find("not found") != std::string::npos &&
           Live(lab, "agent").size() == 1;
  }));
  for (const auto& r : Live(lab, "web"))
    CHECK(r.node == "w2");
}

TEST_CASE("bad service input gets a clear error and changes nothing", "[integration]") {
  Lab lab("itsvcbad", 12, 1, 1);
  REQUIRE(lab.Skep("m1", {"service", "create", "-d", "--name", "web", "skep/web:1"}).code == 0);
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const std::vector<Case> cases{
      {{"service", "create", "-d", "--constraint", "node.rol==manager", "skep/web:1"},
       "skep: invalid constraint \"node.rol==manager\": unknown key \"node.rol\"\n"},
      {{"service", "create", "-d", "--name", "web", "skep/web:1"},
       "skep: service name \"web\" is already in use\n"},
      {{"service", "create", "-d", "--mode", "global", "--replicas", "2", "skep/web:1"},
       "replicas can only be used with replicated mode"},
      {{"service", "create", "-d", "--mount", "type=bind,source=rel,target=/x", "skep/web:1"},
       "must be an absolute path on the node"},
      {{"service", "create", "-d", "--mount", "type=nfs,target=/x", "skep/web:1"},
       "unknown type \"nfs\""},
      {{"service", "ps", "nosuch"}, "skep: service nosuch not found\n"},
      {{"service", "scale", "nosuch=2"}, "skep: service nosuch not found\n"},
      {{"service", "create", "-d", "--publish", "80:80", "--name", "a", "skep/web:1"}, ""},
      {{"service", "create", "-d", "--publish", "80:80", "--name", "b", "skep/web:1"},
       "port 80/tcp is already published by service a"},
      {{"service", "create", "-d", "--reserve-memory", "64M", "--limit-memory", "32M",
        "skep/web:1"},
       "the memory limit (33554432 bytes) is below the memory reservation (67108864 bytes)"},
      {{"service", "create", "-d", "--limit-memory", "1M", "skep/web:1"},
       "is below the minimum of 6MB"},
      {{"service", "create", "-d", "--reserve-cpu", "2", "--limit-cpu", "1", "skep/web:1"},
       "the CPU limit is below the CPU reservation"},
      {{"service", "create", "-d", "--stop-grace-period", "soon", "skep/web:1"},
       "invalid argument \"soon\" for \"--stop-grace-period\": not a duration"},
      {{"service", "update", "-d", "--limit-memory", "1M", "web"},
       "is below the minimum of 6MB"},
  };
  for (const auto& c : cases) {
    const Output o = lab.Skep("m1", c.args);
    INFO(o.text());
    if (c.error.empty()) {
      CHECK(o.code == 0);
      continue;
    }
    CHECK(o.code != 0);
    CHECK(o.err.find(c.error) != std::string::npos);
  }
  const Output ls = lab.Skep("m1", {"service", "ls", "-q"});
  CHECK(std::count(ls.out.begin(), ls.out.end(), '\n') == 2);  // web and a
}

TEST_CASE("a spread preference evens a service out over two zones", "[integration]") {
  Lab lab("itspread", 28, 1, 3);
  REQUIRE(lab.Skep("m1", {"node", "update", "--label-add", "zone=a", "w1"}).code == 0);
  REQUIRE(lab.Skep("m1", {"node", "update", "--label-add", "zone=a", "w2"}).code == 0);
  REQUIRE(lab.Skep("m1", {"node", "update", "--label-add", "zone=b", "w3"}).code == 0);
  Output o = lab.Skep("m1", {"service", "create", "-d", "--name", "web", "--replicas", "4",
                             "--constraint", "node.role==worker", "--placement-pref",
                             "spread=node.labels.zone", "skep/web:1"});
  INFO(o.text());
  REQUIRE(o.code == 0);
  std::map<std::string, int> per_node;
  CHECK(Eventually([&] {
    per_node.clear();
    auto rows = Live(lab, "web");
    for (const auto& r : rows)
      ++per_node[r.node];
    return rows.size() == 4;
  }));
  // Zone b is one node, zone a two: b's node takes half.
  CHECK(per_node["w3"] == 2);
  CHECK(per_node["w1"] + per_node["w2"] == 2);
  o = lab.Skep("m1", {"service", "inspect", "--pretty", "web"});
  CHECK(o.out.find(" Preferences:   [{Spread node.labels.zone}]") != std::string::npos);
  o = lab.Skep("m1", {"service", "inspect", "--format",
                      "{{json .Spec.TaskTemplate.Placement.Preferences}}", "web"});
  CHECK(o.out == "[{\"Spread\":{\"SpreadDescriptor\":\"node.labels.zone\"}}]\n");

  // Removed, the preference no longer applies (the next tasks follow the usual spread).
  REQUIRE(lab.Skep("m1", {"service", "update", "-d", "--placement-pref-rm",
                          "spread=node.labels.zone", "web"})
              .code == 0);
  CHECK(lab.Skep("m1", {"service", "inspect", "--pretty", "web"}).out.find("Preferences") ==
        std::string::npos);

  // Bad input: an unknown key or strategy, a clear error and nothing made.
  o = lab.Skep("m1", {"service", "create", "-d", "--name", "bad", "--placement-pref",
                      "spread=node.zone", "skep/web:1"});
  CHECK(o.code != 0);
  CHECK(o.err.find("invalid placement preference \"spread=node.zone\": the key must be "
                   "node.labels.<name> or engine.labels.<name>") != std::string::npos);
  o = lab.Skep("m1", {"service", "create", "-d", "--name", "bad", "--placement-pref",
                      "binpack=node.labels.zone", "skep/web:1"});
  CHECK(o.code != 0);
  CHECK(o.err.find("unknown placement preference strategy \"binpack\"") != std::string::npos);
  CHECK(lab.Skep("m1", {"service", "ls", "-q"}).out.size() == 13);
}

TEST_CASE("an image's platforms are read at create: a single-arch image for another "
          "architecture waits with the reason, a multi-arch index runs",
          "[integration]") {
  Lab lab("itplatform", 36, 1, 1);
  // skep/foreign:1 is an arm64 image only (deploy/images.sh); the lab's nodes are this machine's.
  Output o = lab.Skep("m1", {"service", "create", "-d", "--name", "foreign", "skep/foreign:1"});
  INFO(o.text());
  REQUIRE(o.code == 0);
  o = lab.Skep("m1", {"service", "inspect", "--format",
                      "{{range .Spec.TaskTemplate.Placement.Platforms}}{{.OS}}/{{.Architecture}} "
                      "{{end}}",
                      "foreign"});
  CHECK(o.out == "linux/arm64 \n");
  CHECK(Eventually([&] {
    auto rows = Ps(lab, "foreign", {"--no-trunc"});
    return rows.size() == 1 && rows[0].state == "Pending" &&
           rows[0].error.find("no suitable node (unsupported platform on 2 nodes)") !=
               std::string::npos;
  }));
  o = lab.Skep("m1", {"service", "explain", "foreign"});
  INFO(o.out);
  CHECK(o.out.find("unsupported platform (node is linux/") != std::string::npos);
  CHECK(o.out.find("image supports linux/arm64)") != std::string::npos);

  // skep/multi:1 is an index of this machine's platform and s390x: it runs, on either node.
  o = lab.Skep("m1", {"service", "create", "--name", "multi", "--replicas", "2", "skep/multi:1",
                      "sleep", "600"});
  INFO(o.text());
  REQUIRE(o.code == 0);
  o = lab.Skep("m1", {"service", "inspect", "--format",
                      "{{len .Spec.TaskTemplate.Placement.Platforms}}", "multi"});
  CHECK(o.out == "2\n");
  CHECK(Eventually([&] {
    auto rows = Live(lab, "multi");
    return rows.size() == 2 && rows[0].state == "Running" && rows[1].state == "Running";
  }));
}

TEST_CASE("a task waiting for memory says why in ps, inspect and explain, and is placed as soon "
          "as memory is freed",
          "[integration]") {
  Lab lab("itsvcwait", 31, 1, 1);
  Output o = lab.Skep("m1", {"node", "inspect", "--format",
                             "{{.Description.Resources.MemoryBytes}}", "w1"});
  INFO(o.text());
  REQUIRE(o.code == 0);
  const int64_t memory = std::stoll(o.out);
  REQUIRE(memory > (1ll << 30));
  // Each reserves 60% of w1's memory: the second cannot fit beside the first.
  const std::string reserve = std::to_string(memory * 6 / 10 / (1 << 20)) + "M";
  for (const char* name : {"big", "waits"}) {
    o = lab.Skep("m1", {"service", "create", "-d", "--name", name, "--constraint",
                        "node.hostname==w1", "--reserve-memory", reserve, "skep/web:1"});
    INFO(o.text());
    REQUIRE(o.code == 0);
    if (std::string(name) == "big") {
      REQUIRE(Eventually([&] {
        auto rows = Live(lab, "big");
        return rows.size() == 1 && rows[0].state == "Running";
      }));
    }
  }
  // ps --no-trunc: every filter that said no and on how many nodes.
  CHECK(Eventually([&] {
    auto rows = Ps(lab, "waits", {"--no-trunc"});
    return rows.size() == 1 && rows[0].state == "Pending" &&
           rows[0].error.find("insufficient memory on 1 node") != std::string::npos &&
           rows[0].error.find("scheduling constraints not satisfied on 1 node") !=
               std::string::npos;
  }));
  o = lab.Skep("m1", {"service", "inspect", "--pretty", "waits"});
  INFO(o.out);
  CHECK(o.out.find("Pending Tasks:  1\n waits.1: no suitable node (") != std::string::npos);
  CHECK(o.out.find("insufficient memory on 1 node") != std::string::npos);
  o = lab.Skep("m1", {"service", "inspect", "--format",
                      "{{.PendingTasks.Count}} {{(index .PendingTasks.Tasks 0).Slot}}", "waits"});
  CHECK(o.out == "1 1\n");
  o = lab.Skep("m1", {"service", "explain", "waits"});
  INFO(o.out);
  CHECK(o.out.find("insufficient memory") != std::string::npos);
  CHECK(o.out.find("0 of 2 nodes can take a new task of waits") != std::string::npos);

  // The memory is freed: the waiting task is placed at once, without anything else changing
  // (moby#33807).
  REQUIRE(lab.Skep("m1", {"service", "rm", "big"}).code == 0);
  CHECK(Eventually(
      [&] {
        auto rows = Live(lab, "waits");
        return rows.size() == 1 && rows[0].node == "w1" && rows[0].state == "Running";
      },
      30s));
  o = lab.Skep("m1", {"service", "inspect", "waits"});
  CHECK(o.code == 0);
  CHECK(o.out.find("PendingTasks") == std::string::npos);
}

TEST_CASE("rebalancing moves tasks to a node that comes back, only for services that ask",
          "[integration]") {
  Lab lab("itrebal", 32, 1, 2);
  REQUIRE(lab.Skep("m1", {"node", "update", "--availability", "drain", "w2"}).code == 0);
  for (const char* name : {"even", "stays"}) {
    std::vector<std::string> args{"service", "create", "-d", "--name", name, "--replicas", "4",
                                  "--constraint", "node.role==worker"};
    if (std::string(name) == "even") args.push_back("--rebalance");
    args.push_back("skep/web:1");
    Output o = lab.Skep("m1", args);
    INFO(o.text());
    REQUIRE(o.code == 0);
  }
  auto per_node = [&](const std::string& svc) {
    std::map<std::string, int> out;
    for (const auto& r : Live(lab, svc)) {
      if (r.state != "Running") return std::map<std::string, int>{};
      ++out[r.node];
    }
    return out;
  };
  const std::map<std::string, int> all_on_w1{{"w1", 4}};
  REQUIRE(Eventually([&] { return per_node("even") == all_on_w1 && per_node("stays") == all_on_w1; }));
  CHECK(lab.Skep("m1", {"service", "inspect", "--format", "{{index .Spec.Labels \"skep.rebalance\"}}",
                        "even"})
            .out == "true\n");

  // w2 is back: "even" moves two tasks there, one at a time; "stays" does not move.
  REQUIRE(lab.Skep("m1", {"node", "update", "--availability", "active", "w2"}).code == 0);
  const std::map<std::string, int> even{{"w1", 2}, {"w2", 2}};
  CHECK(Eventually([&] { return per_node("even") == even; }, 60s));
  CHECK(per_node("stays") == all_on_w1);
  // Every slot kept one live task throughout; the moved ones' old tasks are shut down.
  auto rows = Ps(lab, "even");
  int shutdown = 0;
  for (const auto& r : rows)
    shutdown += r.desired == "Shutdown";
  CHECK(shutdown == 2);
  // Nothing moves once even: no task is made or moved, at any moment of the observation.
  CHECK(Throughout([&] { return Ps(lab, "even").size() == rows.size(); }, 3s));

  // Turned off: a node that comes back gets nothing.
  REQUIRE(lab.Skep("m1", {"service", "update", "-d", "--no-rebalance", "even"}).code == 0);
  REQUIRE(lab.Skep("m1", {"node", "update", "--availability", "drain", "w2"}).code == 0);
  CHECK(Eventually([&] { return per_node("even") == all_on_w1; }, 60s));
  REQUIRE(lab.Skep("m1", {"node", "update", "--availability", "active", "w2"}).code == 0);
  CHECK(Throughout([&] { return per_node("even") == all_on_w1; }, 5s));
  Output o = lab.Skep("m1", {"service", "update", "--rebalance", "--no-rebalance", "even"});
  CHECK(o.code == 2);
  CHECK(o.err.find("--rebalance and --no-rebalance cannot be combined") != std::string::npos);
}
