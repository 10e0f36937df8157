#include "tests/raft/sim/sim.h"

#include <algorithm>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <sstream>
#include <variant>

#include "raft/conf.h"
#include "raft/memory_storage.h"
#include "raft/node.h"
#include "tests/raft/checker.h"
#include "tests/raft/sim/kv.h"
#include "tests/raft/sim/linearizability.h"

namespace skep::raft::sim {
namespace raftpb = skep::raftpb;

void SimStats::Add(const SimStats& o) {
  initial_voters += o.initial_voters;
  nodes_created += o.nodes_created;
  partitions += o.partitions;
  leader_isolations += o.leader_isolations;
  crashes += o.crashes;
  conf_changes += o.conf_changes;
  learners_added += o.learners_added;
  promotions += o.promotions;
  removals += o.removals;
  transfers += o.transfers;
  snapshots_created += o.snapshots_created;
  snapshots_sent += o.snapshots_sent;
  snapshots_installed += o.snapshots_installed;
  leaders += o.leaders;
  messages += o.messages;
  dropped += o.dropped;
  duplicated += o.duplicated;
  ops_acked += o.ops_acked;
  reads += o.reads;
  ticks += o.ticks;
}

std::string SimStats::Summary() const {
  std::ostringstream os;
  os << "partitions=" << partitions << " (leader cut off " << leader_isolations << ")"
     << " crashes=" << crashes << " conf_changes=" << conf_changes << " (learners "
     << learners_added << ", promotions " << promotions << ", removals " << removals << ")"
     << " snapshots created/sent/installed=" << snapshots_created << "/" << snapshots_sent << "/"
     << snapshots_installed << " transfers=" << transfers << " leaders=" << leaders
     << " messages=" << messages << " dropped=" << dropped << " duplicated=" << duplicated
     << " ops=" << ops_acked << " reads=" << reads << " ticks=" << ticks;
  return os.str();
}

namespace {

struct ClientRequest {
  Command cmd;
};

struct ClientResponse {
  uint64_t client = 0;
  uint64_t seq = 0;
  bool redirect = false;
  NodeId leader_hint = kNoNode;
  std::string value;
  bool ok = true;
};

struct Envelope {
  int64_t at = 0;
  uint64_t order = 0;
  NodeId from = kNoNode;     // kNoNode: a client
  NodeId to = kNoNode;       // kNoNode: a client
  uint64_t incarnation = 0;  // of the sender when it sent this
  std::variant<raftpb::Message, ClientRequest, ClientResponse> payload;
};

struct Later {
  bool operator()(const Envelope& a, const Envelope& b) const {
    return a.at != b.at ? a.at > b.at : a.order > b.order;
  }
};

struct WaitingRead {
  Index index = 0;
  Command cmd;
};

struct SimNode {
  NodeId id = kNoNode;
  Config config;
  std::unique_ptr<MemoryStorage> storage;  // what survives a crash
  std::unique_ptr<Node> raft;
  bool up = true;
  bool removed = false;  // applied its own removal and shut down
  int64_t crash_at = -1;
  int64_t restart_at = -1;
  uint64_t incarnation = 0;  // bumped by every crash

  std::optional<Ready> persisting;  // taken from raft, not yet durable
  int64_t persist_done = 0;

  KvState kv;
  Index applied = 0;
  raftpb::ConfState applied_conf;
  Index snapshot_index = 0;

  std::map<std::pair<uint64_t, uint64_t>, Command> pending_writes;
  std::vector<WaitingRead> waiting_reads;
};

struct SimClient {
  uint64_t id = 0;
  uint64_t seq = 0;
  bool busy = false;
  size_t op = 0;  // index into the history
  Command cmd;
  NodeId leader_hint = kNoNode;
  int64_t deadline = 0;
  int64_t resend_at = -1;
  int64_t idle_until = 0;
  uint64_t max_acked_write = 0;
  std::map<std::string, std::string> seen;  // last value seen per key, for cas
};

class Simulation {
 public:
  explicit Simulation(const SimOptions& opt) : opt_(opt), rng_(opt.seed) {}

  SimResult Run();

 private:
  // Randomness.
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  int64_t Between(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  template <class T>
  const T& Pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(Between(0, static_cast<int64_t>(v.size()) - 1))];
  }

  void Trace(const std::string& line);
  void Violation(const std::string& what);

  // Nodes.
  SimNode& CreateNode(NodeId id, const raftpb::ConfState* bootstrap);
  void Crash(SimNode& n);
  void Restart(SimNode& n);
  void CheckNode(SimNode& n);
  void Pump(SimNode& n);
  void ObserveReady(SimNode& n, const Ready& rd);
  void CompletePersist(SimNode& n);
  void ApplyEntry(SimNode& n, const raftpb::Entry& e);
  void MaybeSnapshot(SimNode& n);
  void ServeReads(SimNode& n);
  // Records what the safety checker found since the last call.
  void CollectViolations();
  SimNode* Leader();
  std::vector<NodeId> LiveMembers();

  // Network.
  void Send(NodeId from, NodeId to,
            std::variant<raftpb::Message, ClientRequest, ClientResponse> payload);
  void Deliver(Envelope& env);
  bool Blocked(NodeId a, NodeId b) const { return blocked_.count({a, b}) > 0; }
  void HandleRequest(SimNode& n, const Command& cmd);
  void Respond(SimNode& n, const ClientResponse& resp);

  // Faults.
  void InjectFaults();
  void StartPartition();
  void HealPartition();
  void TryConfChange();

  // Clients.
  void RunClients(bool issue_new);
  void SendRequest(SimClient& c);
  void HandleResponse(const ClientResponse& resp);

  void Tick(bool faults, bool issue_new);
  void FinalChecks();
  void DumpState();

  SimOptions opt_;
  std::mt19937_64 rng_;
  int64_t now_ = 0;
  bool faults_on_ = false;
  uint64_t clock_ = 0;  // logical time of invocations and responses
  uint64_t order_ = 0;
  SimStats stats_;
  std::vector<std::string> violations_;
  std::deque<std::string> trace_;
  std::vector<std::string> trace_at_violation_;

  std::map<NodeId, SimNode> nodes_;
  NodeId next_id_ = 1;
  std::priority_queue<Envelope, std::vector<Envelope>, Later> net_;
  std::set<std::pair<NodeId, NodeId>> blocked_;
  int64_t partition_end_ = -1;
  double drop_p_ = 0, dup_p_ = 0;
  int max_delay_ = 3;

  std::vector<SimClient> clients_;
  std::vector<Operation> history_;

  testing::SafetyChecker checker_;
  size_t checker_reported_ = 0;
  std::set<Index> conf_entries_applied_;

  // Per-run tuning, drawn from the seed.
  int snapshot_interval_ = 40;
  int snapshot_keep_ = 5;
  int max_persist_delay_ = 2;
  bool one_entry_per_append_ = false;
};

void Simulation::Trace(const std::string& line) {
  std::string s = "[" + std::to_string(now_) + "] " + line;
  if (opt_.trace) std::cerr << s << "\n";
  trace_.push_back(std::move(s));
  if (trace_.size() > 400) trace_.pop_front();
}

void Simulation::Violation(const std::string& what) {
  if (violations_.empty()) trace_at_violation_.assign(trace_.begin(), trace_.end());
  if (violations_.size() < 20) violations_.push_back("tick " + std::to_string(now_) + ": " + what);
  Trace("VIOLATION: " + what);
}

// ---------------------------------------------------------------------------------------------
// Nodes

SimNode& Simulation::CreateNode(NodeId id, const raftpb::ConfState* bootstrap) {
  SimNode& n = nodes_[id];
  n.id = id;
  n.config.id = id;
  n.config.seed = opt_.seed * 1000 + id;
  n.config.election_tick = 10;
  n.config.heartbeat_tick = 1;
  n.config.max_inflight_msgs = static_cast<size_t>(Between(2, 64));
  // Sometimes one entry per append, so that a follower can hold an older entry without the
  // entries after it.
  n.config.max_size_per_msg = one_entry_per_append_ ? 1 : static_cast<uint64_t>(Between(64, 2048));
  n.config.snapshot_chunk_size = static_cast<uint64_t>(Between(32, 512));
  n.config.snapshot_chunks_in_flight = static_cast<size_t>(Between(1, 4));
  n.storage =
      bootstrap ? std::make_unique<MemoryStorage>(*bootstrap) : std::make_unique<MemoryStorage>();
  n.raft = std::make_unique<Node>(n.config, n.storage.get());
  n.applied_conf = n.storage->SnapshotMeta().conf_state();
  checker_.AddNode(id, *n.storage);
  CollectViolations();
  ++stats_.nodes_created;
  return n;
}

void Simulation::Crash(SimNode& n) {
  n.up = false;
  ++n.incarnation;
  n.crash_at = -1;
  n.persisting.reset();  // never made durable
  n.pending_writes.clear();
  n.waiting_reads.clear();
  ++stats_.crashes;
  Trace("crash node " + std::to_string(n.id));
}

void Simulation::Restart(SimNode& n) {
  auto snap = n.storage->Snapshot();
  n.config.applied = snap->metadata().index();
  n.raft = std::make_unique<Node>(n.config, n.storage.get());
  if (!n.kv.Restore(snap->data())) Violation("node " + std::to_string(n.id) + ": bad snapshot");
  n.applied = snap->metadata().index();
  n.applied_conf = snap->metadata().conf_state();
  n.snapshot_index = snap->metadata().index();
  checker_.OnCrash(n.id);
  n.up = true;
  n.restart_at = -1;
  Trace("restart node " + std::to_string(n.id) + " at applied " + std::to_string(n.applied));
}

void Simulation::CheckNode(SimNode& n) {
  for (const auto& v : n.raft->CheckInvariants())
    Violation(v);
}

void Simulation::CollectViolations() {
  const auto& found = checker_.violations();
  while (checker_reported_ < found.size())
    Violation(found[checker_reported_++]);
}

void Simulation::ObserveReady(SimNode& n, const Ready& rd) {
  const NodeStatus st = n.raft->GetStatus();
  checker_.OnReady(n.id, rd, st);
  CollectViolations();
  if (rd.soft_state && rd.soft_state->role == Role::kLeader) {
    ++stats_.leaders;
    Trace("node " + std::to_string(n.id) + " leads term " + std::to_string(st.term) + " " +
          Describe(st.conf));
    // Leaders that die young leave entries of their term on some nodes only: the situation of
    // the paper's figure 8, where committing by counting replicas of an older term goes wrong.
    if (faults_on_ && n.crash_at < 0 && Chance(opt_.young_leader_crash)) {
      n.crash_at = now_ + Between(1, opt_.young_leader_lifetime);
    }
  }
}

void Simulation::Pump(SimNode& n) {
  for (int guard = 0; guard < 64 && n.up; ++guard) {
    if (n.persisting) {
      if (now_ < n.persist_done) return;
      CompletePersist(n);
      continue;
    }
    if (!n.raft->HasReady()) return;
    Ready rd = n.raft->GetReady();
    ObserveReady(n, rd);
    for (auto& m : rd.messages) {
      const NodeId to = m.to();
      Send(n.id, to, std::move(m));
    }
    rd.messages.clear();
    n.persisting = std::move(rd);
    n.persist_done = now_ + Between(0, max_persist_delay_);
    CheckNode(n);
  }
}

void Simulation::CompletePersist(SimNode& n) {
  Ready rd = std::move(*n.persisting);
  n.persisting.reset();
  // A write that need not be synced is taken as lost, the worst a crash could do to it.
  if (rd.must_sync) {
    n.storage->Save(rd.hard_state ? &*rd.hard_state : nullptr, rd.entries, rd.snapshot.get());
  }
  checker_.OnPersisted(n.id, rd);
  for (auto& m : rd.persisted_messages) {
    const NodeId to = m.to();
    Send(n.id, to, std::move(m));
  }
  if (rd.snapshot) {
    ++stats_.snapshots_installed;
    const auto& meta = rd.snapshot->metadata();
    if (!n.kv.Restore(rd.snapshot->data())) {
      Violation("node " + std::to_string(n.id) + " received a snapshot that does not parse");
    }
    n.applied = meta.index();
    n.applied_conf = meta.conf_state();
    n.snapshot_index = meta.index();
    Trace("node " + std::to_string(n.id) + " installs snapshot at " + std::to_string(meta.index()));
  }
  for (const auto& e : rd.committed_entries) {
    if (n.removed) break;
    ApplyEntry(n, e);
  }
  for (const auto& r : rd.read_states) {
    auto cmd = Decode(r.context);
    if (!cmd) {
      Violation("read state with a context that does not parse");
      continue;
    }
    n.waiting_reads.push_back({r.index, *cmd});
  }
  n.raft->Advance(rd);
  CheckNode(n);
  if (n.removed) {
    n.up = false;
    Trace("node " + std::to_string(n.id) + " applied its removal and stops");
    return;
  }
  MaybeSnapshot(n);
  ServeReads(n);
}

void Simulation::ApplyEntry(SimNode& n, const raftpb::Entry& e) {
  if (e.index() != n.applied + 1) {
    Violation("node " + std::to_string(n.id) + " applies " + std::to_string(e.index()) + " after " +
              std::to_string(n.applied));
  }
  checker_.OnApply(n.id, e);
  CollectViolations();
  n.applied = e.index();
  if (e.type() == raftpb::ENTRY_CONF_CHANGE) {
    raftpb::ConfChange cc;
    if (!cc.ParseFromString(e.data())) {
      Violation("configuration entry does not parse");
      return;
    }
    n.applied_conf = cc.result();
    if (cc.node_id() != kNoNode && conf_entries_applied_.insert(e.index()).second) {
      ++stats_.conf_changes;
      if (cc.type() == raftpb::CONF_ADD_LEARNER) ++stats_.learners_added;
      if (cc.type() == raftpb::CONF_PROMOTE) ++stats_.promotions;
      if (cc.type() == raftpb::CONF_REMOVE) ++stats_.removals;
      Trace("committed configuration " + Describe(cc.result()) + " at " +
            std::to_string(e.index()));
    }
    // A node added later replays older configurations that do not name it yet; only its own
    // removal stops it.
    if (cc.type() == raftpb::CONF_REMOVE && cc.node_id() == n.id) n.removed = true;
    return;
  }
  if (e.data().empty()) return;  // a new leader's empty entry
  auto cmd = Decode(e.data());
  if (!cmd) {
    Violation("entry " + std::to_string(e.index()) + " does not decode");
    return;
  }
  const Outcome out = n.kv.Apply(*cmd);
  auto key = std::make_pair(cmd->client, cmd->seq);
  if (n.pending_writes.erase(key)) {
    ClientResponse resp;
    resp.client = cmd->client;
    resp.seq = cmd->seq;
    resp.ok = out.ok;
    Respond(n, resp);
  }
}

void Simulation::MaybeSnapshot(SimNode& n) {
  if (n.applied < n.snapshot_index + static_cast<Index>(snapshot_interval_)) return;
  const Index compact_to = n.applied > static_cast<Index>(snapshot_keep_)
                               ? n.applied - static_cast<Index>(snapshot_keep_)
                               : 0;
  n.storage->CreateSnapshot(n.applied, n.applied_conf, n.kv.Serialize(), compact_to);
  n.snapshot_index = n.applied;
  ++stats_.snapshots_created;
  checker_.OnCompact(n.id, n.storage->FirstIndex());
}

void Simulation::ServeReads(SimNode& n) {
  auto& reads = n.waiting_reads;
  for (auto it = reads.begin(); it != reads.end();) {
    if (it->index <= n.applied) {
      ClientResponse resp;
      resp.client = it->cmd.client;
      resp.seq = it->cmd.seq;
      resp.value = n.kv.Get(it->cmd.key);
      Respond(n, resp);
      it = reads.erase(it);
    } else {
      ++it;
    }
  }
}

SimNode* Simulation::Leader() {
  SimNode* best = nullptr;
  Term best_term = 0;
  for (auto& [id, n] : nodes_) {
    if (!n.up) continue;
    const NodeStatus st = n.raft->GetStatus();
    if (st.role == Role::kLeader && st.term >= best_term) {
      best = &n;
      best_term = st.term;
    }
  }
  return best;
}

std::vector<NodeId> Simulation::LiveMembers() {
  std::vector<NodeId> out;
  for (auto& [id, n] : nodes_) {
    if (n.up && !n.removed) out.push_back(id);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Network

void Simulation::Send(NodeId from, NodeId to,
                      std::variant<raftpb::Message, ClientRequest, ClientResponse> payload) {
  ++stats_.messages;
  if (auto* m = std::get_if<raftpb::Message>(&payload)) {
    if (m->type() == raftpb::MSG_SNAPSHOT && m->snapshot_offset() == 0) ++stats_.snapshots_sent;
  }
  if (Chance(drop_p_)) {
    ++stats_.dropped;
    return;
  }
  auto delay = [&] {
    // Mostly short delays; now and then a long one, which reorders messages.
    return Chance(0.02) ? Between(5, 40) : Between(1, max_delay_);
  };
  const uint64_t inc = from == kNoNode ? 0 : nodes_.at(from).incarnation;
  if (Chance(dup_p_)) {
    ++stats_.duplicated;
    net_.push(Envelope{now_ + delay(), order_++, from, to, inc, payload});
  }
  net_.push(Envelope{now_ + delay(), order_++, from, to, inc, std::move(payload)});
}

void Simulation::Deliver(Envelope& env) {
  if (env.from != kNoNode && nodes_.at(env.from).incarnation != env.incarnation && Chance(0.5)) {
    // The sender crashed while this was still in its buffers.
    ++stats_.dropped;
    return;
  }
  if (auto* resp = std::get_if<ClientResponse>(&env.payload)) {
    HandleResponse(*resp);
    return;
  }
  auto it = nodes_.find(env.to);
  if (it == nodes_.end() || !it->second.up) return;
  SimNode& n = it->second;
  if (auto* req = std::get_if<ClientRequest>(&env.payload)) {
    HandleRequest(n, req->cmd);
    return;
  }
  if (Blocked(env.from, env.to)) return;
  const auto& m = std::get<raftpb::Message>(env.payload);
  Status st = n.raft->Step(m);
  if (!st.ok()) Violation("node " + std::to_string(n.id) + " refused a message: " + st.message());
  CheckNode(n);
}

void Simulation::HandleRequest(SimNode& n, const Command& cmd) {
  ClientResponse redirect;
  redirect.client = cmd.client;
  redirect.seq = cmd.seq;
  redirect.redirect = true;
  if (cmd.kind == OpKind::kGet) {
    Status st = n.raft->ReadIndex(Encode(cmd));
    if (!st.ok()) {
      redirect.leader_hint = n.raft->GetStatus().lead;
      Respond(n, redirect);
    }
    return;
  }
  // Proposed again even if this node proposed it before: that entry may have been truncated
  // since. The sessions in the state machine make the copies harmless.
  const auto key = std::make_pair(cmd.client, cmd.seq);
  Status st = n.raft->Propose(Encode(cmd));
  if (!st.ok()) {
    redirect.leader_hint = n.raft->GetStatus().lead;
    Respond(n, redirect);
    return;
  }
  n.pending_writes[key] = cmd;
}

void Simulation::Respond(SimNode& n, const ClientResponse& resp) {
  Send(n.id, kNoNode, resp);
}

// ---------------------------------------------------------------------------------------------
// Faults

void Simulation::InjectFaults() {
  if (partition_end_ >= 0 && now_ >= partition_end_) HealPartition();
  if (partition_end_ < 0 && Chance(opt_.fault_rate / 120)) StartPartition();

  if (Chance(opt_.fault_rate / 150)) {
    std::vector<NodeId> up = LiveMembers();
    if (!up.empty()) {
      SimNode* lead = Leader();
      SimNode& victim = (lead && Chance(0.3)) ? *lead : nodes_.at(Pick(up));
      Crash(victim);
      victim.restart_at = now_ + Between(5, 150);
    }
  }
  if (Chance(1.0 / 80)) TryConfChange();
  if (Chance(1.0 / 300)) {
    if (SimNode* lead = Leader()) {
      const NodeStatus st = lead->raft->GetStatus();
      std::vector<NodeId> voters(st.conf.voters().begin(), st.conf.voters().end());
      voters.erase(std::remove(voters.begin(), voters.end(), lead->id), voters.end());
      if (!voters.empty()) {
        const NodeId target = Pick(voters);
        if (lead->raft->TransferLeadership(target).ok()) {
          ++stats_.transfers;
          Trace("transfer leadership " + std::to_string(lead->id) + " -> " +
                std::to_string(target));
        }
      }
    }
  }
  // The network's quality drifts over the run.
  if (Chance(1.0 / 200)) {
    drop_p_ = Chance(0.5) ? 0.0 : std::uniform_real_distribution<double>(0, 0.15)(rng_);
    dup_p_ = Chance(0.5) ? 0.0 : std::uniform_real_distribution<double>(0, 0.05)(rng_);
    max_delay_ = static_cast<int>(Between(1, 4));
  }
}

void Simulation::StartPartition() {
  std::vector<NodeId> ids;
  for (auto& [id, n] : nodes_) {
    if (!n.removed) ids.push_back(id);
  }
  if (ids.size() < 2) return;
  std::set<NodeId> side;
  const double kind = std::uniform_real_distribution<double>(0, 1)(rng_);
  SimNode* lead = Leader();
  std::string what;
  if (kind < 0.35 && lead != nullptr) {
    // The leader lands in the minority, alone or with one other node.
    side.insert(lead->id);
    if (ids.size() >= 5 && Chance(0.5)) {
      NodeId other = Pick(ids);
      if (other != lead->id) side.insert(other);
    }
    ++stats_.leader_isolations;
    what = "leader " + std::to_string(lead->id) + " cut off";
  } else if (kind < 0.6) {
    side.insert(Pick(ids));
    what = "one node cut off";
  } else {
    std::shuffle(ids.begin(), ids.end(), rng_);
    const size_t cut = static_cast<size_t>(Between(1, static_cast<int64_t>(ids.size()) - 1));
    side.insert(ids.begin(), ids.begin() + static_cast<long>(cut));
    what = "random split";
  }
  std::string members;
  for (NodeId a : side)
    members += " " + std::to_string(a);
  for (auto& [b, n] : nodes_) {
    if (side.count(b)) continue;
    for (NodeId a : side) {
      blocked_.insert({a, b});
      blocked_.insert({b, a});
    }
  }
  partition_end_ = now_ + Between(20, 300);
  ++stats_.partitions;
  Trace("partition (" + what + "):" + members + " | rest");
}

void Simulation::HealPartition() {
  blocked_.clear();
  partition_end_ = -1;
  Trace("partition healed");
}

void Simulation::TryConfChange() {
  SimNode* lead = Leader();
  if (lead == nullptr) return;
  const NodeStatus st = lead->raft->GetStatus();
  const auto& conf = st.conf;
  // Promote a learner that has caught up.
  for (const auto& p : st.peers) {
    if (!p.voter && p.match >= st.commit && Chance(0.8)) {
      if (lead->raft->ProposeConfChange(raftpb::CONF_PROMOTE, p.id).ok()) {
        Trace("propose promote " + std::to_string(p.id));
      }
      return;
    }
  }
  const size_t members = conf.voters_size() + conf.learners_size();
  if (members < 7 && Chance(0.5)) {
    const NodeId id = next_id_;
    if (lead->raft->ProposeConfChange(raftpb::CONF_ADD_LEARNER, id).ok()) {
      ++next_id_;
      CreateNode(id, nullptr);
      Trace("propose add learner " + std::to_string(id));
    }
    return;
  }
  std::vector<NodeId> removable(conf.learners().begin(), conf.learners().end());
  if (conf.voters_size() > 3)
    removable.insert(removable.end(), conf.voters().begin(), conf.voters().end());
  if (removable.empty()) return;
  const NodeId victim = Pick(removable);
  if (lead->raft->ProposeConfChange(raftpb::CONF_REMOVE, victim).ok()) {
    Trace("propose remove " + std::to_string(victim));
  }
}

// ---------------------------------------------------------------------------------------------
// Clients

void Simulation::SendRequest(SimClient& c) {
  std::vector<NodeId> targets;
  for (auto& [id, n] : nodes_) {
    if (!n.removed) targets.push_back(id);
  }
  NodeId to = c.leader_hint;
  if (to == kNoNode || nodes_.count(to) == 0 || nodes_.at(to).removed) to = Pick(targets);
  Send(kNoNode, to, ClientRequest{c.cmd});
  c.deadline = now_ + 40;
  c.resend_at = -1;
}

void Simulation::RunClients(bool issue_new) {
  static const std::vector<std::string> kKeys = {"a", "b", "c"};
  for (auto& c : clients_) {
    if (c.busy) {
      if (c.resend_at >= 0 && now_ >= c.resend_at) {
        SendRequest(c);
      } else if (now_ >= c.deadline) {
        c.leader_hint = kNoNode;  // whoever we asked is gone or cut off; try someone else
        SendRequest(c);
      }
      continue;
    }
    if (!issue_new || now_ < c.idle_until) continue;
    Command cmd;
    cmd.client = c.id;
    cmd.seq = ++c.seq;
    cmd.key = Pick(kKeys);
    const double r = std::uniform_real_distribution<double>(0, 1)(rng_);
    cmd.kind = r < 0.4 ? OpKind::kPut : (r < 0.75 ? OpKind::kGet : OpKind::kCas);
    if (cmd.kind != OpKind::kGet)
      cmd.value = "v" + std::to_string(c.id) + "." + std::to_string(cmd.seq);
    if (cmd.kind == OpKind::kCas) cmd.expected = c.seen[cmd.key];
    Operation op;
    op.client = c.id;
    op.seq = cmd.seq;
    op.kind = cmd.kind;
    op.key = cmd.key;
    op.value = cmd.value;
    op.expected = cmd.expected;
    op.invoked = ++clock_;
    history_.push_back(op);
    c.op = history_.size() - 1;
    c.cmd = cmd;
    c.busy = true;
    SendRequest(c);
  }
}

void Simulation::HandleResponse(const ClientResponse& resp) {
  if (resp.client == 0 || resp.client > clients_.size()) return;
  SimClient& c = clients_[resp.client - 1];
  if (!c.busy || resp.seq != c.cmd.seq) return;  // an answer to an earlier attempt
  if (resp.redirect) {
    c.leader_hint = resp.leader_hint;
    if (c.resend_at < 0) c.resend_at = now_ + 1;
    return;
  }
  Operation& op = history_[c.op];
  op.returned = ++clock_;
  op.result = resp.value;
  op.ok = resp.ok;
  c.busy = false;
  c.idle_until = now_ + Between(0, 4);
  ++stats_.ops_acked;
  if (op.kind == OpKind::kGet) {
    ++stats_.reads;
    c.seen[op.key] = resp.value;
  } else {
    c.max_acked_write = op.seq;
    if (op.kind == OpKind::kPut || op.ok) c.seen[op.key] = op.value;
  }
}

// ---------------------------------------------------------------------------------------------
// The run

void Simulation::Tick(bool faults, bool issue_new) {
  ++now_;
  faults_on_ = faults;
  if (faults) InjectFaults();
  for (auto& [id, n] : nodes_) {
    if (n.up && n.crash_at >= 0 && now_ >= n.crash_at) {
      Crash(n);
      n.restart_at = now_ + Between(5, 60);
    }
    if (!n.up && !n.removed && n.restart_at >= 0 && now_ >= n.restart_at) Restart(n);
  }
  while (!net_.empty() && net_.top().at <= now_) {
    Envelope env = net_.top();
    net_.pop();
    Deliver(env);
  }
  for (auto& [id, n] : nodes_) {
    if (!n.up) continue;
    n.raft->Tick();
    CheckNode(n);
  }
  // Nodes created while pumping (none today) would invalidate nothing: std::map is stable.
  for (auto& [id, n] : nodes_) {
    if (n.up) Pump(n);
  }
  for (auto& [id, n] : nodes_) {
    if (n.up) ServeReads(n);
  }
  RunClients(issue_new);
}

SimResult Simulation::Run() {
  // Draw the run's shape from the seed.
  one_entry_per_append_ = Chance(0.3);
  const int voters = static_cast<int>(Between(3, 5));
  stats_.initial_voters = voters;
  std::vector<NodeId> ids;
  for (int i = 0; i < voters; ++i)
    ids.push_back(next_id_++);
  const raftpb::ConfState conf = MakeConfState(ids);
  for (NodeId id : ids)
    CreateNode(id, &conf);
  snapshot_interval_ = static_cast<int>(Between(15, 60));
  snapshot_keep_ = static_cast<int>(Between(0, 10));
  max_persist_delay_ = static_cast<int>(Between(0, 3));
  const int nclients = static_cast<int>(Between(3, 5));
  for (int i = 0; i < nclients; ++i) {
    SimClient c;
    c.id = static_cast<uint64_t>(i + 1);
    clients_.push_back(c);
  }
  Trace("start: " + Describe(conf) + ", " + std::to_string(nclients) + " clients");

  for (int t = 0; t < opt_.fault_ticks && violations_.empty(); ++t)
    Tick(true, true);

  // The faults stop: the network heals, crashed nodes come back.
  HealPartition();
  drop_p_ = dup_p_ = 0;
  max_delay_ = 2;
  for (auto& [id, n] : nodes_) {
    if (!n.up && !n.removed) Restart(n);
  }
  Trace("faults stop");
  for (int t = 0; t < opt_.heal_ticks && violations_.empty(); ++t)
    Tick(false, true);
  // No new requests; everything outstanding must finish.
  int waited = 0;
  auto busy = [&] {
    return std::any_of(clients_.begin(), clients_.end(), [](const SimClient& c) { return c.busy; });
  };
  while (busy() && waited < opt_.settle_ticks && violations_.empty()) {
    Tick(false, false);
    ++waited;
  }
  if (busy() && violations_.empty()) {
    DumpState();
    Violation("liveness: clients still waiting " + std::to_string(opt_.settle_ticks) +
              " ticks after the faults stopped");
  }
  if (violations_.empty()) FinalChecks();

  SimResult res;
  res.seed = opt_.seed;
  stats_.ticks = static_cast<uint64_t>(now_);
  res.stats = stats_;
  res.violations = violations_;
  res.trace_tail = trace_at_violation_;
  return res;
}

void Simulation::DumpState() {
  for (auto& [id, n] : nodes_) {
    const NodeStatus st = n.raft->GetStatus();
    std::ostringstream os;
    os << "node " << id << (n.up ? " up" : " down") << (n.removed ? " removed" : "") << " "
       << ToString(st.role) << " term=" << st.term << " lead=" << st.lead << " commit=" << st.commit
       << " applied=" << n.applied << " last=" << st.last_index << " first=" << st.first_index
       << " " << Describe(st.conf) << "@" << st.conf_index
       << " persisting=" << (n.persisting ? 1 : 0);
    for (const auto& p : st.peers) {
      os << " [" << p.id << " " << ToString(p.state) << " m=" << p.match << " n=" << p.next
         << (p.recent_active ? " active" : "") << "]";
    }
    Trace(os.str());
  }
  for (const auto& c : clients_) {
    if (!c.busy) continue;
    Trace("client " + std::to_string(c.id) + " waits on #" + std::to_string(c.cmd.seq) + " (kind " +
          std::to_string(static_cast<int>(c.cmd.kind)) + ") hint " + std::to_string(c.leader_hint));
  }
}

void Simulation::FinalChecks() {
  // Let every member apply everything committed.
  SimNode* lead = nullptr;
  for (int t = 0; t < 500; ++t) {
    lead = Leader();
    bool done = lead != nullptr;
    if (lead != nullptr) {
      const NodeStatus st = lead->raft->GetStatus();
      for (NodeId id : Members(st.conf)) {
        auto it = nodes_.find(id);
        if (it == nodes_.end() || !it->second.up || it->second.applied < st.commit) done = false;
      }
    }
    if (done) break;
    Tick(false, false);
  }
  if (lead == nullptr) {
    Violation("liveness: no leader after the faults stopped");
    return;
  }
  const NodeStatus st = lead->raft->GetStatus();
  for (NodeId id : Members(st.conf)) {
    SimNode& n = nodes_.at(id);
    if (!n.up || n.applied < st.commit) {
      Violation("liveness: member " + std::to_string(id) + " did not catch up (applied " +
                std::to_string(n.applied) + " of " + std::to_string(st.commit) + ")");
      continue;
    }
    if (n.applied == lead->applied && !(n.kv == lead->kv)) {
      Violation("members " + std::to_string(id) + " and " + std::to_string(lead->id) +
                " disagree on the state at index " + std::to_string(n.applied));
    }
    for (const auto& c : clients_) {
      if (n.kv.LastSeq(c.id) < c.max_acked_write) {
        Violation("acknowledged write of client " + std::to_string(c.id) + " #" +
                  std::to_string(c.max_acked_write) + " is missing on node " + std::to_string(id));
      }
    }
  }
  const CheckResult lin = CheckLinearizable(history_);
  if (!lin.linearizable) Violation("linearizability: " + lin.explanation);
}

}  // namespace

SimResult RunSimulation(const SimOptions& options) {
  Simulation sim(options);
  return sim.Run();
}

}  // namespace skep::raft::sim
