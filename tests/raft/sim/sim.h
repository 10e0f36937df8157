// The raft simulator: a cluster of 3 to 7 nodes in one process, on a seeded network that drops,
// duplicates, delays and reorders messages, with partitions, crashes that lose whatever was not
// yet persisted, membership changes, leadership transfers and snapshots. Clients run put, get
// and compare-and-set against a replicated key-value store, retrying through failures.
//
// Safety is checked as the run goes: at most one leader per term, the log matching property,
// leader completeness, and that no two nodes commit or apply different entries at one index,
// plus every node's local invariants after each step. At the end, after the faults stop, the
// cluster must serve every client again, every acknowledged write must be present on every
// member, the members must agree, and the clients' history must be linearizable.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace skep::raft::sim {

struct SimOptions {
  uint64_t seed = 1;
  int fault_ticks = 1500;   // ticks with faults injected
  int heal_ticks = 300;     // then a healthy network, clients still running
  int settle_ticks = 2000;  // at most this long for outstanding requests to finish
  bool trace = false;       // print every event to stderr
  // How likely a newly elected leader is crashed within a few ticks, while faults are on.
  double young_leader_crash = 0.15;
  int young_leader_lifetime = 8;  // at most this many ticks
  // Scales how often partitions and crashes start.
  double fault_rate = 1.0;
};

struct SimStats {
  int initial_voters = 0;
  int nodes_created = 0;
  uint64_t partitions = 0;
  uint64_t leader_isolations = 0;
  uint64_t crashes = 0;
  uint64_t conf_changes = 0;  // committed: learners added, promotions, removals
  uint64_t learners_added = 0;
  uint64_t promotions = 0;
  uint64_t removals = 0;
  uint64_t transfers = 0;
  uint64_t snapshots_created = 0;
  uint64_t snapshots_sent = 0;
  uint64_t snapshots_installed = 0;
  uint64_t leaders = 0;
  uint64_t messages = 0;
  uint64_t dropped = 0;
  uint64_t duplicated = 0;
  uint64_t ops_acked = 0;
  uint64_t reads = 0;
  uint64_t ticks = 0;

  void Add(const SimStats& o);
  std::string Summary() const;
};

struct SimResult {
  uint64_t seed = 0;
  std::vector<std::string> violations;
  SimStats stats;
  std::vector<std::string> trace_tail;  // the last events before the first violation
};

SimResult RunSimulation(const SimOptions& options);

}  // namespace skep::raft::sim
