// The raft core's public face: a pure, deterministic state machine (no sockets, files, threads,
// clocks or global randomness). The driver feeds it messages (Step), the passage of time
// (Tick) and requests (Propose, ProposeConfChange, ReadIndex, TransferLeadership), then takes
// what it must do as a Ready and reports it done with Advance.
//
// The Ready contract, in order:
//   1. send `messages` at once (the leader's appends go out while it persists its own copy,
//      thesis §10.2.1);
//   2. persist `snapshot`, `entries` and `hard_state` in one durable write (Storage::Save),
//      which may be skipped when `must_sync` is false;
//   3. only then send `persisted_messages`: votes and append acknowledgements promise that
//      something is on disk, so they must not leave before it is;
//   4. install `snapshot` into the state machine, then apply `committed_entries` in order;
//   5. call Advance(ready). There is at most one Ready outstanding: GetReady() may not be
//      called again before Advance(). Step, Tick and the requests may be called meanwhile.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "raft/progress.h"
#include "raft/storage.h"
#include "raft/types.h"

namespace skep::raft {

class Raft;

struct Config {
  NodeId id = kNoNode;
  // Ticks without hearing from a leader before a follower campaigns; randomized per election
  // in [election_tick, 2*election_tick) (§3.4).
  int election_tick = 10;
  // Ticks between a leader's heartbeats. Must be well below election_tick.
  int heartbeat_tick = 1;
  // Seeds the generator for randomized election timeouts.
  uint64_t seed = 0;
  // Pre-vote (§9.6): a node first asks whether it could win before disrupting a term.
  bool pre_vote = true;
  // Check-quorum (§6.2): a leader steps down when it has not heard from a quorum for an
  // election timeout, and followers ignore votes while they hear from a leader.
  bool check_quorum = true;
  // With check_quorum: how many election timeouts a leader goes without a quorum's answers
  // before it steps down. More than one keeps a leader whose own process reads its followers'
  // answers late (a CPU it shares with busy work) from stepping down while its followers still
  // hear it; a leader cut off from them steps down that much later (they elect without it).
  int check_quorum_timeouts = 1;
  // Appends in flight to a follower in the replicate state.
  size_t max_inflight_msgs = 256;
  uint64_t max_size_per_msg = 1 << 20;
  uint64_t max_committed_size_per_ready = 64 << 20;
  uint64_t snapshot_chunk_size = 1 << 20;
  size_t snapshot_chunks_in_flight = 4;
  // The state machine already holds everything up to here (after a restart); entries up to
  // it are not handed out again. Defaults to the snapshot's index.
  Index applied = 0;
};

enum class Role { kFollower, kPreCandidate, kCandidate, kLeader };
const char* ToString(Role r);

struct SoftState {
  NodeId lead = kNoNode;
  Role role = Role::kFollower;
  bool operator==(const SoftState&) const = default;
};

// A read at `index` is linearizable once the state machine has applied up to it.
struct ReadState {
  Index index = 0;
  std::string context;
};

struct Ready {
  std::optional<SoftState> soft_state;
  std::optional<raftpb::HardState> hard_state;
  std::shared_ptr<const raftpb::Snapshot> snapshot;
  std::vector<raftpb::Entry> entries;
  std::vector<raftpb::Message> messages;
  std::vector<raftpb::Message> persisted_messages;
  std::vector<raftpb::Entry> committed_entries;
  std::vector<ReadState> read_states;

  // Whether the write must happen: new entries, a snapshot, or a new term or vote. A Ready
  // that only moves the commit index need not be persisted (etcd syncs on the same rule): a
  // commit index lost in a crash is learnt again from the leader, and everything below it is
  // in the log already.
  bool must_sync = false;
};

struct PeerStatus {
  NodeId id = kNoNode;
  bool voter = false;
  Index match = 0;
  Index next = 0;
  Progress::State state = Progress::State::kProbe;
  bool recent_active = false;
};

struct NodeStatus {
  NodeId id = kNoNode;
  Term term = 0;
  NodeId vote = kNoNode;
  NodeId lead = kNoNode;
  Role role = Role::kFollower;
  Index first_index = 0;
  Index last_index = 0;
  Index commit = 0;
  Index applied = 0;
  // The commit index is an entry of the current term: a new leader knows everything committed
  // before it (§6.4), once its own first entry commits.
  bool committed_in_term = false;
  raftpb::ConfState conf;
  Index conf_index = 0;  // the entry holding `conf` (it may not be committed yet)
  NodeId transferee = kNoNode;
  std::vector<PeerStatus> peers;  // the leader's view of every member; empty elsewhere
};

class Node {
 public:
  // Restores the node from what `storage` holds. A new group is bootstrapped by giving every
  // founding member a storage that holds BootstrapEntry(founding configuration), committed; a
  // node joining later starts from an empty storage and learns everything from the leader.
  Node(const Config& config, const Storage* storage);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  void Tick();
  // A message from a peer. A malformed one is refused with kInvalidArgument and changes nothing.
  Status Step(const raftpb::Message& m);
  // Appends a command (leader only); `index` receives its log index.
  Status Propose(std::string data, Index* index = nullptr);
  // Proposes one membership change (leader only; see conf.h for the rules).
  Status ProposeConfChange(raftpb::ConfChangeType type, NodeId node, std::string context = {},
                           Index* index = nullptr);
  // Asks for a linearizable read index; it arrives as a ReadState carrying `context`.
  Status ReadIndex(std::string context);
  Status TransferLeadership(NodeId target);
  // Starts an election now (tests, and a single-node group that wants to lead at once).
  Status Campaign();
  // Changes the election and heartbeat timeouts (in ticks) from the next timeout on.
  Status SetTimeouts(int election_tick, int heartbeat_tick);

  bool HasReady() const;
  Ready GetReady();
  void Advance(const Ready& ready);
  // The messages that may be sent at once (the `messages` of the next Ready), without taking a
  // Ready: lets a driver keep heartbeats and appends flowing while a Ready is being persisted.
  std::vector<raftpb::Message> TakeMessages();

  NodeStatus GetStatus() const;
  NodeId id() const;
  // The current term (GetStatus without the copying).
  Term term() const;
  // Local invariants (log bounds, progress, roles); empty when all hold.
  std::vector<std::string> CheckInvariants() const;

 private:
  std::unique_ptr<Raft> raft_;
};

}  // namespace skep::raft
