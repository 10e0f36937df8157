// Gossip at scale on the simulator: how fast a join and a failure reach 99.9% of 1,000
// members, with and without 10% message loss, and how many live members were wrongly
// declared dead meanwhile. All times are simulated; the wall time is the cost of simulating.
//
//   gossip_sim [members] [seed]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/overlay/gossip_sim.h"

using namespace skep::gossip;
using namespace skep::gossip::sim;

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Row {
  double loss;
  int64_t join_ms = -1;  // -1 when not reached
  int64_t fail_ms = -1;
  size_t false_detections = 0;
  uint64_t messages = 0;
  double wall_s = 0;
};

// One phase on an already running cluster: a join, then a crash, then steady state.
Row Measure(Cluster& c, double loss, std::mt19937_64& rng) {
  auto start = Clock::now();
  Row row{loss};
  c.SetLoss(loss);
  size_t false_before = c.false_detections();
  uint64_t sent_before = c.messages_sent();
  c.RunFor(10'000);  // let the loss settle in before measuring

  size_t joiner = c.AddNode();
  c.Join(joiner, rng() % joiner);
  int64_t t0 = c.now();
  auto alive = [](std::optional<MemberState> s) { return s == MemberState::kAlive; };
  if (c.RunUntil([&] { return c.FractionKnowing(joiner, alive) >= 0.999; }, 120'000)) {
    row.join_ms = c.now() - t0;
  }

  size_t victim;
  do {
    victim = rng() % joiner;
  } while (!c.up(victim));
  c.Crash(victim);
  t0 = c.now();
  auto dead = [](std::optional<MemberState> s) { return !s || *s == MemberState::kDead; };
  if (c.RunUntil([&] { return c.FractionKnowing(victim, dead) >= 0.999; }, 180'000)) {
    row.fail_ms = c.now() - t0;
  }
  c.RunFor(20'000);  // more steady state, for the false detection count
  row.false_detections = c.false_detections() - false_before;
  row.messages = c.messages_sent() - sent_before;
  row.wall_s = Since(start);
  return row;
}

std::string Ms(int64_t ms) {
  return ms < 0 ? "not reached" : std::to_string(ms) + " ms";
}

}  // namespace

int main(int argc, char** argv) {
  size_t members = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000;
  uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;
  auto start = Clock::now();
  SimConfig config;
  config.seed = seed;
  config.check_invariants = false;  // O(members) per step; the tests run it
  Cluster c(config);
  std::mt19937_64 rng(seed);

  // Bootstrap without loss, shared by both phases: members join through a random earlier
  // member, 5 ms apart, until every member counts every other as active.
  for (size_t i = 0; i < members; ++i) {
    c.AddNode();
    if (i > 0) c.Join(i, rng() % i);
    c.RunFor(5);
  }
  int64_t t0 = c.now();
  auto everyone = [&] {
    for (size_t i = 0; i < members; ++i) {
      if (c.member(i).NumActive() != members) return false;
    }
    return true;
  };
  bool booted = c.RunUntil(everyone, 600'000, 100);
  std::printf("gossip simulator: %zu members, memberlist LAN defaults, latency 1-5 ms, seed %llu\n",
              members, static_cast<unsigned long long>(seed));
  std::printf("bootstrap: all members know each other %s after the last join (wall %.1f s)\n\n",
              booted ? Ms(c.now() - t0).c_str() : "never", Since(start));
  std::printf(
      "| loss | join known by 99.9%% | failure known by 99.9%% | false detections | "
      "messages | wall |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (double loss : {0.0, 0.10}) {
    Row r = Measure(c, loss, rng);
    std::printf("| %.0f%% | %s | %s | %zu | %llu | %.1f s |\n", r.loss * 100, Ms(r.join_ms).c_str(),
                Ms(r.fail_ms).c_str(), r.false_detections,
                static_cast<unsigned long long>(r.messages), r.wall_s);
    std::fflush(stdout);
  }
  std::printf(
      "\nEach phase: 10 s to settle at its loss rate, a join, a crash, 20 s more; false\n"
      "detections count every member's fail verdict about a running member. Total wall "
      "%.1f s.\n",
      Since(start));
  return 0;
}
