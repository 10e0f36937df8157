// An in-memory network of Memberlist instances on a virtual clock, for tests and the
// benchmark: per-message loss and latency, partitions, crashes and restarts, and optionally an
// endpoint table on every node, replicated through user broadcasts and push-pull.
//
// The simulation is event driven and deterministic for a seed: a message is delivered at its
// arrival time, and a member is ticked only when its NextTickMs comes due. Every message goes
// through Encode/Decode, so the wire format is exercised by every run, and the members'
// invariants are checked after every step (a violation aborts with the reason).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "overlay/gossip/member.h"
#include "overlay/gossip/table.h"

namespace skep::gossip::sim {

struct SimConfig {
  Config member;
  uint64_t seed = 1;
  double loss = 0.0;  // probability that any one message is dropped
  int64_t min_latency_ms = 1;
  int64_t max_latency_ms = 5;
  bool tables = false;           // give every node an EndpointTable
  bool check_invariants = true;  // after every step; the benchmark turns it off for speed
};

// A member's verdict about another, as seen in its events.
struct Observation {
  int64_t at_ms;
  size_t observer;
  MemberEvent event;
};

class Cluster {
 public:
  explicit Cluster(SimConfig config);
  ~Cluster();

  // Starts a member named "n<i>" that knows nobody yet; returns i.
  size_t AddNode();
  void Join(size_t node, size_t seed);
  void Leave(size_t node);
  // A crash loses the member's state; a restart is a new process with a fresh incarnation
  // count that joins through `seed`.
  void Crash(size_t node);
  void Restart(size_t node, size_t seed);
  // An isolated member can reach nobody and nobody can reach it.
  void Isolate(size_t node) { isolated_.insert(node); }
  void Heal(size_t node) { isolated_.erase(node); }
  void SetLoss(double loss) { config_.loss = loss; }

  void RunFor(int64_t ms);
  // Runs until `done` holds (checked every `check_every_ms`) or `max_ms` passed; returns
  // whether it held.
  bool RunUntil(const std::function<bool()>& done, int64_t max_ms, int64_t check_every_ms = 10);

  int64_t now() const { return now_ms_; }
  size_t size() const { return nodes_.size(); }
  bool up(size_t node) const;
  Memberlist& member(size_t node);
  std::string name(size_t node) const { return "n" + std::to_string(node); }

  // The state of `subject` in `observer`'s view, or nullopt when it does not know it.
  std::optional<MemberState> View(size_t observer, size_t subject) const;
  // Among running members other than `subject`, the fraction whose view satisfies `pred`.
  double FractionKnowing(size_t subject,
                         const std::function<bool(std::optional<MemberState>)>& pred) const;
  // Whether every running member sees every other running member alive, at the same
  // incarnation.
  bool Converged() const;

  const std::vector<Observation>& observations() const { return observations_; }
  // Fail events about a member that was running at the time: false detections.
  size_t false_detections() const { return false_detections_; }
  uint64_t messages_sent() const { return messages_sent_; }

  // Endpoint tables (SimConfig::tables).
  EndpointTable& table(size_t node);
  void JoinNetwork(size_t node, const std::string& network);
  void PutEntry(size_t node, const std::string& network, const std::string& key,
                const std::string& value);

 private:
  struct Node;
  struct Event {
    int64_t at_ms;
    uint64_t seq;  // insertion order, for determinism among events at the same time
    size_t node;
    bool tick;            // a tick due, or else a message to deliver
    uint64_t generation;  // for ticks: stale once the node's schedule moved
    std::string bytes;    // for messages
    bool operator>(const Event& o) const {
      return at_ms != o.at_ms ? at_ms > o.at_ms : seq > o.seq;
    }
  };

  void Send(size_t from, std::vector<Message> msgs);
  void AfterStep(size_t node);
  void Schedule(size_t node);
  void Process(const Event& e);
  void BroadcastTable(size_t node, const TableMessage& m);

  SimConfig config_;
  std::mt19937_64 rng_;
  int64_t now_ms_ = 0;
  uint64_t next_seq_ = 0;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::set<size_t> isolated_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  std::vector<Observation> observations_;
  size_t false_detections_ = 0;
  uint64_t messages_sent_ = 0;
};

}  // namespace skep::gossip::sim
