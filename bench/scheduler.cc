// scheduler: placement throughput of skep's scheduler (scheduler/) on a synthetic cluster of
// 1,000 nodes (16 CPUs, 64 GiB; 50 managers; node.labels.zone a/b/c) with 100,000 tasks that
// each reserve 0.1 CPU and 256 MiB:
//   (a) one service, no constraints
//   (b) one service, node.role==worker and node.labels.zone!=c
//   (c) one service, max replicas per node 100 (the cluster fits exactly 100,000)
//   (d) 100 services of 1,000 tasks each
// Only the Schedule call is timed; each case starts from a fresh copy of the cluster and the
// best of --runs is reported.
//
//   scheduler [--runs N] [--nodes N] [--tasks N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "scheduler/scheduler.h"

using Clock = std::chrono::steady_clock;
using namespace skep::scheduler;

namespace {

constexpr int64_t kCpu = 1'000'000'000;
constexpr int64_t kMiB = 1024 * 1024;
constexpr int64_t kGiB = 1024 * kMiB;

struct Options {
  int runs = 3;
  int nodes = 1000;
  int tasks = 100000;
};

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    auto value = [&]() {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "scheduler: %s needs a value\n", argv[i]);
        std::exit(2);
      }
      return std::atoi(argv[++i]);
    };
    if (!std::strcmp(argv[i], "--runs")) {
      o.runs = std::max(1, value());
    } else if (!std::strcmp(argv[i], "--nodes")) {
      o.nodes = std::max(1, value());
    } else if (!std::strcmp(argv[i], "--tasks")) {
      o.tasks = std::max(1, value());
    } else {
      std::fprintf(stderr, "usage: scheduler [--runs N] [--nodes N] [--tasks N]\n");
      std::exit(2);
    }
  }
  return o;
}

std::vector<NodeInfo> Cluster(int count) {
  std::vector<NodeInfo> nodes;
  nodes.reserve(count);
  for (int i = 0; i < count; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "node-%05d", i);
    NodeInfo n;
    n.id = id;
    n.hostname = std::string("host-") + (id + 5);
    n.role = i < count / 20 ? "manager" : "worker";
    n.addr = "10.88." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
    n.platform = {"linux", i % 4 == 0 ? "aarch64" : "x86_64"};
    n.labels["zone"] = std::string(1, static_cast<char>('a' + i % 3));
    n.engine_labels["storage"] = i % 2 ? "ssd" : "hdd";
    n.ready = true;
    n.total = {16 * kCpu, 64 * kGiB};
    nodes.push_back(std::move(n));
  }
  return nodes;
}

TaskRequest Spec(std::string service) {
  TaskRequest t;
  t.service_id = std::move(service);
  t.reservations = {kCpu / 10, 256 * kMiB};
  return t;
}

Constraint Parse(const char* text) {
  return std::get<Constraint>(ParseConstraint(text));
}

std::vector<TaskRequest> Tasks(int count, const TaskRequest& spec) {
  std::vector<TaskRequest> tasks(count, spec);
  for (int k = 0; k < count; ++k)
    tasks[k].task_id = spec.service_id + "." + std::to_string(k + 1);
  return tasks;
}

struct Case {
  const char* name;
  std::vector<TaskRequest> tasks;
};

}  // namespace

int main(int argc, char** argv) {
  const Options opt = ParseArgs(argc, argv);
  const std::vector<NodeInfo> cluster = Cluster(opt.nodes);

  std::vector<Case> cases;
  cases.push_back({"(a) one service", Tasks(opt.tasks, Spec("web"))});
  TaskRequest constrained = Spec("web");
  constrained.constraints = {Parse("node.role==worker"), Parse("node.labels.zone!=c")};
  cases.push_back({"(b) two constraints", Tasks(opt.tasks, constrained)});
  TaskRequest limited = Spec("web");
  limited.max_replicas_per_node = static_cast<uint64_t>((opt.tasks + opt.nodes - 1) / opt.nodes);
  cases.push_back({"(c) max replicas/node", Tasks(opt.tasks, limited)});
  Case many{"(d) 100 services", {}};
  for (int s = 0; s < 100; ++s) {
    for (TaskRequest& t : Tasks(opt.tasks / 100, Spec("svc" + std::to_string(s)))) {
      many.tasks.push_back(std::move(t));
    }
  }
  cases.push_back(std::move(many));

  std::printf("%-24s %8s %6s %9s %10s %13s\n", "CASE", "TASKS", "NODES", "PLACED", "SECONDS",
              "PLACEMENTS/S");
  for (const Case& c : cases) {
    double best = 1e100;
    size_t placed = 0;
    for (int run = 0; run < opt.runs; ++run) {
      std::vector<NodeInfo> nodes = cluster;
      auto start = Clock::now();
      Decisions d = Schedule(nodes, c.tasks);
      double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      best = std::min(best, seconds);
      placed = d.assignments.size();
      if (!d.unplaced.empty() && run == 0) {
        std::fprintf(stderr, "%s: %zu unplaced: %s\n", c.name, d.unplaced.size(),
                     d.unplaced[0].reason.c_str());
      }
    }
    std::printf("%-24s %8zu %6zu %9zu %10.4f %13.0f\n", c.name, c.tasks.size(), cluster.size(),
                placed, best, static_cast<double>(placed) / best);
  }
  return 0;
}
