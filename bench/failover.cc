// failover: in a lab of real skepd processes (deploy/lab.sh), kill -9 the leader again and
// again, restarting it each time, and measure the time from the kill to the first write that
// the new leader accepts. The writes go through a surviving manager's control socket, as
// `skep node update` would, retried the moment they fail.
//
//   failover [--runs N] [--managers N]        (as root; builds nothing: run cmake first)
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "control.grpc.pb.h"

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

const std::string kLab = "failover";
const std::string kRoot = "/var/lib/skep-lab/" + kLab;

int Lab(const std::string& args) {
  const std::string cmd = "SKEP_LAB=" + kLab + " SKEP_LAB_NET=10.91.0 SKEP_LAB_NO_BUILD=1 SKEP_LAB_NO_SERVICE=1 " +
                          "SKEP_LAB_BIN=" SKEP_BINARY_DIR "/daemon " SKEP_SOURCE_DIR
                          "/deploy/lab.sh " +
                          args + " >/dev/null";
  return std::system(cmd.c_str());
}

std::unique_ptr<skep::api::Control::Stub> Control(const std::string& node) {
  return skep::api::Control::NewStub(grpc::CreateChannel(
      "unix://" + kRoot + "/" + node + "/skepd.sock", grpc::InsecureChannelCredentials()));
}

// The managers' statuses as `node ls` on `via` shows them; empty if it cannot answer.
std::vector<skep::api::NodeView> Nodes(const std::string& via) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 2s);
  skep::api::ListNodesResponse resp;
  if (!Control(via)->ListNodes(&ctx, {}, &resp).ok()) return {};
  return {resp.nodes().begin(), resp.nodes().end()};
}

// Waits until every manager is a reachable raft member; returns the leader's hostname.
std::string WaitHealthy(const std::vector<std::string>& managers) {
  for (int i = 0; i < 600; ++i) {
    for (const auto& via : managers) {
      const auto nodes = Nodes(via);
      std::string leader;
      size_t healthy = 0;
      for (const auto& v : nodes) {
        if (v.manager_status() == "Leader") leader = v.node().description().hostname();
        if (v.manager_status() == "Leader" || v.manager_status() == "Reachable") ++healthy;
      }
      if (!leader.empty() && healthy == managers.size()) return leader;
    }
    std::this_thread::sleep_for(100ms);
  }
  return "";
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 30, managers = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--runs")
      runs = std::atoi(argv[i + 1]);
    else if (a == "--managers")
      managers = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: failover [--runs N] [--managers N]\n");
      return 2;
    }
  }
  if (Lab("up --managers " + std::to_string(managers) + " --workers 1") != 0) {
    std::fprintf(stderr, "failover: the lab did not come up (root? built?)\n");
    return 1;
  }
  std::vector<std::string> names;
  for (int i = 1; i <= managers; ++i)
    names.push_back("m" + std::to_string(i));
  std::vector<double> times;
  for (int run = 1; run <= runs; ++run) {
    const std::string leader = WaitHealthy(names);
    if (leader.empty()) {
      std::fprintf(stderr, "failover: the cluster did not become healthy\n");
      break;
    }
    std::string via;
    for (const auto& n : names) {
      if (n != leader) via = n;
    }
    auto control = Control(via);
    auto write = [&](const std::string& value) {
      skep::api::UpdateNodeRequest req;
      req.set_ref("w1");
      (*req.mutable_label_add())["failover"] = value;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 500ms);
      skep::api::NodeView resp;
      return control->UpdateNode(&ctx, req, &resp).ok();
    };
    // Steady state before the kill: the node we write through has caught up and forwards to
    // the leader.
    for (auto until = Clock::now() + 10s; Clock::now() < until && !write("before");) {
      std::this_thread::sleep_for(50ms);
    }
    std::this_thread::sleep_for(500ms);
    pid_t pid = 0;
    std::ifstream(kRoot + "/" + leader + "/pid") >> pid;
    const auto t0 = Clock::now();
    kill(pid, SIGKILL);
    double ms = -1;
    while (Clock::now() - t0 < 30s) {
      if (write(std::to_string(run))) {
        ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
    std::fprintf(stderr, "run %2d: killed %s, first write through %s accepted after %.0f ms\n", run,
                 leader.c_str(), via.c_str(), ms);
    if (ms >= 0) times.push_back(ms);
    Lab("start " + leader);
  }
  // SKEP_FAILOVER_KEEP=1 leaves the lab up, to look at its logs.
  if (!std::getenv("SKEP_FAILOVER_KEEP")) Lab("down");
  if (times.empty()) return 1;
  double sum = 0;
  for (double t : times)
    sum += t;
  std::printf("\n%d managers, %zu leader kills (kill -9, then restart)\n\n", managers,
              times.size());
  std::printf("%-10s %10s %10s %10s %10s %10s\n", "KILLS", "MIN MS", "P50 MS", "P99 MS", "MAX MS",
              "MEAN MS");
  std::printf("%-10zu %10.0f %10.0f %10.0f %10.0f %10.0f\n", times.size(),
              *std::min_element(times.begin(), times.end()), Percentile(times, 0.5),
              Percentile(times, 0.99), *std::max_element(times.begin(), times.end()),
              sum / static_cast<double>(times.size()));
  return 0;
}
