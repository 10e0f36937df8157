#include <catch2/catch.hpp>

#include <cstdlib>

#include "tests/overlay/gossip_sim.h"

using namespace skep::gossip;
using namespace skep::gossip::sim;

namespace {

// SKEP_GOSSIP_SEED picks another seed, to look for flakiness without editing the tests.
uint64_t Seed(uint64_t fallback) {
  const char* s = std::getenv("SKEP_GOSSIP_SEED");
  return s == nullptr ? fallback : std::strtoull(s, nullptr, 10) * 1000 + fallback;
}

// n members, each joining through member 0, run until every view agrees.
void Bootstrap(Cluster& c, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    c.AddNode();
    if (i > 0) {
      c.Join(i, 0);
      c.RunFor(10);
    }
  }
  REQUIRE(c.RunUntil([&] { return c.Converged(); }, 120'000, 100));
}

SimConfig WithSeed(uint64_t seed) {
  SimConfig config;
  config.seed = seed;
  return config;
}

bool IsDead(std::optional<MemberState> s) {
  return !s || *s == MemberState::kDead;
}

}  // namespace

TEST_CASE("fifty members converge after joining through one seed", "[sim]") {
  Cluster c(WithSeed(Seed(1)));
  for (size_t i = 0; i < 50; ++i)
    c.AddNode();
  for (size_t i = 1; i < 50; ++i)
    c.Join(i, 0);
  CHECK(c.RunUntil([&] { return c.Converged(); }, 60'000, 100));
  INFO("converged at " << c.now() << " ms");
  CHECK(c.false_detections() == 0);
  for (size_t i = 0; i < 50; ++i)
    CHECK(c.member(i).NumActive() == 50);
}

TEST_CASE("a crashed member is declared dead by every other member within a bound", "[sim]") {
  Cluster c(WithSeed(Seed(2)));
  Bootstrap(c, 20);
  int64_t crashed_at = c.now();
  c.Crash(7);
  // Bound: a probe round (20 s at worst) plus the longest suspicion timeout for 20 members
  // (6 * 4 * log10(20) s = 31.2 s) plus dissemination.
  bool dead = c.RunUntil([&] { return c.FractionKnowing(7, IsDead) == 1.0; }, 55'000);
  CHECK(dead);
  INFO("detected by all after " << c.now() - crashed_at << " ms");
  CHECK(c.now() - crashed_at < 55'000);
  CHECK(c.false_detections() == 0);
  for (size_t i = 0; i < 20; ++i) {
    if (i != 7) CHECK(c.View(i, 7) == MemberState::kDead);
  }
}

TEST_CASE("a partitioned member is suspected, declared dead, and rejoins after the heal", "[sim]") {
  Cluster c(WithSeed(Seed(3)));
  Bootstrap(c, 20);
  uint64_t before = c.member(3).incarnation();
  c.Isolate(3);
  bool suspected = c.RunUntil(
      [&] { return c.FractionKnowing(3, [](auto s) { return s == MemberState::kSuspect; }) > 0; },
      30'000);
  CHECK(suspected);
  CHECK(c.RunUntil([&] { return c.FractionKnowing(3, IsDead) == 1.0; }, 60'000));
  c.Heal(3);
  // Reconnect attempts (every 30 s) find the member again; it refutes its death.
  CHECK(c.RunUntil([&] { return c.Converged(); }, 180'000, 100));
  CHECK(c.member(3).incarnation() > before);
  for (size_t i = 0; i < 20; ++i) {
    if (i != 3) CHECK(c.View(i, 3) == MemberState::kAlive);
  }
}

TEST_CASE("with 10% loss among 100 members no live member is declared dead", "[sim]") {
  Cluster c(WithSeed(Seed(4)));
  Bootstrap(c, 100);
  size_t before = c.false_detections();
  c.SetLoss(0.10);
  c.RunFor(60'000);
  CHECK(c.false_detections() - before == 0);
  // The loss does not stop the failure detector from working.
  c.Crash(42);
  CHECK(c.RunUntil([&] { return c.FractionKnowing(42, IsDead) == 1.0; }, 90'000));
  CHECK(c.false_detections() - before == 0);
}

TEST_CASE("a restarted member comes back with a higher incarnation", "[sim]") {
  Cluster c(WithSeed(Seed(5)));
  Bootstrap(c, 10);
  uint64_t before = c.member(4).incarnation();
  c.Crash(4);
  REQUIRE(c.RunUntil([&] { return c.FractionKnowing(4, IsDead) == 1.0; }, 60'000));
  c.Restart(4, 0);
  CHECK(c.RunUntil([&] { return c.Converged(); }, 60'000, 100));
  CHECK(c.member(4).incarnation() > before);
}

TEST_CASE("a member that leaves is seen as left by everyone", "[sim]") {
  Cluster c(WithSeed(Seed(6)));
  Bootstrap(c, 15);
  c.Leave(9);
  CHECK(c.RunUntil(
      [&] { return c.FractionKnowing(9, [](auto s) { return s == MemberState::kLeft; }) == 1.0; },
      10'000));
  CHECK(c.false_detections() == 0);
}

TEST_CASE("endpoint entries put on one node reach every node in the network", "[sim]") {
  SimConfig config = WithSeed(Seed(7));
  config.tables = true;
  Cluster c(config);
  Bootstrap(c, 30);
  for (size_t i = 0; i < 20; ++i)
    c.JoinNetwork(i, "net1");
  auto all_know = [&](auto pred) {
    for (size_t i = 0; i < 20; ++i) {
      if (!pred(i)) return false;
    }
    return true;
  };
  CHECK(c.RunUntil(
      [&] { return all_know([&](size_t i) { return c.table(i).Nodes("net1").size() == 20; }); },
      30'000));
  c.PutEntry(7, "net1", "ep-web-1", "10.0.1.7");
  c.PutEntry(12, "net1", "ep-db-1", "10.0.1.12");
  CHECK(c.RunUntil(
      [&] {
        return all_know([&](size_t i) {
          return c.table(i).Get("net1", "ep-web-1") && c.table(i).Get("net1", "ep-db-1");
        });
      },
      // Gossip reaches nearly everyone in a second or two; push-pull repairs the rare miss.
      90'000));
  CHECK(c.table(3).Get("net1", "ep-web-1")->value == "10.0.1.7");
  // Members outside the network do not hold its table.
  for (size_t i = 20; i < 30; ++i)
    CHECK_FALSE(c.table(i).Participates("net1"));

  // A crashed node's entries are removed everywhere once it is declared dead.
  c.Crash(12);
  CHECK(c.RunUntil(
      [&] {
        return all_know([&](size_t i) { return i == 12 || !c.table(i).Get("net1", "ep-db-1"); });
      },
      60'000));
  CHECK(c.table(0).Get("net1", "ep-web-1") != nullptr);
}
