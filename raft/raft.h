// The raft state machine behind Node. Internal to raft/: the driver uses node.h.
//
// Roles are a variant; leader-only state (progress of every follower, pending reads, a
// leadership transfer) lives in LeaderState so it cannot outlive the leadership. Step handles
// the term once at the top, then dispatches on the role.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <random>
#include <variant>

#include "raft/conf.h"
#include "raft/log.h"
#include "raft/node.h"
#include "raft/quorum.h"

namespace skep::raft {

struct SnapshotReceive {
  NodeId from = kNoNode;
  raftpb::SnapshotMetadata metadata;
  uint64_t size = 0;
  std::string data;  // the chunks received so far, in order
};

struct FollowerState {
  // A snapshot arriving in chunks from the leader.
  std::optional<SnapshotReceive> incoming;
};

struct PreCandidateState {
  std::map<NodeId, bool> votes;
};

struct CandidateState {
  std::map<NodeId, bool> votes;
};

struct PendingRead {
  uint64_t seq = 0;  // the heartbeat round that confirms it
  Index index = 0;   // the commit index when the request arrived
  NodeId from = kNoNode;
  std::string context;
};

struct LeaderState {
  std::map<NodeId, Progress> progress;
  NodeId transferee = kNoNode;
  int transfer_elapsed = 0;  // ticks since the transfer began; it is abandoned after a timeout
  // ReadIndex (§6.4): a read waits for a heartbeat round acknowledged by a quorum.
  uint64_t read_seq = 0;
  std::deque<PendingRead> reads;
  // Reads that arrived before the leader committed an entry of its own term: until then it
  // does not know the commit index (§6.4 step 1).
  std::vector<PendingRead> reads_before_commit;
  bool read_heartbeat_due = false;
  // Proposals since the last Ready are sent in one batch when the Ready is taken.
  bool broadcast_due = false;
};

using RoleState = std::variant<FollowerState, PreCandidateState, CandidateState, LeaderState>;

class Raft {
 public:
  Raft(const Config& config, const Storage* storage);

  void Tick();
  Status Step(const raftpb::Message& m);
  Status Propose(std::string data, Index* index);
  Status ProposeConfChange(raftpb::ConfChangeType type, NodeId node, std::string context,
                           Index* index);
  Status ReadIndex(std::string context);
  Status TransferLeadership(NodeId target);
  Status Campaign();
  Status SetTimeouts(int election_tick, int heartbeat_tick);

  bool HasReady() const;
  Ready GetReady();
  void Advance(const Ready& ready);
  std::vector<raftpb::Message> TakeMessages();
  NodeStatus GetStatus() const;
  NodeId id() const { return cfg_.id; }
  Term term() const { return term_; }
  std::vector<std::string> CheckInvariants() const;

 private:
  enum class CampaignType { kPreElection, kElection, kTransfer };

  Role role() const;
  LeaderState* leader() { return std::get_if<LeaderState>(&role_); }
  const LeaderState* leader() const { return std::get_if<LeaderState>(&role_); }
  bool Promotable() const { return IsVoter(conf_.Active(), cfg_.id); }
  bool CommittedInCurrentTerm() const;

  // Role transitions.
  void Reset(Term term);
  void BecomeFollower(Term term, NodeId lead);
  void BecomePreCandidate();
  void BecomeCandidate();
  void BecomeLeader();
  void Hup(CampaignType type);
  void StartCampaign(CampaignType type);
  void RecordVote(std::map<NodeId, bool>& votes, NodeId from, bool granted);
  VoteResult Tally(const std::map<NodeId, bool>& votes) const;

  // Messages.
  Status Validate(const raftpb::Message& m) const;
  void Send(raftpb::Message m);
  void HandleVoteRequest(const raftpb::Message& m);
  void StepFollower(FollowerState& f, const raftpb::Message& m);
  void StepCandidate(std::map<NodeId, bool>& votes, bool pre, const raftpb::Message& m);
  void StepLeader(LeaderState& l, const raftpb::Message& m);

  // Follower side of replication.
  void HandleAppend(const raftpb::Message& m);
  void HandleHeartbeat(const raftpb::Message& m);
  void HandleSnapshotChunk(FollowerState& f, const raftpb::Message& m);
  bool Restore(std::shared_ptr<const raftpb::Snapshot> snapshot);

  // Leader side of replication.
  Index AppendEntries(std::vector<raftpb::Entry> entries);
  bool SendAppend(NodeId to, Progress& pr, bool send_if_empty);
  bool SendSnapshot(NodeId to, Progress& pr);
  void SendSnapshotChunks(NodeId to, Progress& pr);
  void BroadcastAppend();
  void BroadcastHeartbeat();
  void SendTimeoutNow(NodeId to);
  bool MaybeCommit();
  void OnCommitted();
  void HandleAppendResponse(LeaderState& l, Progress& pr, const raftpb::Message& m);
  void HandleHeartbeatResponse(LeaderState& l, Progress& pr, const raftpb::Message& m);
  void HandleSnapshotResponse(Progress& pr, const raftpb::Message& m);
  void SyncProgress(LeaderState& l);
  void AbortTransfer(LeaderState& l);

  // Reads.
  void HandleReadRequest(LeaderState& l, NodeId from, std::string context);
  void AdvanceReads(LeaderState& l);
  void ReleaseRead(PendingRead r);

  // Configuration entries appended to (or truncated from) the log.
  void TrackConfEntries(const std::vector<raftpb::Entry>& entries);

  Config cfg_;
  const Storage* storage_;
  std::mt19937_64 rng_;

  Term term_ = 0;
  NodeId vote_ = kNoNode;  // Invariant: only meaningful for term_
  NodeId lead_ = kNoNode;
  RoleState role_;
  RaftLog log_;
  ConfLog conf_;

  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int quorum_elapsed_ = 0;  // a leader's ticks since it last checked for a quorum's answers
  int randomized_election_timeout_ = 0;

  std::vector<raftpb::Message> msgs_;
  std::vector<raftpb::Message> msgs_after_persist_;
  std::vector<ReadState> read_states_;

  raftpb::HardState prev_hard_state_;
  SoftState prev_soft_state_;
  bool ready_outstanding_ = false;
};

}  // namespace skep::raft
