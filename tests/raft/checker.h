// Cluster-wide safety checks (Raft paper, figure 3), fed with what each node hands out:
//  - election safety: at most one leader per term;
//  - log matching: logs that hold an entry with the same index and term are identical up to it
//    (checked with chained digests of every entry a node holds);
//  - leader completeness: a leader holds every entry committed in earlier terms;
//  - state machine safety: no two nodes commit or apply different entries at one index.
// Used by the simulator and by the synchronous test cluster, so that every scenario is checked.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "raft/node.h"

namespace skep::raft::testing {

class SafetyChecker {
 public:
  // A node starting from what its storage holds (a founder, a joiner, or after SetLog).
  void AddNode(NodeId id, const Storage& storage);
  // A Ready was taken from the node (before it is persisted).
  void OnReady(NodeId id, const Ready& rd, const NodeStatus& status);
  // The Ready was made durable.
  void OnPersisted(NodeId id, const Ready& rd);
  // The node hands `e` to its state machine.
  void OnApply(NodeId id, const raftpb::Entry& e);
  // The node lost whatever it had not persisted.
  void OnCrash(NodeId id);
  // The node's storage dropped entries below `first_index`.
  void OnCompact(NodeId id, Index first_index);

  const std::vector<std::string>& violations() const { return violations_; }

 private:
  using Digest = uint64_t;
  using DigestLog = std::map<Index, std::pair<Term, Digest>>;
  struct NodeLogs {
    DigestLog view;     // including entries not yet persisted
    DigestLog durable;  // what the storage holds
    Index commit_recorded = 0;
  };
  struct Committed {
    Digest digest;
    Term term;  // the earliest term in which the commit was observed
  };

  void Fail(const std::string& what);
  void Update(NodeId id, DigestLog& log, const raftpb::Snapshot* snap,
              const std::vector<raftpb::Entry>& entries, bool check);

  std::map<NodeId, NodeLogs> nodes_;
  std::map<Term, NodeId> leaders_;
  std::map<std::pair<Index, Term>, Digest> entries_seen_;
  std::map<Index, Committed> committed_;
  std::vector<std::string> violations_;
};

}  // namespace skep::raft::testing
