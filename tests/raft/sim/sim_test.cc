// Runs the simulator over many seeds. Environment:
//   SKEP_SIM_SEEDS=N     how many seeds (default 1000), for long soaks raise it
//   SKEP_SIM_SHARD=K/M   run the K-th of M equal slices of the seeds (CTest runs slices in
//   parallel) SKEP_SIM_SEED=S      run seed S alone (the replay command printed on failure)
//   SKEP_SIM_TRACE=1     print every event of the run
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <iostream>
#include <string>

#include "tests/raft/sim/sim.h"

using namespace skep::raft::sim;

namespace {

uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

std::string SelfPath() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "raft_sim_test";
}

}  // namespace

TEST_CASE("raft keeps its safety and liveness properties under faults", "[sim]") {
  uint64_t first = 1, count = EnvNumber("SKEP_SIM_SEEDS", 1000);
  if (const char* shard = std::getenv("SKEP_SIM_SHARD")) {
    const std::string s = shard;
    const uint64_t k = std::stoull(s.substr(0, s.find('/')));
    const uint64_t m = std::stoull(s.substr(s.find('/') + 1));
    const uint64_t per = (count + m - 1) / m;
    first = 1 + k * per;
    count = std::min(per, count - std::min(count, k * per));
  }
  if (const char* one = std::getenv("SKEP_SIM_SEED")) {
    first = std::stoull(one);
    count = 1;
  }
  const bool trace = std::getenv("SKEP_SIM_TRACE") != nullptr;

  SimStats total;
  uint64_t failures = 0;
  for (uint64_t seed = first; seed < first + count; ++seed) {
    SimOptions opt;
    opt.seed = seed;
    opt.trace = trace;
    const SimResult r = RunSimulation(opt);
    total.Add(r.stats);
    std::cout << "seed " << seed << ": " << r.stats.Summary() << "\n";
    if (r.violations.empty()) continue;
    ++failures;
    std::cout << "seed " << seed << " FAILED:\n";
    for (const auto& v : r.violations)
      std::cout << "  " << v << "\n";
    std::cout << "  last events before the first violation:\n";
    for (const auto& t : r.trace_tail)
      std::cout << "    " << t << "\n";
    std::cout << "  replay: SKEP_SIM_SEED=" << seed << " SKEP_SIM_TRACE=1 " << SelfPath() << "\n";
  }
  std::cout << "seeds " << first << ".." << first + count - 1 << ", " << failures
            << " failed; totals: " << total.Summary() << std::endl;
  CHECK(failures == 0);
  if (count >= 50) {
    // The run must actually have exercised every kind of fault.
    CHECK(total.partitions > 0);
    CHECK(total.leader_isolations > 0);
    CHECK(total.crashes > 0);
    CHECK(total.learners_added > 0);
    CHECK(total.promotions > 0);
    CHECK(total.removals > 0);
    CHECK(total.snapshots_installed > 0);
    CHECK(total.transfers > 0);
    CHECK(total.dropped > 0);
    CHECK(total.duplicated > 0);
    CHECK(total.ops_acked > 0);
  }
}
