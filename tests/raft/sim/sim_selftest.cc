// Built against a raft core with one safety rule broken on purpose (see raft/CMakeLists.txt):
// the simulator must notice. If it does not, its checks prove nothing.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <iostream>
#include <string>

#include "tests/raft/sim/sim.h"

using namespace skep::raft::sim;

TEST_CASE("the simulator catches a deliberately broken core: " SKEP_SIM_BUG, "[sim][selftest]") {
  bool caught = false;
  uint64_t first = 1, last = 3000;
  if (const char* one = std::getenv("SKEP_SIM_SEED")) first = last = std::stoull(one);
  for (uint64_t seed = first; seed <= last && !caught; ++seed) {
    SimOptions opt;
    opt.seed = seed;
    opt.trace = std::getenv("SKEP_SIM_TRACE") != nullptr;
    // More elections make the rare interleavings that expose a broken rule come sooner.
    opt.young_leader_crash = 0.8;
    opt.young_leader_lifetime = 6;
    opt.fault_rate = 1;
    const SimResult r = RunSimulation(opt);
    for (const auto& v : r.violations) {
      // Only a safety violation counts: a broken core that merely stalls proves nothing here.
      if (v.find("liveness") != std::string::npos || caught) continue;
      caught = true;
      std::cout << "seed " << seed << " caught the broken core (" SKEP_SIM_BUG "):\n  " << v
                << std::endl;
    }
  }
  CHECK(caught);
}
