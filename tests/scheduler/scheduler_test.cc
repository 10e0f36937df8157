#include <algorithm>
#include <random>

#include <catch2/catch.hpp>

#include "scheduler/scheduler.h"

using namespace skep::scheduler;

namespace {

constexpr int64_t kCpu = 1'000'000'000;
constexpr int64_t kMiB = 1024 * 1024;
constexpr int64_t kGiB = 1024 * kMiB;

NodeInfo Node(std::string id, int64_t cpus = 4 * kCpu, int64_t memory = 8 * kGiB) {
  NodeInfo n;
  n.hostname = "host-" + id;
  n.id = std::move(id);
  n.role = "worker";
  n.addr = "10.88.0.1";
  n.platform = {"linux", "x86_64"};
  n.ready = true;
  n.total = {cpus, memory};
  return n;
}

Constraint C(std::string_view text) {
  return std::get<Constraint>(ParseConstraint(text));
}

TaskRequest Task(std::string id, std::string service = "web") {
  TaskRequest t;
  t.task_id = std::move(id);
  t.service_id = std::move(service);
  return t;
}

std::vector<TaskRequest> Tasks(int count, const TaskRequest& like) {
  std::vector<TaskRequest> out;
  for (int i = 0; i < count; ++i) {
    out.push_back(like);
    out.back().task_id = like.task_id + "." + std::to_string(i + 1);
  }
  return out;
}

std::map<std::string, int> PerNode(const Decisions& d) {
  std::map<std::string, int> count;
  for (const Assignment& a : d.assignments)
    ++count[a.node_id];
  return count;
}

int CountOr0(const NodeInfo& n, const std::string& service) {
  auto it = n.tasks_by_service.find(service);
  return it == n.tasks_by_service.end() ? 0 : it->second;
}

std::string ReasonOf(const NodeInfo& node, const TaskRequest& task) {
  auto v = Check(node, task);
  return v ? v->filter + ": " + v->reason : "ok";
}

}  // namespace

TEST_CASE("a ready, active node with room takes the task", "[filters]") {
  CHECK_FALSE(Check(Node("a"), Task("t")).has_value());
}

TEST_CASE("ready filter: a node that is not ready takes nothing", "[filters]") {
  NodeInfo n = Node("a");
  n.ready = false;
  CHECK(ReasonOf(n, Task("t")) == "ready: node is not ready");
}

TEST_CASE("availability filter: paused and drained nodes take no new tasks", "[filters]") {
  NodeInfo n = Node("a");
  n.availability = "drain";
  CHECK(ReasonOf(n, Task("t")) == "availability: node is drained");
  n.availability = "pause";
  CHECK(ReasonOf(n, Task("t")) == "availability: node is paused");
}

TEST_CASE("constraints filter names the first constraint not satisfied", "[filters]") {
  NodeInfo n = Node("a");
  n.labels["zone"] = "c";
  TaskRequest t = Task("t");
  t.constraints = {C("node.role==worker"), C("node.labels.zone != c")};
  CHECK(ReasonOf(n, t) == "constraints: scheduling constraint node.labels.zone != c not satisfied");
  n.labels["zone"] = "a";
  CHECK(ReasonOf(n, t) == "ok");
  n.role = "manager";
  CHECK(ReasonOf(n, t) == "constraints: scheduling constraint node.role==worker not satisfied");
}

TEST_CASE("resources filter: reserved plus request must fit the total", "[filters]") {
  NodeInfo n = Node("a", 2 * kCpu, 1 * kGiB);
  n.reserved = {kCpu / 2, 768 * kMiB};
  TaskRequest t = Task("t");
  t.reservations = {kCpu, 256 * kMiB};  // exactly what is left in memory
  CHECK(ReasonOf(n, t) == "ok");
  t.reservations.memory_bytes = 512 * kMiB;
  CHECK(ReasonOf(n, t) == "resources: insufficient memory (needs 512MiB, 256MiB available)");
  t.reservations = {2 * kCpu, 0};
  CHECK(ReasonOf(n, t) == "resources: insufficient cpu (needs 2 CPUs, 1.5 available)");
  t.reservations = {2 * kCpu, 1536 * kMiB};
  CHECK(ReasonOf(n, t) ==
        "resources: insufficient cpu and memory (needs 2 CPUs and 1.5GiB, 1.5 CPUs and 256MiB "
        "available)");
}

TEST_CASE("resources filter: a node without a resource fails any request for it", "[filters]") {
  NodeInfo n = Node("a", 0, 0);
  TaskRequest t = Task("t");
  CHECK(ReasonOf(n, t) == "ok");  // asks for nothing
  t.reservations.nano_cpus = 1;
  CHECK(ReasonOf(n, t) == "resources: insufficient cpu (needs 0 CPUs, 0 available)");
  t.reservations = {0, 1};
  CHECK(ReasonOf(n, t) == "resources: insufficient memory (needs 1B, 0B available)");
}

TEST_CASE("platform filter: any of the image's platforms, with arch spellings unified",
          "[filters]") {
  NodeInfo pi = Node("pi");
  pi.platform = {"linux", "aarch64"};
  TaskRequest t = Task("t");
  CHECK(ReasonOf(pi, t) == "ok");  // no platforms: any
  t.platforms = {{"linux", "amd64"}};
  CHECK(ReasonOf(pi, t) ==
        "platform: unsupported platform (node is linux/aarch64, image supports linux/amd64)");
  t.platforms = {{"linux", "amd64"}, {"linux", "arm64"}};
  CHECK(ReasonOf(pi, t) == "ok");
  t.platforms = {{"", "arm64"}};
  CHECK(ReasonOf(pi, t) == "ok");
  t.platforms = {{"linux", ""}};
  CHECK(ReasonOf(pi, t) == "ok");
  t.platforms = {{"windows", ""}};
  CHECK(ReasonOf(pi, t) ==
        "platform: unsupported platform (node is linux/aarch64, image supports windows/any)");

  NodeInfo pc = Node("pc");  // linux/x86_64
  t.platforms = {{"linux", "amd64"}};
  CHECK(ReasonOf(pc, t) == "ok");
  NodeInfo old_pi = Node("old");
  old_pi.platform = {"linux", "armv7l"};
  t.platforms = {{"linux", "arm"}};
  CHECK(ReasonOf(old_pi, t) == "ok");
  CHECK(ReasonOf(pi, t).starts_with("platform:"));
}

TEST_CASE("host ports filter: a port in use with the same protocol blocks the node", "[filters]") {
  NodeInfo n = Node("a");
  n.used_host_ports = {{"tcp", 8080}};
  TaskRequest t = Task("t");
  t.host_ports = {{"udp", 8080}};
  CHECK(ReasonOf(n, t) == "ok");
  t.host_ports = {{"udp", 8080}, {"tcp", 8080}};
  CHECK(ReasonOf(n, t) == "host-ports: host-mode port 8080/tcp in use");
  t.host_ports = {{"tcp", 0}};  // the engine picks the port
  CHECK(ReasonOf(n, t) == "ok");
}

TEST_CASE("max replicas filter counts the service's tasks on the node", "[filters]") {
  NodeInfo n = Node("a");
  n.tasks_by_service = {{"web", 2}, {"db", 5}};
  TaskRequest t = Task("t");
  t.max_replicas_per_node = 3;
  CHECK(ReasonOf(n, t) == "ok");
  t.max_replicas_per_node = 2;
  CHECK(ReasonOf(n, t) ==
        "max-replicas: max replicas per node reached (2 tasks of the service on the node, "
        "limit 2)");
  t.max_replicas_per_node = 0;  // no limit
  CHECK(ReasonOf(n, t) == "ok");
}

TEST_CASE("a node is blamed for the first filter in pipeline order", "[filters]") {
  NodeInfo n = Node("a", 0, 0);
  n.role = "manager";
  TaskRequest t = Task("t");
  t.constraints = {C("node.role==worker")};
  t.reservations = {kCpu, 0};
  CHECK(Check(n, t)->filter == "constraints");
  n.availability = "drain";
  CHECK(Check(n, t)->filter == "availability");
  n.ready = false;
  CHECK(Check(n, t)->filter == "ready");
}

TEST_CASE("tasks of a service spread evenly over equal nodes", "[ranking]") {
  std::vector<NodeInfo> nodes = {Node("a"), Node("b"), Node("c")};
  Decisions d = Schedule(nodes, Tasks(9, Task("web")));
  CHECK(d.unplaced.empty());
  CHECK(PerNode(d) == std::map<std::string, int>{{"a", 3}, {"b", 3}, {"c", 3}});
}

TEST_CASE("a node that already runs tasks of the service gets fewer new ones", "[ranking]") {
  std::vector<NodeInfo> nodes = {Node("a"), Node("b"), Node("c")};
  nodes[0].tasks_by_service["web"] = 2;
  nodes[0].total_tasks = 2;
  Decisions d = Schedule(nodes, Tasks(7, Task("web")));
  CHECK(PerNode(d) == std::map<std::string, int>{{"a", 1}, {"b", 3}, {"c", 3}});
  CHECK(nodes[0].tasks_by_service["web"] == 3);
}

TEST_CASE("among nodes with as many tasks of the service, fewer tasks in total wins", "[ranking]") {
  std::vector<NodeInfo> nodes = {Node("a"), Node("b"), Node("c")};
  nodes[0].tasks_by_service["db"] = 5;
  nodes[0].total_tasks = 5;
  nodes[1].tasks_by_service["db"] = 1;
  nodes[1].total_tasks = 1;
  Decisions d = Schedule(nodes, Tasks(2, Task("web")));
  REQUIRE(d.assignments.size() == 2);
  CHECK(d.assignments[0].node_id == "c");
  CHECK(d.assignments[1].node_id == "b");
}

TEST_CASE("ties are broken by node id, whatever the order of the nodes", "[ranking]") {
  std::vector<NodeInfo> nodes = {Node("n3"), Node("n1"), Node("n2")};
  Decisions d = Schedule(nodes, Tasks(4, Task("web")));
  REQUIRE(d.assignments.size() == 4);
  CHECK(d.assignments[0].node_id == "n1");
  CHECK(d.assignments[1].node_id == "n2");
  CHECK(d.assignments[2].node_id == "n3");
  CHECK(d.assignments[3].node_id == "n1");
}

TEST_CASE("a node where the service failed recently is used only when others cannot", "[ranking]") {
  std::vector<NodeInfo> nodes = {Node("a"), Node("b"), Node("c")};
  nodes[0].recent_failures["web"] = 1;
  nodes[1].recent_failures["db"] = 4;  // failures of another service do not count
  TaskRequest web = Task("web");
  web.max_replicas_per_node = 2;
  Decisions d = Schedule(nodes, Tasks(4, web));
  CHECK(PerNode(d) == std::map<std::string, int>{{"b", 2}, {"c", 2}});

  d = Schedule(nodes, Tasks(2, web));  // b and c are full now
  CHECK(PerNode(d) == std::map<std::string, int>{{"a", 2}});
}

TEST_CASE("nodes with fewer recent failures are preferred among failed ones", "[ranking]") {
  std::vector<NodeInfo> nodes = {Node("a"), Node("b")};
  nodes[0].recent_failures["web"] = 3;
  nodes[1].recent_failures["web"] = 1;
  Decisions d = Schedule(nodes, Tasks(1, Task("web")));
  REQUIRE(d.assignments.size() == 1);
  CHECK(d.assignments[0].node_id == "b");
}

TEST_CASE("max replicas per node leaves the rest unplaced with the reason", "[schedule]") {
  std::vector<NodeInfo> nodes = {Node("a"), Node("b"), Node("c")};
  TaskRequest web = Task("web");
  web.max_replicas_per_node = 2;
  Decisions d = Schedule(nodes, Tasks(8, web));
  CHECK(d.assignments.size() == 6);
  CHECK(PerNode(d) == std::map<std::string, int>{{"a", 2}, {"b", 2}, {"c", 2}});
  REQUIRE(d.unplaced.size() == 2);
  CHECK(d.unplaced[0].task_id == "web.7");
  CHECK(d.unplaced[1].task_id == "web.8");
  CHECK(d.unplaced[0].reason == "no suitable node (max replicas per node (2) reached on 3 nodes)");
}

TEST_CASE("tasks stop fitting when a node's resources run out", "[schedule]") {
  std::vector<NodeInfo> nodes = {Node("a", 2 * kCpu, 8 * kGiB), Node("b", 1 * kCpu, 1 * kGiB)};
  TaskRequest t = Task("web");
  t.reservations = {kCpu, 1 * kGiB};
  Decisions d = Schedule(nodes, Tasks(4, t));
  CHECK(PerNode(d) == std::map<std::string, int>{{"a", 2}, {"b", 1}});
  REQUIRE(d.unplaced.size() == 1);
  CHECK(d.unplaced[0].reason ==
        "no suitable node (insufficient cpu on 1 node; insufficient cpu "
        "and memory on 1 node)");
  CHECK(nodes[0].reserved == Resources{2 * kCpu, 2 * kGiB});
  CHECK(nodes[1].reserved == Resources{kCpu, 1 * kGiB});
}

TEST_CASE("the unplaced reason counts nodes per filter in pipeline order", "[schedule]") {
  std::vector<NodeInfo> nodes;
  for (int i = 0; i < 3; ++i)
    nodes.push_back(Node("mgr" + std::to_string(i)));
  for (NodeInfo& n : nodes)
    n.role = "manager";
  nodes.push_back(Node("small1", 4 * kCpu, 256 * kMiB));
  nodes.push_back(Node("small2", 4 * kCpu, 256 * kMiB));
  nodes.push_back(Node("down"));
  nodes.back().ready = false;
  nodes.push_back(Node("drained"));
  nodes.back().availability = "drain";
  nodes.push_back(Node("paused"));
  nodes.back().availability = "pause";
  TaskRequest t = Task("web");
  t.constraints = {C("node.role==worker")};
  t.reservations.memory_bytes = 512 * kMiB;
  Decisions d = Schedule(nodes, {t});
  REQUIRE(d.unplaced.size() == 1);
  CHECK(d.unplaced[0].reason ==
        "no suitable node (1 node not ready; 2 nodes not available for new tasks; scheduling "
        "constraints not satisfied on 3 nodes; insufficient memory on 2 nodes)");

  // Only the constraint and memory failures: the shape of the common case.
  nodes.erase(nodes.begin() + 5, nodes.end());
  d = Schedule(nodes, {t});
  REQUIRE(d.unplaced.size() == 1);
  CHECK(d.unplaced[0].reason ==
        "no suitable node (scheduling constraints not satisfied on 3 nodes; insufficient memory "
        "on 2 nodes)");
}

TEST_CASE("memory limits filter: a task with a memory limit or reservation needs the memory "
          "cgroup controller",
          "[filters]") {
  NodeInfo pi = Node("pi");
  pi.memory_limits = false;
  TaskRequest t = Task("t");
  CHECK(ReasonOf(pi, t) == "ok");  // nothing to enforce
  t.memory_limited = true;
  CHECK(ReasonOf(pi, t) ==
        "memory-limits: no memory limits on the node (its kernel has no memory cgroup "
        "controller), and the task has a memory limit or reservation");
  pi.memory_limits = true;
  CHECK(ReasonOf(pi, t) == "ok");

  // In a placement's reason, counted as any other filter; the node without it takes the tasks
  // that ask for nothing.
  std::vector<NodeInfo> nodes = {Node("a"), Node("pi")};
  nodes[1].memory_limits = false;
  TaskRequest plain = Task("plain", "plain");
  TaskRequest limited = Task("limited", "limited");
  limited.memory_limited = true;
  Decisions d = Schedule(nodes, {limited, limited, plain, plain});
  CHECK(PerNode(d) == std::map<std::string, int>{{"a", 3}, {"pi", 1}});
  limited.constraints = {C("node.hostname==host-pi")};
  d = Schedule(nodes, {limited});
  REQUIRE(d.unplaced.size() == 1);
  CHECK(d.unplaced[0].reason == "no suitable node (scheduling constraints not satisfied on 1 "
                                "node; no memory cgroup controller on 1 node)");
}

TEST_CASE("platform and host port failures read in the reason", "[schedule]") {
  std::vector<NodeInfo> nodes = {Node("a"), Node("b"), Node("pi")};
  nodes[2].platform = {"linux", "aarch64"};
  TaskRequest t = Task("web");
  t.platforms = {{"linux", "amd64"}};
  t.host_ports = {{"tcp", 8080}};
  Decisions d = Schedule(nodes, Tasks(3, t));
  CHECK(PerNode(d) == std::map<std::string, int>{{"a", 1}, {"b", 1}});
  REQUIRE(d.unplaced.size() == 1);
  CHECK(d.unplaced[0].reason ==
        "no suitable node (unsupported platform on 1 node; host-mode port 8080/tcp in use on 2 "
        "nodes)");
  CHECK(nodes[0].used_host_ports == std::vector<HostPort>{{"tcp", 8080}});
}

TEST_CASE("with no nodes every task is unplaced", "[schedule]") {
  std::vector<NodeInfo> nodes;
  Decisions d = Schedule(nodes, Tasks(2, Task("web")));
  CHECK(d.assignments.empty());
  REQUIRE(d.unplaced.size() == 2);
  CHECK(d.unplaced[1].reason == "no suitable node (no nodes in the swarm)");
}

TEST_CASE("placements are recorded in the nodes and seen by the next call", "[schedule]") {
  std::vector<NodeInfo> nodes = {Node("a"), Node("b")};
  TaskRequest web = Task("web");
  web.reservations = {kCpu / 4, 128 * kMiB};
  web.host_ports = {{"udp", 5353}};
  web.max_replicas_per_node = 1;
  Decisions d = Schedule(nodes, Tasks(1, web));
  REQUIRE(d.assignments.size() == 1);
  const NodeInfo& a = nodes[0];
  CHECK(a.reserved == Resources{kCpu / 4, 128 * kMiB});
  CHECK(a.tasks_by_service.at("web") == 1);
  CHECK(a.total_tasks == 1);
  CHECK(a.used_host_ports == std::vector<HostPort>{{"udp", 5353}});
  CHECK(nodes[1].total_tasks == 0);
  CHECK(nodes[1].tasks_by_service.empty());  // no entry for a node that took nothing

  d = Schedule(nodes, Tasks(2, web));
  CHECK(PerNode(d) == std::map<std::string, int>{{"b", 1}});
  REQUIRE(d.unplaced.size() == 1);
  CHECK(d.unplaced[0].reason == "no suitable node (host-mode port 5353/udp in use on 2 nodes)");
}

TEST_CASE("decisions come in the order of the tasks, with services interleaved", "[schedule]") {
  std::vector<NodeInfo> nodes = {Node("a"), Node("b")};
  TaskRequest db = Task("db", "db");
  db.constraints = {C("node.hostname==host-b")};
  std::vector<TaskRequest> tasks = {Task("web.1"), db, Task("web.2"), Task("web.3")};
  tasks[3].reservations.memory_bytes = 64 * kGiB;  // fits nowhere
  Decisions d = Schedule(nodes, tasks);
  REQUIRE(d.assignments.size() == 3);
  CHECK(d.assignments[0].task_id == "web.1");
  CHECK(d.assignments[1].task_id == "db");
  CHECK(d.assignments[1].node_id == "b");
  CHECK(d.assignments[2].task_id == "web.2");
  CHECK(d.assignments[0].node_id != d.assignments[2].node_id);
  REQUIRE(d.unplaced.size() == 1);
  CHECK(d.unplaced[0].task_id == "web.3");
  CHECK(d.unplaced[0].reason == "no suitable node (insufficient memory on 2 nodes)");
}

TEST_CASE("the same input gives the same decisions", "[schedule]") {
  std::vector<NodeInfo> nodes;
  for (int i = 0; i < 20; ++i) {
    nodes.push_back(Node("node" + std::to_string(i), (1 + i % 4) * kCpu, (1 + i % 3) * kGiB));
    nodes.back().labels["zone"] = std::string(1, static_cast<char>('a' + i % 3));
    nodes.back().total_tasks = i % 5;
  }
  std::vector<TaskRequest> tasks;
  for (int s = 0; s < 5; ++s) {
    TaskRequest t = Task("svc" + std::to_string(s), "svc" + std::to_string(s));
    t.reservations = {kCpu / (s + 1), 100 * kMiB * s};
    if (s % 2) t.constraints = {C("node.labels.zone!=b")};
    for (const TaskRequest& x : Tasks(40, t))
      tasks.push_back(x);
  }
  std::vector<NodeInfo> copy1 = nodes, copy2 = nodes;
  std::vector<NodeInfo> reversed(nodes.rbegin(), nodes.rend());
  Decisions d1 = Schedule(copy1, tasks);
  Decisions d2 = Schedule(copy2, tasks);
  Decisions d3 = Schedule(reversed, tasks);
  auto same = [](const Decisions& x, const Decisions& y) {
    if (x.assignments.size() != y.assignments.size()) return false;
    if (x.unplaced.size() != y.unplaced.size()) return false;
    for (size_t i = 0; i < x.assignments.size(); ++i) {
      if (x.assignments[i].task_id != y.assignments[i].task_id) return false;
      if (x.assignments[i].node_id != y.assignments[i].node_id) return false;
    }
    for (size_t i = 0; i < x.unplaced.size(); ++i) {
      if (x.unplaced[i].task_id != y.unplaced[i].task_id) return false;
      if (x.unplaced[i].reason != y.unplaced[i].reason) return false;
    }
    return true;
  };
  CHECK(same(d1, d2));
  CHECK(same(d1, d3));  // the order of the nodes does not matter
  CHECK_FALSE(d1.unplaced.empty());
  for (size_t i = 0; i < copy1.size(); ++i) {
    CHECK(copy1[i].reserved == copy2[i].reserved);
    CHECK(copy1[i].tasks_by_service == copy2[i].tasks_by_service);
  }
}

TEST_CASE("random clusters: limits hold, counts add up, unplaced tasks fit nowhere",
          "[schedule][property]") {
  size_t placed = 0, unplaced = 0;
  std::map<std::string, int> reasons_seen;  // by filter phrase, to know the test reaches them
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    auto pick = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };

    std::vector<NodeInfo> nodes;
    const int node_count = pick(0, 12);
    for (int i = 0; i < node_count; ++i) {
      NodeInfo n = Node("n" + std::to_string(pick(0, 99)) + "-" + std::to_string(i),
                        pick(0, 8) * kCpu / 2, pick(0, 8) * kGiB / 2);
      n.ready = pick(0, 9) != 0;
      n.availability = pick(0, 9) == 0 ? "drain" : pick(0, 9) == 0 ? "pause" : "active";
      n.role = pick(0, 2) == 0 ? "manager" : "worker";
      n.labels["zone"] = std::string(1, static_cast<char>('a' + pick(0, 2)));
      n.platform.arch = pick(0, 3) == 0 ? "aarch64" : "x86_64";
      n.reserved = {pick(0, static_cast<int>(n.total.nano_cpus / (kCpu / 2))) * kCpu / 2, 0};
      for (int s = 0; s < 3; ++s) {
        int existing = pick(0, 2);
        if (existing) n.tasks_by_service["s" + std::to_string(s)] = existing;
        n.total_tasks += existing;
      }
      if (pick(0, 4) == 0) n.recent_failures["s" + std::to_string(pick(0, 2))] = pick(1, 3);
      if (pick(0, 4) == 0) n.used_host_ports.push_back({"tcp", 8080});
      nodes.push_back(n);
    }

    std::vector<TaskRequest> specs;
    for (int s = 0; s < 4; ++s) {
      TaskRequest t = Task("s" + std::to_string(s), "s" + std::to_string(s % 3));
      t.reservations = {pick(0, 3) * kCpu / 4, pick(0, 3) * kGiB / 4};
      t.max_replicas_per_node = static_cast<uint64_t>(pick(0, 3));
      if (pick(0, 1)) t.constraints.push_back(C("node.role==worker"));
      if (pick(0, 1)) t.constraints.push_back(C("node.labels.zone!=c"));
      if (pick(0, 3) == 0) t.platforms = {{"linux", "amd64"}};
      if (pick(0, 3) == 0) t.host_ports = {{"tcp", 8080}};
      // Two specs of one service, as during a rolling update. They share the limit: the
      // replay below checks the assignments in the order given, not in the scheduler's.
      if (s == 3) t.max_replicas_per_node = specs[0].max_replicas_per_node;
      specs.push_back(t);
    }
    std::vector<TaskRequest> tasks;
    const int task_count = pick(0, 60);
    for (int k = 0; k < task_count; ++k) {
      tasks.push_back(specs[pick(0, 3)]);
      tasks.back().task_id = "t" + std::to_string(k);
    }

    const std::vector<NodeInfo> before = nodes;
    Decisions d = Schedule(nodes, tasks);

    REQUIRE(d.assignments.size() + d.unplaced.size() == tasks.size());
    placed += d.assignments.size();
    unplaced += d.unplaced.size();
    std::map<std::string, const TaskRequest*> task_by_id;
    for (const TaskRequest& t : tasks)
      task_by_id[t.task_id] = &t;
    std::map<std::string, size_t> node_index;
    for (size_t i = 0; i < nodes.size(); ++i)
      node_index[nodes[i].id] = i;

    // Replay the assignments on the starting state: each must have been allowed there.
    std::vector<NodeInfo> replay = before;
    for (const Assignment& a : d.assignments) {
      const TaskRequest& t = *task_by_id.at(a.task_id);
      NodeInfo& n = replay[node_index.at(a.node_id)];
      INFO("task " << a.task_id << " on " << a.node_id);
      CHECK(ReasonOf(n, t) == "ok");
      n.reserved.nano_cpus += t.reservations.nano_cpus;
      n.reserved.memory_bytes += t.reservations.memory_bytes;
      ++n.tasks_by_service[t.service_id];
      ++n.total_tasks;
      for (const HostPort& p : t.host_ports)
        n.used_host_ports.push_back(p);
    }
    for (size_t i = 0; i < nodes.size(); ++i) {
      const NodeInfo& n = nodes[i];
      CHECK(n.reserved == replay[i].reserved);
      CHECK(n.total_tasks == replay[i].total_tasks);
      for (const auto& [service, count] : replay[i].tasks_by_service) {
        CHECK(CountOr0(n, service) == count);
      }
      if (n.total_tasks > before[i].total_tasks) {
        CHECK(n.reserved.nano_cpus <= n.total.nano_cpus);
        CHECK(n.reserved.memory_bytes <= n.total.memory_bytes);
      }
    }
    // A task left unplaced fits on no node even now: load only grew after it was tried.
    for (const Unplaced& u : d.unplaced) {
      const TaskRequest& t = *task_by_id.at(u.task_id);
      CHECK(u.reason.starts_with("no suitable node ("));
      for (const char* phrase : {"not ready", "not available", "constraints", "platform",
                                 "insufficient", "host-mode port", "max replicas", "no nodes"}) {
        if (u.reason.find(phrase) != std::string::npos) ++reasons_seen[phrase];
      }
      for (const NodeInfo& n : nodes) {
        INFO("task " << u.task_id << " on " << n.id);
        CHECK(Check(n, t).has_value());
      }
    }
  }
  // The random inputs reach both outcomes and every kind of rejection.
  CHECK(placed > 1000);
  CHECK(unplaced > 1000);
  CHECK(reasons_seen.size() == 8);
}

TEST_CASE("spread preferences even tasks out over a label's values, level by level",
          "[scheduler]") {
  // Zone a has three nodes, zone b one, and one node has no zone.
  std::vector<NodeInfo> nodes = {Node("a1"), Node("a2"), Node("a3"), Node("b1"), Node("x")};
  for (int i = 0; i < 3; ++i)
    nodes[i].labels["zone"] = "a";
  nodes[3].labels["zone"] = "b";
  TaskRequest like = Task("t");
  like.spread = {"node.labels.zone"};
  Decisions d = Schedule(nodes, Tasks(6, like));
  REQUIRE(d.assignments.size() == 6);
  auto per = PerNode(d);
  // Three values (a, b and none) take two tasks each.
  CHECK(per["a1"] + per["a2"] + per["a3"] == 2);
  CHECK(per["b1"] == 2);
  CHECK(per["x"] == 2);
  CHECK(CountOr0(nodes[3], "web") == 2);

  // Tasks already there count: the next ones go where their branch has fewest.
  d = Schedule(nodes, Tasks(3, like));
  per = PerNode(d);
  CHECK(per["a1"] + per["a2"] + per["a3"] == 1);
  CHECK(per["b1"] == 1);
  CHECK(per["x"] == 1);

  // Nested: zone, then rack within it.
  std::vector<NodeInfo> racks = {Node("r1"), Node("r2"), Node("r3"), Node("r4")};
  racks[0].labels = {{"zone", "a"}, {"rack", "1"}};
  racks[1].labels = {{"zone", "a"}, {"rack", "1"}};
  racks[2].labels = {{"zone", "a"}, {"rack", "2"}};
  racks[3].labels = {{"zone", "b"}, {"rack", "1"}};
  like.spread = {"node.labels.zone", "node.labels.rack"};
  d = Schedule(racks, Tasks(4, like));
  per = PerNode(d);
  CHECK(per["r4"] == 2);                // zone b
  CHECK(per["r1"] + per["r2"] == 1);    // zone a, rack 1
  CHECK(per["r3"] == 1);                // zone a, rack 2

  // Filters still apply: a node that may not take tasks is no branch.
  std::vector<NodeInfo> some = {Node("a1"), Node("b1")};
  some[0].labels["zone"] = "a";
  some[1].labels["zone"] = "b";
  some[1].availability = "drain";
  like.spread = {"node.labels.zone"};
  d = Schedule(some, Tasks(2, like));
  CHECK(PerNode(d)["a1"] == 2);
}

TEST_CASE("a spread preference names a node or engine label", "[scheduler]") {
  CHECK_FALSE(CheckSpreadDescriptor("node.labels.zone"));
  CHECK_FALSE(CheckSpreadDescriptor("engine.labels.rack"));
  for (const char* bad : {"node.zone", "node.labels.", "zone", ""}) {
    auto err = CheckSpreadDescriptor(bad);
    REQUIRE(err);
    CHECK(err->find("the key must be node.labels.<name> or engine.labels.<name>") !=
          std::string::npos);
  }
}
