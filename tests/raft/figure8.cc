#include "tests/raft/figure8.h"

#include "tests/raft/harness.h"

namespace skep::raft::testing {
namespace {

// Campaigns until elected: a candidate whose voters already voted in its next term needs a
// second round at the term after.
bool ElectEventually(Cluster& c, NodeId id) {
  for (int round = 0; round < 5; ++round) {
    if (c.Elect(id)) return true;
  }
  return false;
}

void Run(Cluster& c, Figure8Outcome& out) {
  if (!c.Elect(1)) return;
  c.TickAll(2);
  out.commit_before_x = c.node(1).GetStatus().commit;

  // (a) S1 leads; its entry X reaches S2 only.
  for (NodeId id : {3, 4, 5})
    c.Isolate(id);
  const Index x = c.Propose(1, "X");
  const Term tx = c.node(1).GetStatus().term;

  // (b) S1 crashes; S5 wins with the votes of S3 and S4 and writes an entry of its own term at
  // the same index, which nobody else receives.
  c.Crash(1);
  c.Heal();
  c.SetDropFilter(
      [](const raftpb::Message& m) { return m.from() == 5 && m.type() == raftpb::MSG_APPEND; });
  if (!ElectEventually(c, 5)) return;

  // (c) S5 crashes; S1 restarts and wins with S2, S3, S4. It replicates X (one entry per
  // append) while its own new empty entry never leaves: X sits on a majority.
  c.Crash(5);
  c.Heal();
  c.Restart(1);
  c.SetDropFilter([&](const raftpb::Message& m) {
    if (m.from() != 1 || m.type() != raftpb::MSG_APPEND) return false;
    bool beyond = false;
    for (const auto& e : m.entries())
      beyond = beyond || e.index() > x;
    // Appends beyond X are let through only to nodes that lack X, which reject them and so
    // are sent X next.
    return beyond && c.storage(m.to()).LastIndex() >= x;
  });
  if (!ElectEventually(c, 1)) return;
  c.TickAll(3);
  out.replicated_to_majority = true;
  for (NodeId id : {2, 3, 4}) {
    out.replicated_to_majority = out.replicated_to_majority && c.storage(id).TermAt(x) == tx;
  }
  out.commit_in_c = c.node(1).GetStatus().commit;

  // (d) S1 crashes; S5 restarts and wins with S2, S3, S4 (its last term is higher) and
  // overwrites X everywhere.
  c.Crash(1);
  c.Heal();
  c.Restart(5);
  if (ElectEventually(c, 5)) {
    c.TickAll(3);
    out.x_overwritten = true;
    for (NodeId id : {2, 3, 4, 5}) {
      out.x_overwritten = out.x_overwritten && c.storage(id).TermAt(x) != tx;
    }
  }
  for (NodeId id = 1; id <= 5; ++id) {
    for (const auto& e : c.at(id).applied)
      out.x_applied = out.x_applied || e.data() == "X";
  }
}

}  // namespace

Figure8Outcome RunFigure8() {
  Figure8Outcome out;
  Cluster c(5, [](Config& cfg) {
    cfg.pre_vote = false;
    cfg.check_quorum = false;
    cfg.max_size_per_msg = 1;  // one entry per append, so replication can be stopped between
  });
  c.set_throw_on_violation(false);
  try {
    Run(c, out);
  } catch (const std::logic_error& e) {
    // A broken core can leave the cluster wedged; what the checker saw still counts.
    out.violations.push_back(std::string("cluster failed: ") + e.what());
  }
  const auto& found = c.checker().violations();
  out.violations.insert(out.violations.begin(), found.begin(), found.end());
  return out;
}

}  // namespace skep::raft::testing
