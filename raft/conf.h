// Membership: which nodes vote, which only learn, and how one change moves between the two.
//
// skep changes membership one node at a time (Raft thesis §4.1), not with joint consensus:
// any majority of a configuration and any majority of a configuration that differs from it by
// one voter overlap, which is all single-server changes need. The rules that keep it safe:
//  - a node uses the latest configuration in its log, committed or not (§4.1), so a
//    configuration takes effect when its entry is appended and is undone if the entry is
//    truncated;
//  - a leader proposes a change only when no earlier change is uncommitted;
//  - a leader proposes a change only after an entry of its own term is committed (the fix for
//    the single-server bug found after the thesis, raft-dev, 2015).
// New nodes join as learners and are promoted once caught up, so adding a voter never stalls
// commits while it copies the log (§4.2.1).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "raft/types.h"
#include "skep/proto/raft.pb.h"

namespace skep::raft {

bool IsVoter(const raftpb::ConfState& cs, NodeId id);
bool IsLearner(const raftpb::ConfState& cs, NodeId id);
inline bool IsMember(const raftpb::ConfState& cs, NodeId id) {
  return IsVoter(cs, id) || IsLearner(cs, id);
}
// Voters then learners.
std::vector<NodeId> Members(const raftpb::ConfState& cs);

raftpb::ConfState MakeConfState(std::vector<NodeId> voters, std::vector<NodeId> learners = {});

// What makes `cs` a configuration no member could have produced, or nullopt when it is one:
// voters and learners sorted, without duplicates or node 0, disjoint, and at least one voter.
// Configurations from peers (snapshots, configuration entries) are checked with it.
std::optional<std::string> CheckConfState(const raftpb::ConfState& cs);

// Applies one change to `current`. On success `out` is the new configuration; otherwise the
// status says what was wrong and `out` is untouched.
Status ApplyConfChange(const raftpb::ConfState& current, raftpb::ConfChangeType type, NodeId id,
                       raftpb::ConfState* out);

std::string Describe(const raftpb::ConfState& cs);

// The first entry of a new group's log: index 1, term 1, a configuration entry holding the
// founding configuration. Every founding member starts with it, committed; a node that joins
// later learns the founding configuration by replaying the log like any other entry.
raftpb::Entry BootstrapEntry(const raftpb::ConfState& conf);

// The configurations in effect along the log: the base one (from the snapshot, or the bootstrap
// configuration) and one per configuration entry after it. The active configuration is the
// latest, committed or not (§4.1).
class ConfLog {
 public:
  void Reset(Index index, raftpb::ConfState conf);
  // A configuration entry at `index`, after every index recorded so far.
  void Append(Index index, raftpb::ConfState conf);
  // The entries at `index` and after were truncated from the log.
  void TruncateFrom(Index index);
  // Forgets configurations superseded by one at or below `committed`.
  void Compact(Index committed);

  const raftpb::ConfState& Active() const { return history_.back().second; }
  // The index of the entry that holds the active configuration (the base's index if none).
  Index ActiveIndex() const { return history_.back().first; }
  // The configuration in effect at `index`.
  const raftpb::ConfState& At(Index index) const;

 private:
  // Invariant: never empty; indices strictly increase; history_[0] is the base.
  std::vector<std::pair<Index, raftpb::ConfState>> history_{{0, raftpb::ConfState()}};
};

}  // namespace skep::raft
