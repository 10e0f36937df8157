// Gossip at scale on the simulator: how fast a join and a failure reach 99.9% of 1,000
// members, with and without 10% message loss, and how many live members were wrongly
// declared dead meanwhile. All times are simulated; the wall time is the cost of simulating.
//
// The failure time is split in two: detection, from the crash until the first member declares
// the crashed member dead (its suspicion timer expired there), and dissemination, from that
// first dead declaration until 99.9% of the running members know it is dead. "first suspected"
// is when the first member started suspecting it (a failed probe), so detection is about that
// plus the suspicion timeout.
//
// Two settings are measured, each on its own cluster bootstrapped the same way:
//   lan    memberlist's LAN defaults, the Config defaults of overlay/gossip/member.h;
//   short  a shorter suspicion (by default probe interval 500 ms, probe timeout 250 ms,
//          suspicion multiplier 2: a 3 s suspicion timeout at 1,000 members with no
//          confirmations awaited), to show what faster detection costs in false detections
//          at 10% loss.
//
//   gossip_sim [members] [seed] [options]
//     members, seed               positional as before: 1000 and 1 by default
//     --short-probe-interval-ms=N probe interval of the short setting (default 500)
//     --short-probe-timeout-ms=N  its probe timeout, after which indirect probes go out; must be
//                                 below the interval or indirect probes get no time (default 250)
//     --short-suspicion-mult=N    its suspicion multiplier (default 2)
//     --no-short                  measure the LAN defaults only (the output of old)
//     --short-only                measure the short setting only
//     -h, --help                  print this usage
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "overlay/gossip/suspicion.h"
#include "tests/overlay/gossip_sim.h"

using namespace skep::gossip;
using namespace skep::gossip::sim;

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Setting {
  std::string name;
  Config member;
};

struct Row {
  double loss;
  int64_t join_ms = -1;  // -1 when not reached
  int64_t fail_ms = -1;  // crash until 99.9% know it is dead
  int64_t suspect_ms = -1;  // crash until a first member suspects it (10 ms resolution)
  int64_t detect_ms = -1;  // crash until a first member declares it dead (exact)
  size_t false_detections = 0;
  uint64_t messages = 0;
  double wall_s = 0;
};

// The time of the first fail verdict about `subject` among the observations from `from` on,
// or -1.
int64_t FirstFail(const Cluster& c, size_t subject, size_t from) {
  const std::vector<Observation>& obs = c.observations();
  std::string name = c.name(subject);
  for (size_t i = from; i < obs.size(); ++i) {
    if (obs[i].event.type == MemberEventType::kFail && obs[i].event.member.name == name) {
      return obs[i].at_ms;
    }
  }
  return -1;
}

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
  size_t obs_at_crash = c.observations().size();
  auto dead = [](std::optional<MemberState> s) { return !s || *s == MemberState::kDead; };
  auto known_dead = [&] {
    if (row.suspect_ms < 0) {
      for (size_t i = 0; i < c.size(); ++i) {
        if (i != victim && c.up(i) && c.View(i, victim) == MemberState::kSuspect) {
          row.suspect_ms = c.now() - t0;
          break;
        }
      }
    }
    return c.FractionKnowing(victim, dead) >= 0.999;
  };
  if (c.RunUntil(known_dead, 180'000)) {
    row.fail_ms = c.now() - t0;
  }
  if (int64_t at = FirstFail(c, victim, obs_at_crash); at >= 0) row.detect_ms = at - t0;
  c.RunFor(20'000);  // more steady state, for the false detection count
  row.false_detections = c.false_detections() - false_before;
  row.messages = c.messages_sent() - sent_before;
  row.wall_s = Since(start);
  return row;
}

std::string Ms(int64_t ms) {
  return ms < 0 ? "not reached" : std::to_string(ms) + " ms";
}

std::string Describe(const Config& m, size_t members) {
  int64_t min_ms = SuspicionMinTimeoutMs(m.suspicion_mult, members, m.probe_interval_ms);
  int64_t max_ms = m.suspicion_max_timeout_mult * min_ms;
  int k = ExpectedConfirmations(m.suspicion_mult, members);
  std::string s = "probe " + std::to_string(m.probe_interval_ms) + " ms, probe timeout " +
                  std::to_string(m.probe_timeout_ms) + " ms, suspicion mult " +
                  std::to_string(m.suspicion_mult) + ": suspicion timeout ";
  if (k == 0) {
    s += std::to_string(min_ms) + " ms, no confirmations awaited";
  } else {
    s += std::to_string(max_ms) + " ms down to " + std::to_string(min_ms) + " ms after " +
         std::to_string(k) + " independent confirmations";
  }
  return s;
}

struct Bootstrap {
  bool booted;
  int64_t after_ms;
  double wall_s;
};

// Bootstraps a cluster with `setting` and measures both loss rates, printing each row as it
// completes.
Bootstrap RunSetting(const Setting& setting, size_t members, uint64_t seed) {
  auto start = Clock::now();
  SimConfig config;
  config.member = setting.member;
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
  Bootstrap b;
  b.booted = c.RunUntil(everyone, 600'000, 100);
  b.after_ms = c.now() - t0;
  b.wall_s = Since(start);

  for (double loss : {0.0, 0.10}) {
    Row r = Measure(c, loss, rng);
    int64_t spread = r.fail_ms >= 0 && r.detect_ms >= 0 ? r.fail_ms - r.detect_ms : -1;
    std::printf("| %s | %.0f%% | %s | %s | %s | %s | %s | %zu | %llu | %.1f s |\n",
                setting.name.c_str(), r.loss * 100, Ms(r.join_ms).c_str(), Ms(r.fail_ms).c_str(),
                Ms(r.suspect_ms).c_str(), Ms(r.detect_ms).c_str(), Ms(spread).c_str(),
                r.false_detections, static_cast<unsigned long long>(r.messages), r.wall_s);
    std::fflush(stdout);
  }
  return b;
}

void Usage(FILE* out) {
  std::fprintf(out,
               "usage: gossip_sim [members] [seed] [--short-probe-interval-ms=N]\n"
               "                  [--short-probe-timeout-ms=N] [--short-suspicion-mult=N]\n"
               "                  [--no-short | --short-only]\n");
}

// Parses "--name=N" into `value`; returns whether `arg` is that option.
bool IntOption(std::string_view arg, std::string_view name, int64_t& value) {
  if (!arg.starts_with(name) || arg.size() <= name.size() || arg[name.size()] != '=') return false;
  std::string text(arg.substr(name.size() + 1));
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v <= 0) {
    std::fprintf(stderr, "gossip_sim: %.*s needs a positive integer\n",
                 static_cast<int>(name.size()), name.data());
    std::exit(2);
  }
  value = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  size_t members = 1000;
  uint64_t seed = 1;
  int64_t short_probe_ms = 500, short_timeout_ms = 250, short_mult = 2;
  bool lan = true, shorter = true;
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      Usage(stdout);
      return 0;
    } else if (arg == "--no-short") {
      shorter = false;
    } else if (arg == "--short-only") {
      lan = false;
    } else if (IntOption(arg, "--short-probe-interval-ms", short_probe_ms) ||
               IntOption(arg, "--short-probe-timeout-ms", short_timeout_ms) ||
               IntOption(arg, "--short-suspicion-mult", short_mult)) {
    } else if (arg.starts_with("-") || positional >= 2) {
      std::fprintf(stderr, "gossip_sim: unexpected argument %s\n", argv[i]);
      Usage(stderr);
      return 2;
    } else if (positional++ == 0) {
      members = std::strtoull(argv[i], nullptr, 10);
    } else {
      seed = std::strtoull(argv[i], nullptr, 10);
    }
  }
  if (!lan && !shorter) {
    std::fprintf(stderr, "gossip_sim: --no-short and --short-only leave nothing to measure\n");
    return 2;
  }
  if (shorter && short_timeout_ms >= short_probe_ms) {
    std::fprintf(stderr,
                 "gossip_sim: warning: the short probe timeout (%lld ms) is not below its "
                 "interval (%lld ms), so indirect probes get no time\n",
                 static_cast<long long>(short_timeout_ms), static_cast<long long>(short_probe_ms));
  }

  auto start = Clock::now();
  std::vector<Setting> settings;
  if (lan) settings.push_back({"lan", Config{}});
  if (shorter) {
    Setting s{"short", Config{}};
    s.member.probe_interval_ms = short_probe_ms;
    s.member.probe_timeout_ms = short_timeout_ms;
    s.member.suspicion_mult = static_cast<int>(short_mult);
    settings.push_back(s);
  }

  std::printf("gossip simulator: %zu members, latency 1-5 ms, seed %llu\n", members,
              static_cast<unsigned long long>(seed));
  for (const Setting& s : settings) {
    std::printf("  %-5s %s%s\n", s.name.c_str(), Describe(s.member, members).c_str(),
                s.name == "lan" ? " (memberlist's LAN defaults)" : "");
  }
  std::printf(
      "\n| setting | loss | join known by 99.9%% | failure known by 99.9%% | first suspected | "
      "detection (first dead) | dissemination to 99.9%% | false detections | messages | wall "
      "|\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);
  std::vector<Bootstrap> boots;
  for (const Setting& s : settings)
    boots.push_back(RunSetting(s, members, seed));

  std::printf("\n");
  for (size_t i = 0; i < settings.size(); ++i) {
    std::printf("bootstrap (%s): all members know each other %s after the last join (wall %.1f s)\n",
                settings[i].name.c_str(), boots[i].booted ? Ms(boots[i].after_ms).c_str() : "never",
                boots[i].wall_s);
  }
  std::printf(
      "\nEach setting bootstraps its own cluster without loss. Each phase: 10 s to settle at its\n"
      "loss rate, a join, a crash, 20 s more; false detections count every member's fail\n"
      "verdict about a running member. Failure = detection + dissemination; detection is exact,\n"
      "the 99.9%% and first-suspected times are checked every 10 ms. Total wall %.1f s.\n",
      Since(start));
  return 0;
}
