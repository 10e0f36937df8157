// A synchronous, deterministic cluster for unit tests of the raft core: every Ready is
// persisted at once to a MemoryStorage, messages are delivered in order until the cluster is
// quiet, and links can be cut per direction.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "raft/conf.h"
#include "raft/memory_storage.h"
#include "raft/node.h"
#include "tests/raft/checker.h"

namespace skep::raft::testing {

struct TestNode {
  Config config;
  std::unique_ptr<MemoryStorage> storage;
  std::unique_ptr<Node> node;
  std::vector<raftpb::Entry> applied;  // every committed entry handed out, in order
  std::vector<ReadState> reads;
  bool up = true;
};

class Cluster {
 public:
  // Bootstraps voters 1..n (all founding members). `tweak` adjusts each node's config.
  explicit Cluster(size_t n, std::function<void(Config&)> tweak = {});

  Node& node(NodeId id) { return *nodes_.at(id).node; }
  TestNode& at(NodeId id) { return nodes_.at(id); }
  MemoryStorage& storage(NodeId id) { return *nodes_.at(id).storage; }

  // Adds a node with an empty log (to join through a configuration change).
  void AddEmptyNode(NodeId id);
  // Replaces node `id`'s state with the given log and term (for the paper's scenarios): the
  // bootstrap entry, then entries of the given terms from index 2.
  void SetLog(NodeId id, Term term, const std::vector<Term>& entry_terms);
  // Stops a node (messages to it are lost) / restarts it from its storage.
  void Crash(NodeId id);
  void Restart(NodeId id);

  void Cut(NodeId a, NodeId b);  // both directions
  void Isolate(NodeId id);       // from everyone
  void Heal();
  // Messages matching the filter are dropped (in addition to cut links).
  void SetDropFilter(std::function<bool(const raftpb::Message&)> f) { drop_ = std::move(f); }

  // Processes Readies and delivers messages until nothing moves.
  void Stabilize();
  void Tick(NodeId id, int n = 1);
  void TickAll(int n = 1);
  // Ticks node `id` until it leads (or gives up after a generous bound).
  bool Elect(NodeId id);
  NodeId Leader() const;
  Index Propose(NodeId id, const std::string& data);

  // Every message sent, for assertions on the traffic.
  std::vector<raftpb::Message> sent;

  // Every Ready is fed to a safety checker; by default a violation throws at once.
  const SafetyChecker& checker() const { return checker_; }
  void set_throw_on_violation(bool b) { throw_on_violation_ = b; }

 private:
  bool ProcessReadies();
  void Deliver(raftpb::Message m);

  raftpb::ConfState founders_;
  std::map<NodeId, TestNode> nodes_;
  std::set<std::pair<NodeId, NodeId>> cut_;
  std::function<bool(const raftpb::Message&)> drop_;
  std::vector<raftpb::Message> queue_;
  std::function<void(Config&)> tweak_;
  SafetyChecker checker_;
  bool throw_on_violation_ = true;
};

std::vector<Term> Terms(const MemoryStorage& s);
std::string EntryData(const raftpb::Entry& e);

}  // namespace skep::raft::testing

namespace raftpb = skep::raftpb;
