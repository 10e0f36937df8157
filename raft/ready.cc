// Ready/Advance, linearizable reads (§6.4), status, the local invariants, and Node.
#include <algorithm>
#include <sstream>

#include "raft/raft.h"

namespace skep::raft {

// ---------------------------------------------------------------------------------------------
// Ready / Advance

bool Raft::HasReady() const {
  if (ready_outstanding_) return false;
  if (!msgs_.empty() || !msgs_after_persist_.empty() || !read_states_.empty()) return true;
  if (!log_.UnstableEntries().empty() || log_.UnstableSnapshot()) return true;
  if (log_.HasNextCommittedEntries()) return true;
  if (const auto* l = leader(); l && (l->broadcast_due || l->read_heartbeat_due)) return true;
  if (prev_hard_state_.term() != term_ || prev_hard_state_.vote() != vote_ ||
      prev_hard_state_.commit() != log_.committed()) {
    return true;
  }
  return SoftState{lead_, role()} != prev_soft_state_;
}

Ready Raft::GetReady() {
  if (ready_outstanding_) throw std::logic_error("raft: GetReady before Advance of the last one");
  if (auto* l = leader()) {
    // Everything proposed since the last Ready leaves in one append per follower.
    if (l->broadcast_due) BroadcastAppend();
    if (l->read_heartbeat_due) BroadcastHeartbeat();
  }
  Ready rd;
  const SoftState ss{lead_, role()};
  if (ss != prev_soft_state_) {
    rd.soft_state = ss;
    prev_soft_state_ = ss;
  }
  raftpb::HardState hs;
  hs.set_term(term_);
  hs.set_vote(vote_);
  hs.set_commit(log_.committed());
  if (hs.term() != prev_hard_state_.term() || hs.vote() != prev_hard_state_.vote() ||
      hs.commit() != prev_hard_state_.commit()) {
    rd.hard_state = hs;
  }
  rd.snapshot = log_.UnstableSnapshot();
  rd.entries = log_.UnstableEntries();
  rd.must_sync = !rd.entries.empty() || rd.snapshot != nullptr ||
                 (rd.hard_state && (rd.hard_state->term() != prev_hard_state_.term() ||
                                    rd.hard_state->vote() != prev_hard_state_.vote()));
  rd.committed_entries = log_.NextCommittedEntries(cfg_.max_committed_size_per_ready);
  rd.messages = std::move(msgs_);
  msgs_.clear();
  rd.persisted_messages = std::move(msgs_after_persist_);
  msgs_after_persist_.clear();
  rd.read_states = std::move(read_states_);
  read_states_.clear();
  ready_outstanding_ = true;
  return rd;
}

std::vector<raftpb::Message> Raft::TakeMessages() {
  if (auto* l = leader()) {
    if (l->broadcast_due) BroadcastAppend();
    if (l->read_heartbeat_due) BroadcastHeartbeat();
  }
  std::vector<raftpb::Message> out = std::move(msgs_);
  msgs_.clear();
  return out;
}

void Raft::Advance(const Ready& rd) {
  ready_outstanding_ = false;
  if (rd.hard_state) prev_hard_state_ = *rd.hard_state;
  if (rd.snapshot) log_.StableSnapTo(rd.snapshot->metadata().index());
  if (!rd.entries.empty()) log_.StableTo(rd.entries.back().index(), rd.entries.back().term());
  if (!rd.committed_entries.empty()) log_.AppliedTo(rd.committed_entries.back().index());
  if (auto* l = leader()) {
    // Our own copy now counts toward commitment.
    auto it = l->progress.find(cfg_.id);
    if (it != l->progress.end() && it->second.MaybeUpdate(log_.StableLastIndex())) MaybeCommit();
  }
}

// ---------------------------------------------------------------------------------------------
// Reads

Status Raft::ReadIndex(std::string context) {
  if (auto* l = leader()) {
    HandleReadRequest(*l, cfg_.id, std::move(context));
    return Status::Ok();
  }
  if (lead_ == kNoNode || role() != Role::kFollower) {
    return {ErrorCode::kNotLeader, "no leader known to confirm a read"};
  }
  raftpb::Message m;
  m.set_type(raftpb::MSG_READ_INDEX);
  m.set_to(lead_);
  m.set_context(std::move(context));
  Send(std::move(m));
  return Status::Ok();
}

void Raft::HandleReadRequest(LeaderState& l, NodeId from, std::string context) {
  if (!CommittedInCurrentTerm()) {
    l.reads_before_commit.push_back({0, 0, from, std::move(context)});
    return;
  }
  const auto& voters = conf_.Active().voters();
  if (voters.size() == 1 && voters[0] == cfg_.id) {
    ReleaseRead({0, log_.committed(), from, std::move(context)});  // no one to ask
    return;
  }
  // Confirm leadership with a heartbeat round; reads in one Ready share the round.
  if (!l.read_heartbeat_due) {
    ++l.read_seq;
    l.read_heartbeat_due = true;
  }
  l.reads.push_back({l.read_seq, log_.committed(), from, std::move(context)});
}

void Raft::AdvanceReads(LeaderState& l) {
  std::vector<Index> acks;
  for (NodeId id : conf_.Active().voters()) {
    if (id == cfg_.id) {
      acks.push_back(l.read_seq);
      continue;
    }
    auto it = l.progress.find(id);
    acks.push_back(it == l.progress.end() ? 0 : it->second.read_ack);
  }
  const uint64_t confirmed = MajorityIndex(std::move(acks));
  while (!l.reads.empty() && l.reads.front().seq <= confirmed) {
    PendingRead r = std::move(l.reads.front());
    l.reads.pop_front();
    ReleaseRead(std::move(r));
  }
}

void Raft::ReleaseRead(PendingRead r) {
  if (r.from == cfg_.id) {
    read_states_.push_back({r.index, std::move(r.context)});
    return;
  }
  raftpb::Message m;
  m.set_type(raftpb::MSG_READ_INDEX_RESP);
  m.set_to(r.from);
  m.set_index(r.index);
  m.set_context(std::move(r.context));
  Send(std::move(m));
}

// ---------------------------------------------------------------------------------------------
// Status and invariants

NodeStatus Raft::GetStatus() const {
  NodeStatus s;
  s.id = cfg_.id;
  s.term = term_;
  s.vote = vote_;
  s.lead = lead_;
  s.role = role();
  s.first_index = log_.FirstIndex();
  s.last_index = log_.LastIndex();
  s.commit = log_.committed();
  s.applied = log_.applied();
  s.committed_in_term = CommittedInCurrentTerm();
  s.conf = conf_.Active();
  s.conf_index = conf_.ActiveIndex();
  if (const auto* l = leader()) {
    s.transferee = l->transferee;
    for (const auto& [id, pr] : l->progress) {
      s.peers.push_back(
          {id, IsVoter(conf_.Active(), id), pr.match, pr.next, pr.state, pr.recent_active});
    }
  }
  return s;
}

std::vector<std::string> Raft::CheckInvariants() const {
  std::vector<std::string> out;
  auto fail = [&](const std::string& what) {
    out.push_back("node " + std::to_string(cfg_.id) + " term " + std::to_string(term_) + ": " +
                  what);
  };
  const Index last = log_.LastIndex();
  if (log_.applied() > log_.committed()) fail("applied > committed");
  if (log_.committed() > last) fail("committed > last index");
  if (log_.applied() + 1 < log_.FirstIndex()) fail("applied below the first index");
  if (log_.LastTerm() > term_) fail("last log term exceeds the current term");

  const auto& unstable = log_.UnstableEntries();
  for (size_t k = 1; k < unstable.size(); ++k) {
    if (unstable[k].index() != unstable[k - 1].index() + 1) fail("unstable entries not contiguous");
    if (unstable[k].term() < unstable[k - 1].term()) fail("unstable terms decrease");
  }
  const raftpb::ConfState& cs = conf_.Active();
  for (NodeId v : cs.voters()) {
    if (IsLearner(cs, v)) fail("node " + std::to_string(v) + " is both voter and learner");
  }
  if (conf_.ActiveIndex() > last) fail("active configuration beyond the log");

  std::visit(
      [&](const auto& st) {
        using T = std::decay_t<decltype(st)>;
        if constexpr (std::is_same_v<T, CandidateState>) {
          if (vote_ != cfg_.id) fail("candidate that did not vote for itself");
        } else if constexpr (std::is_same_v<T, LeaderState>) {
          if (lead_ != cfg_.id) fail("leader that does not know it leads");
          if (vote_ != cfg_.id) fail("leader that did not vote for itself");
          const auto members = Members(cs);
          if (members.size() != st.progress.size()) fail("progress does not match configuration");
          for (const auto& [id, pr] : st.progress) {
            if (std::find(members.begin(), members.end(), id) == members.end()) {
              fail("progress for non-member " + std::to_string(id));
            }
            if (pr.match >= pr.next) fail("match >= next for " + std::to_string(id));
            if (pr.match > last) fail("match beyond last index for " + std::to_string(id));
            if (pr.next > last + 1) fail("next beyond last+1 for " + std::to_string(id));
            if (id == cfg_.id && pr.match > log_.StableLastIndex()) {
              fail("own match counts unpersisted entries");
            }
          }
          if (st.transferee != kNoNode && st.progress.count(st.transferee) == 0) {
            fail("transfer to a non-member");
          }
          for (size_t k = 1; k < st.reads.size(); ++k) {
            if (st.reads[k].seq < st.reads[k - 1].seq) fail("read rounds out of order");
          }
        }
      },
      role_);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Node

Node::Node(const Config& config, const Storage* storage)
    : raft_(std::make_unique<Raft>(config, storage)) {}
Node::~Node() = default;
void Node::Tick() {
  raft_->Tick();
}
Status Node::Step(const raftpb::Message& m) {
  return raft_->Step(m);
}
Status Node::Propose(std::string data, Index* index) {
  return raft_->Propose(std::move(data), index);
}
Status Node::ProposeConfChange(raftpb::ConfChangeType type, NodeId node, std::string context,
                               Index* index) {
  return raft_->ProposeConfChange(type, node, std::move(context), index);
}
Status Node::ReadIndex(std::string context) {
  return raft_->ReadIndex(std::move(context));
}
Status Node::TransferLeadership(NodeId target) {
  return raft_->TransferLeadership(target);
}
Status Node::Campaign() {
  return raft_->Campaign();
}
Status Node::SetTimeouts(int election_tick, int heartbeat_tick) {
  return raft_->SetTimeouts(election_tick, heartbeat_tick);
}
bool Node::HasReady() const {
  return raft_->HasReady();
}
Ready Node::GetReady() {
  return raft_->GetReady();
}
void Node::Advance(const Ready& ready) {
  raft_->Advance(ready);
}
std::vector<raftpb::Message> Node::TakeMessages() {
  return raft_->TakeMessages();
}
NodeStatus Node::GetStatus() const {
  return raft_->GetStatus();
}
NodeId Node::id() const {
  return raft_->id();
}
Term Node::term() const {
  return raft_->term();
}
std::vector<std::string> Node::CheckInvariants() const {
  return raft_->CheckInvariants();
}

}  // namespace skep::raft
