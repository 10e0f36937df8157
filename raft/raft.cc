// Elections, terms and the dispatch of messages. Replication, snapshots, reads and membership
// are in replication.cc; Ready/Advance and status in ready.cc.
#include "raft/raft.h"

#include <algorithm>

namespace skep::raft {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace

const char* ToString(Role r) {
  switch (r) {
    case Role::kFollower:
      return "follower";
    case Role::kPreCandidate:
      return "pre-candidate";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
  }
  return "?";
}

Raft::Raft(const Config& config, const Storage* storage)
    : cfg_(config),
      storage_(storage),
      rng_(config.seed ^ (config.id * 0x9E3779B97F4A7C15ULL)),
      log_(storage, config.applied) {
  if (cfg_.id == kNoNode) throw std::invalid_argument("raft: node id 0 is reserved");
  if (cfg_.heartbeat_tick <= 0 || cfg_.election_tick <= cfg_.heartbeat_tick) {
    throw std::invalid_argument("raft: election_tick must exceed heartbeat_tick > 0");
  }
  if (cfg_.max_inflight_msgs == 0 || cfg_.snapshot_chunk_size == 0 ||
      cfg_.snapshot_chunks_in_flight == 0) {
    throw std::invalid_argument("raft: flow-control limits must be positive");
  }
  const raftpb::HardState hs = storage->HardState();
  term_ = hs.term();
  vote_ = hs.vote();
  prev_hard_state_ = hs;
  prev_hard_state_.set_commit(log_.committed());

  // The active configuration: the snapshot's, then the latest configuration entry after it.
  const raftpb::SnapshotMetadata snap = storage->SnapshotMeta();
  conf_.Reset(snap.index(), snap.conf_state());
  for (Index lo = std::max(snap.index() + 1, log_.FirstIndex()); lo <= log_.LastIndex();) {
    std::vector<raftpb::Entry> batch;
    if (!log_.Entries(lo, log_.LastIndex() + 1, 16 << 20, &batch) || batch.empty()) break;
    TrackConfEntries(batch);
    lo = batch.back().index() + 1;
  }
  conf_.Compact(log_.committed());
  BecomeFollower(term_, kNoNode);
}

Role Raft::role() const {
  return std::visit(Overloaded{[](const FollowerState&) { return Role::kFollower; },
                               [](const PreCandidateState&) { return Role::kPreCandidate; },
                               [](const CandidateState&) { return Role::kCandidate; },
                               [](const LeaderState&) { return Role::kLeader; }},
                    role_);
}

bool Raft::CommittedInCurrentTerm() const {
  auto t = log_.TermAt(log_.committed());
  return t && *t == term_;
}

// ---------------------------------------------------------------------------------------------
// Role transitions

void Raft::Reset(Term term) {
  if (term != term_) {
    term_ = term;
    vote_ = kNoNode;
  }
  lead_ = kNoNode;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  quorum_elapsed_ = 0;
  std::uniform_int_distribution<int> dist(cfg_.election_tick, 2 * cfg_.election_tick - 1);
  randomized_election_timeout_ = dist(rng_);
}

void Raft::BecomeFollower(Term term, NodeId lead) {
  Reset(term);
  lead_ = lead;
  role_ = FollowerState{};
}

void Raft::BecomePreCandidate() {
  // Pre-vote changes neither term nor vote: a node that cannot win disturbs nobody (§9.6).
  lead_ = kNoNode;
  role_ = PreCandidateState{};
}

void Raft::BecomeCandidate() {
  Reset(term_ + 1);
  vote_ = cfg_.id;
  role_ = CandidateState{};
}

void Raft::BecomeLeader() {
  Reset(term_);
  lead_ = cfg_.id;
  role_ = LeaderState{};
  auto& l = std::get<LeaderState>(role_);
  SyncProgress(l);
  if (auto it = l.progress.find(cfg_.id); it != l.progress.end()) {
    it->second.match = log_.StableLastIndex();
    it->second.next = log_.LastIndex() + 1;
    it->second.BecomeReplicate();
    it->second.recent_active = true;
  }
  // An empty entry of the new term: committing it commits everything before it (§5.4.2) and
  // tells the leader its commit index is current (§6.4).
  raftpb::Entry noop;
  AppendEntries({std::move(noop)});
}

void Raft::Hup(CampaignType type) {
  if (leader() != nullptr || !Promotable()) return;
  StartCampaign(type);
}

void Raft::StartCampaign(CampaignType type) {
  const bool pre = type == CampaignType::kPreElection;
  if (pre) {
    BecomePreCandidate();
  } else {
    BecomeCandidate();
  }
  auto& votes =
      pre ? std::get<PreCandidateState>(role_).votes : std::get<CandidateState>(role_).votes;
  RecordVote(votes, cfg_.id, true);
  if (Tally(votes) == VoteResult::kWon) {
    // A group of one: no one to ask.
    if (pre) {
      StartCampaign(CampaignType::kElection);
    } else {
      BecomeLeader();
    }
    return;
  }
  for (NodeId id : conf_.Active().voters()) {
    if (id == cfg_.id) continue;
    raftpb::Message m;
    m.set_type(pre ? raftpb::MSG_PRE_VOTE : raftpb::MSG_VOTE);
    m.set_to(id);
    m.set_term(pre ? term_ + 1 : term_);
    m.set_index(log_.LastIndex());
    m.set_log_term(log_.LastTerm());
    m.set_transfer(type == CampaignType::kTransfer);
    Send(std::move(m));
  }
}

void Raft::RecordVote(std::map<NodeId, bool>& votes, NodeId from, bool granted) {
  votes.emplace(from, granted);  // the first answer counts; duplicates are ignored
}

VoteResult Raft::Tally(const std::map<NodeId, bool>& votes) const {
  size_t granted = 0, rejected = 0;
  for (NodeId id : conf_.Active().voters()) {
    auto it = votes.find(id);
    if (it == votes.end()) continue;
    (it->second ? granted : rejected)++;
  }
  return TallyVotes(conf_.Active().voters_size(), granted, rejected);
}

// ---------------------------------------------------------------------------------------------
// Time

void Raft::Tick() {
  if (auto* l = leader()) {
    ++heartbeat_elapsed_;
    if (++election_elapsed_ >= cfg_.election_tick) election_elapsed_ = 0;
    if (cfg_.check_quorum &&
        ++quorum_elapsed_ >= cfg_.election_tick * std::max(1, cfg_.check_quorum_timeouts)) {
      quorum_elapsed_ = 0;
      // Step down unless a quorum answered during the last window (§6.2).
      size_t active = 0;
      for (NodeId id : conf_.Active().voters()) {
        auto it = l->progress.find(id);
        if (id == cfg_.id || (it != l->progress.end() && it->second.recent_active)) ++active;
      }
      if (active < QuorumSize(conf_.Active().voters_size())) {
        BecomeFollower(term_, kNoNode);
        return;
      }
      for (auto& [id, pr] : l->progress)
        pr.recent_active = id == cfg_.id;
    }
    // A transfer that did not finish within an election timeout is abandoned (§3.10).
    if (l->transferee != kNoNode && ++l->transfer_elapsed >= cfg_.election_tick) {
      AbortTransfer(*l);
    }
    for (auto& [id, pr] : l->progress) {
      if (pr.state != Progress::State::kSnapshot || !pr.transfer) continue;
      if (++pr.transfer->idle_ticks >= cfg_.election_tick) {
        // No chunk acknowledged for a while: chunks or acks were lost; resend from what the
        // follower last said it holds.
        pr.transfer->idle_ticks = 0;
        pr.transfer->sent = pr.transfer->acked;
        SendSnapshotChunks(id, pr);
      }
    }
    if (heartbeat_elapsed_ >= cfg_.heartbeat_tick) {
      heartbeat_elapsed_ = 0;
      BroadcastHeartbeat();
    }
    return;
  }
  ++election_elapsed_;
  if (Promotable() && election_elapsed_ >= randomized_election_timeout_) {
    election_elapsed_ = 0;
    Hup(cfg_.pre_vote ? CampaignType::kPreElection : CampaignType::kElection);
  }
}

Status Raft::Campaign() {
  if (leader() != nullptr) return {ErrorCode::kInvalidArgument, "already the leader"};
  if (!Promotable()) {
    return {ErrorCode::kInvalidArgument,
            "node " + std::to_string(cfg_.id) + " is not a voter in " + Describe(conf_.Active())};
  }
  Hup(CampaignType::kElection);
  return Status::Ok();
}

Status Raft::SetTimeouts(int election_tick, int heartbeat_tick) {
  if (heartbeat_tick <= 0 || election_tick <= heartbeat_tick) {
    return {ErrorCode::kInvalidArgument,
            "the election timeout must be longer than the heartbeat period"};
  }
  cfg_.election_tick = election_tick;
  cfg_.heartbeat_tick = heartbeat_tick;
  std::uniform_int_distribution<int> dist(cfg_.election_tick, 2 * cfg_.election_tick - 1);
  randomized_election_timeout_ = dist(rng_);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Messages

Status Raft::Validate(const raftpb::Message& m) const {
  auto bad = [&](const std::string& why) {
    return Status(ErrorCode::kInvalidArgument,
                  "malformed raft message from node " + std::to_string(m.from()) + ": " + why);
  };
  if (m.type() <= raftpb::MSG_NONE || m.type() > raftpb::MSG_READ_INDEX_RESP) {
    return bad("unknown type " + std::to_string(m.type()));
  }
  if (m.to() != cfg_.id) {
    return bad("addressed to node " + std::to_string(m.to()) + ", not " + std::to_string(cfg_.id));
  }
  if (m.from() == kNoNode || m.from() == cfg_.id) return bad("bad sender");
  if (m.term() == 0) return bad("term 0");
  if (m.type() == raftpb::MSG_APPEND) {
    Index expect = m.index() + 1;
    Term prev_term = m.log_term();
    for (const auto& e : m.entries()) {
      if (e.index() != expect)
        return bad("entries are not contiguous at " + std::to_string(expect));
      if (e.term() < prev_term || e.term() > m.term()) {
        return bad("entry " + std::to_string(e.index()) + " has term " + std::to_string(e.term()));
      }
      if (e.type() == raftpb::ENTRY_CONF_CHANGE) {
        raftpb::ConfChange cc;
        if (!cc.ParseFromString(e.data())) {
          return bad("configuration entry " + std::to_string(e.index()) + " does not parse");
        }
        if (auto why = CheckConfState(cc.result())) {
          return bad("configuration entry " + std::to_string(e.index()) + ": " + *why);
        }
      } else if (e.type() != raftpb::ENTRY_NORMAL) {
        return bad("entry " + std::to_string(e.index()) + " has unknown type");
      }
      prev_term = e.term();
      ++expect;
    }
  }
  if (m.type() == raftpb::MSG_SNAPSHOT) {
    if (m.snapshot().index() == 0) return bad("snapshot at index 0");
    if (m.snapshot().term() == 0 || m.snapshot().term() > m.term()) {
      // Its last entry is one the leader holds: of a term no later than the leader's own.
      return bad("snapshot of term " + std::to_string(m.snapshot().term()) + " from term " +
                 std::to_string(m.term()));
    }
    if (m.snapshot().conf_state().voters_size() == 0) return bad("snapshot without voters");
    if (auto why = CheckConfState(m.snapshot().conf_state())) {
      return bad("snapshot configuration: " + *why);
    }
    if (m.snapshot_offset() > m.snapshot_size() ||
        m.snapshot_chunk().size() > m.snapshot_size() - m.snapshot_offset()) {
      return bad("snapshot chunk beyond the snapshot's size");
    }
  }
  if (m.type() == raftpb::MSG_HEARTBEAT && m.commit() > log_.LastIndex()) {
    // A leader's heartbeat commits at most what the follower acknowledged, and so holds.
    return bad("heartbeat commits index " + std::to_string(m.commit()) + " beyond our last, " +
               std::to_string(log_.LastIndex()));
  }
  if (m.type() == raftpb::MSG_APPEND_RESP && !m.reject() && m.term() == term_ &&
      leader() != nullptr && m.index() > log_.LastIndex()) {
    // A leader never truncates its log during its term, so no follower holds more of it than
    // the leader does. Taken as true, the ack would make the leader look for entries it does
    // not have.
    return bad("acknowledges index " + std::to_string(m.index()) + " beyond the last, " +
               std::to_string(log_.LastIndex()));
  }
  return Status::Ok();
}

void Raft::Send(raftpb::Message m) {
  m.set_from(cfg_.id);
  if (m.term() == 0) m.set_term(term_);
  // Answers that acknowledge persisted state, and vote requests (the candidate's own vote must
  // be durable first), wait for the Ready to be persisted. Everything else goes at once.
  const bool after_persist = m.type() == raftpb::MSG_VOTE || m.type() == raftpb::MSG_VOTE_RESP ||
                             m.type() == raftpb::MSG_PRE_VOTE_RESP ||
                             m.type() == raftpb::MSG_APPEND_RESP;
  (after_persist ? msgs_after_persist_ : msgs_).push_back(std::move(m));
}

Status Raft::Step(const raftpb::Message& m) {
  if (Status st = Validate(m); !st.ok()) return st;

  if (m.term() > term_) {
    const bool vote_request = m.type() == raftpb::MSG_VOTE || m.type() == raftpb::MSG_PRE_VOTE;
    // A follower's lease ends a heartbeat period before the shortest election timeout: the
    // first follower to time out after the leader died must not find the others still in their
    // lease only because their clocks tick a little behind its own, or the election waits for
    // another timeout. A leader keeps the whole window.
    const int lease = leader() != nullptr
                          ? cfg_.election_tick
                          : std::max(cfg_.heartbeat_tick, cfg_.election_tick - cfg_.heartbeat_tick);
    if (vote_request && !m.transfer() && cfg_.check_quorum && lead_ != kNoNode &&
        election_elapsed_ < lease) {
      // We heard from a leader within the lease: a node asking for votes now is most likely
      // cut off or removed; ignore it rather than depose a live leader (§4.2.3).
      return Status::Ok();
    }
    if (m.type() == raftpb::MSG_PRE_VOTE) {
      // A pre-vote does not move our term.
    } else if (m.type() == raftpb::MSG_PRE_VOTE_RESP && !m.reject()) {
      // A granted pre-vote carries the term we will campaign at; the term moves then.
    } else {
      const bool from_leader = m.type() == raftpb::MSG_APPEND ||
                               m.type() == raftpb::MSG_HEARTBEAT ||
                               m.type() == raftpb::MSG_SNAPSHOT;
      BecomeFollower(m.term(), from_leader ? m.from() : kNoNode);
    }
  } else if (m.term() < term_) {
    if ((cfg_.check_quorum || cfg_.pre_vote) &&
        (m.type() == raftpb::MSG_APPEND || m.type() == raftpb::MSG_HEARTBEAT)) {
      // A stale leader: our answer carries the newer term and makes it step down. Without it a
      // node that rejoins after a partition, having missed our election, never learns of it.
      raftpb::Message resp;
      resp.set_type(raftpb::MSG_APPEND_RESP);
      resp.set_to(m.from());
      Send(std::move(resp));
    } else if (m.type() == raftpb::MSG_PRE_VOTE) {
      raftpb::Message resp;
      resp.set_type(raftpb::MSG_PRE_VOTE_RESP);
      resp.set_to(m.from());
      resp.set_reject(true);
      Send(std::move(resp));
    }
    return Status::Ok();
  }

  if (m.type() == raftpb::MSG_VOTE || m.type() == raftpb::MSG_PRE_VOTE) {
    HandleVoteRequest(m);
    return Status::Ok();
  }
  std::visit(Overloaded{[&](FollowerState& f) { StepFollower(f, m); },
                        [&](PreCandidateState& c) { StepCandidate(c.votes, true, m); },
                        [&](CandidateState& c) { StepCandidate(c.votes, false, m); },
                        [&](LeaderState& l) { StepLeader(l, m); }},
             role_);
  return Status::Ok();
}

void Raft::HandleVoteRequest(const raftpb::Message& m) {
  const bool pre = m.type() == raftpb::MSG_PRE_VOTE;
  // One vote per term (§3.4): we can vote for whom we already voted for, or for anyone if we
  // have neither voted nor heard from a leader this term. A pre-vote for a later term commits
  // us to nothing.
  bool can_vote =
      vote_ == m.from() || (vote_ == kNoNode && lead_ == kNoNode) || (pre && m.term() > term_);
#ifdef SKEP_RAFT_BUG_DOUBLE_VOTE
  // Deliberately broken build for the simulator's self-test: grants a second vote in a term.
  can_vote = can_vote || (!pre && std::holds_alternative<FollowerState>(role_));
#endif
  raftpb::Message resp;
  resp.set_type(pre ? raftpb::MSG_PRE_VOTE_RESP : raftpb::MSG_VOTE_RESP);
  resp.set_to(m.from());
  bool stand_down = false;
  if (can_vote && log_.IsUpToDate(m.index(), m.log_term())) {
    // Answer at the candidate's term so that it counts the vote (a pre-vote's term is in the
    // future for us, and must be echoed for the same reason).
    resp.set_term(m.term());
    if (!pre) {
      election_elapsed_ = 0;
      vote_ = m.from();
    } else {
      // Two nodes that timed out together (the leader died) would both win their pre-votes and
      // then split the vote, each for itself, and wait another timeout. Of two pre-candidates
      // with logs as good as each other's, the one with the higher ID stands down this round;
      // should the other not win, it times out again (liveness only: no vote is involved).
      stand_down = std::holds_alternative<PreCandidateState>(role_) && m.from() < cfg_.id;
    }
  } else {
    resp.set_reject(true);
  }
  Send(std::move(resp));
  if (stand_down) BecomeFollower(term_, kNoNode);
}

void Raft::StepFollower(FollowerState& f, const raftpb::Message& m) {
  switch (m.type()) {
    case raftpb::MSG_APPEND:
      election_elapsed_ = 0;
      lead_ = m.from();
      HandleAppend(m);
      break;
    case raftpb::MSG_HEARTBEAT:
      election_elapsed_ = 0;
      lead_ = m.from();
      HandleHeartbeat(m);
      break;
    case raftpb::MSG_SNAPSHOT:
      election_elapsed_ = 0;
      lead_ = m.from();
      HandleSnapshotChunk(f, m);
      break;
    case raftpb::MSG_TIMEOUT_NOW:
      // The leader hands over to us (§3.10): campaign at once, skipping pre-vote, with the
      // transfer flag so that voters ignore their leader lease.
      if (Promotable()) Hup(CampaignType::kTransfer);
      break;
    case raftpb::MSG_READ_INDEX_RESP:
      read_states_.push_back({m.index(), m.context()});
      break;
    default:
      break;  // answers to requests of a role we no longer hold
  }
}

void Raft::StepCandidate(std::map<NodeId, bool>& votes, bool pre, const raftpb::Message& m) {
  switch (m.type()) {
    case raftpb::MSG_APPEND:
    case raftpb::MSG_HEARTBEAT:
    case raftpb::MSG_SNAPSHOT:
      // Someone won this term.
      BecomeFollower(term_, m.from());
      StepFollower(std::get<FollowerState>(role_), m);
      return;
    case raftpb::MSG_PRE_VOTE_RESP:
    case raftpb::MSG_VOTE_RESP: {
      if ((m.type() == raftpb::MSG_PRE_VOTE_RESP) != pre) return;  // from an earlier round
      RecordVote(votes, m.from(), !m.reject());
      switch (Tally(votes)) {
        case VoteResult::kWon:
          if (pre) {
            StartCampaign(CampaignType::kElection);
          } else {
            BecomeLeader();
            BroadcastAppend();
          }
          break;
        case VoteResult::kLost:
          BecomeFollower(term_, kNoNode);
          break;
        case VoteResult::kPending:
          break;
      }
      return;
    }
    default:
      return;
  }
}

void Raft::StepLeader(LeaderState& l, const raftpb::Message& m) {
  auto it = l.progress.find(m.from());
  if (it == l.progress.end()) return;  // not a member (any more)
  Progress& pr = it->second;
  switch (m.type()) {
    case raftpb::MSG_APPEND_RESP:
      HandleAppendResponse(l, pr, m);
      break;
    case raftpb::MSG_HEARTBEAT_RESP:
      HandleHeartbeatResponse(l, pr, m);
      break;
    case raftpb::MSG_SNAPSHOT_RESP:
      HandleSnapshotResponse(pr, m);
      break;
    case raftpb::MSG_READ_INDEX:
      pr.recent_active = true;
      HandleReadRequest(l, m.from(), m.context());
      break;
    default:
      // Vote answers after we already won, or a request a leader has no use for.
      break;
  }
}

}  // namespace skep::raft
