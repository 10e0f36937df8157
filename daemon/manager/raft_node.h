// Drives one raft core: the clock, the persistence of each Ready, the transport and the state
// machine. Everything that touches the core runs in the node's serializer: one task at a time,
// in order, on the thread that brought it when the core is idle (a message from the network,
// a proposal), otherwise on the thread already working there; or, with inline_callers off,
// always on the io_context's threads. The synced storage write runs on
// a writer thread of its own, so the core keeps taking messages and proposals while the disk
// works, and they all go into the next write (group commit). The leader's appends leave once
// its own write has started, without waiting for it (thesis §10.2.1); votes and
// acknowledgements leave only after it.
//
// Every public method is thread-safe. Callbacks run in the serializer, which may be on the
// calling thread, before the method returns: do not hold a lock a callback takes while calling.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "raft/node.h"

namespace skep {

// Delivers messages to peers. Called in the node's serializer; must not block. Messages may be
// lost.
class RaftTransport {
 public:
  virtual ~RaftTransport() = default;
  virtual void Send(raftpb::Message m) = 0;
};

// The replicated state machine. Called in the node's serializer.
class RaftStateMachine {
 public:
  virtual ~RaftStateMachine() = default;
  // A committed entry, in log order (normal entries with data, configuration entries, and the
  // empty entries new leaders append).
  virtual void Apply(const raftpb::Entry& entry) = 0;
  // The state as of the last applied entry, for a snapshot: what to serialize is taken now,
  // cheaply, and serialized later by the function returned, on another thread while entries go
  // on being applied; so what it captures must not change afterwards.
  virtual std::function<std::string()> Snapshot() = 0;
  // Replaces the state with a snapshot's.
  virtual void Restore(const raftpb::Snapshot& snapshot) = 0;
};

struct RaftNodeOptions {
  raft::Config raft;
  std::chrono::milliseconds tick{100};
  // Applied entries between snapshots (0: never), and entries kept in the log behind one so
  // that a follower slightly behind gets entries rather than the whole snapshot.
  uint64_t snapshot_every = 10000;
  uint64_t snapshot_keep = 1000;
  // Also a snapshot once the entries applied since the last one hold this many bytes (0: by
  // count only): a restart replays the log behind the snapshot, and a few thousand entries of
  // large batches are hundreds of megabytes.
  uint64_t snapshot_bytes = 0;
  // Also fewer entries kept behind a snapshot than snapshot_keep, so that those kept hold at
  // most this many bytes (0: by count only): a start reads and checks every entry in the log.
  uint64_t snapshot_keep_bytes = 0;
  // Whether a thread that brings work while the core is idle does it itself (fewest wake-ups)
  // or leaves all of it to the io_context's threads (one thread of its own: the work runs at
  // that thread's priority, and a busy caller never holds the core).
  bool inline_callers = true;
  // Whether committed entries are applied on a thread of their own rather than in the raft
  // node's serializer: a state machine whose apply waits (for readers of a large store) then
  // never holds up heartbeats, votes and log writes. Proposals and reads are answered, in
  // order, once their entries are applied either way.
  bool apply_thread = false;
};

class RaftNode {
 public:
  using Done = std::function<void(const raft::Status&)>;

  RaftNode(boost::asio::io_context& io, const RaftNodeOptions& options, raft::Storage* storage,
           RaftTransport* transport, RaftStateMachine* state_machine);
  ~RaftNode();
  RaftNode(const RaftNode&) = delete;
  RaftNode& operator=(const RaftNode&) = delete;

  // Restores the state machine from the storage's snapshot and starts the clock.
  void Start();
  // Stops the clock and waits for the write in progress; pending callbacks fail. Not from a
  // callback: it waits for the serializer and joins the writer threads.
  void Stop();

  void Step(raftpb::Message m);
  // `done` runs once the entry is applied here (ok), or when it can no longer be: this node is
  // not the leader (in `term`, when one is given), or a new leader replaced the entry.
  void Propose(std::string data, Done done, raft::Term term = 0);
  void ProposeConfChange(raftpb::ConfChangeType type, raft::NodeId node, std::string context,
                         Done done);
  // `done` runs once this node's state machine reflects every write committed before the call
  // (a linearizable read point, §6.4).
  void ReadIndex(Done done);
  void TransferLeadership(raft::NodeId target, Done done);
  void Campaign();
  // New timeouts, in ticks (see raft::Node::SetTimeouts).
  void SetTimeouts(int election_tick, int heartbeat_tick);

  // The core's status as of the last time it moved. Thread-safe.
  raft::NodeStatus GetStatus() const;
  // Called in the serializer whenever the known leader or this node's role changes.
  void OnLeaderChange(std::function<void(raft::NodeId lead, raft::Term term, bool self)> f);
  // Called in the serializer when what membership decisions depend on changes: the role, the
  // leader, the term, the configuration (and whether its entry is committed), or the set of
  // learners that caught up with the commit index.
  void OnStatusChange(std::function<void(const raft::NodeStatus&)> f);
  // Called in the serializer if the storage fails: the node has stopped.
  void OnFatal(std::function<void(const std::string& why)> f);

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace skep
