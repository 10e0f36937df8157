// One node's view of the cluster: SWIM failure detection with Lifeguard's refinements and
// epidemic dissemination, in the manner of HashiCorp memberlist.
//
// Memberlist is a pure state machine. Time is the `now_ms` passed to each call, randomness a
// generator seeded from the constructor, and the network is the caller's: every call returns
// the messages to send, and the caller hands incoming ones to Receive. Nothing blocks.
//
// Incarnation rules (SWIM §4.2, memberlist state.go), for a message about member m whose
// current incarnation is i:
//   alive(j)   replaces the view only when j > i (or m is new, or it comes back from dead);
//   suspect(j) and dead(j) apply only when j >= i;
//   about ourselves, suspect/dead are refuted by an alive with a higher incarnation, unless
//   we have left. dead with from == node means the node left rather than failed.
//
// Two additions to memberlist: a member that receives an accusation older than what it
// knows tells the sender the newer incarnation directly (otherwise the sender, having missed
// the refutation, would declare a live member dead), and, like Serf, members push-pull with
// a random failed member every reconnect interval so the two sides of a healed partition
// find each other again.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "overlay/gossip/awareness.h"
#include "overlay/gossip/broadcast_queue.h"
#include "overlay/gossip/message.h"
#include "overlay/gossip/suspicion.h"

namespace skep::gossip {

// memberlist's DefaultLANConfig, plus Serf's reconnect of failed members.
struct Config {
  int64_t probe_interval_ms = 1000;
  int64_t probe_timeout_ms = 500;
  int indirect_checks = 3;
  int suspicion_mult = 4;
  int suspicion_max_timeout_mult = 6;
  int retransmit_mult = 4;
  int64_t gossip_interval_ms = 200;
  int gossip_nodes = 3;
  int64_t gossip_to_the_dead_ms = 30'000;
  int64_t push_pull_interval_ms = 30'000;
  int awareness_max_multiplier = 8;
  size_t max_packet_bytes = 1400;  // budget for a message with its piggybacked broadcasts
  // Every interval a push-pull goes to one random failed member, so that the two sides of a
  // healed partition find each other again (Serf's reconnect). 0 disables it.
  int64_t reconnect_interval_ms = 30'000;
  // Dead and left members are forgotten this long after their last state change.
  int64_t dead_reclaim_ms = 24 * 3600 * 1000LL;
};

// memberlist scales the push-pull interval beyond 32 members so the full-state traffic of
// the whole cluster grows only logarithmically.
int64_t PushPullScaleMs(int64_t interval_ms, size_t n);

struct Member {
  std::string name;
  std::string addr;
  uint64_t incarnation = 0;
  MemberState state = MemberState::kAlive;
  int64_t state_change_ms = 0;
  bool operator==(const Member&) const = default;
};

enum class MemberEventType { kJoin, kLeave, kFail, kUpdate };

struct MemberEvent {
  MemberEventType type;
  Member member;
};

// The application's share of a push-pull (Serf's LocalState/MergeRemoteState), called
// synchronously from inside Tick, Receive and Join.
class StateDelegate {
 public:
  virtual ~StateDelegate() = default;
  virtual std::string LocalState(bool join) = 0;
  virtual void MergeRemoteState(std::string_view state, bool join) = 0;
};

class Memberlist {
 public:
  Memberlist(Config config, std::string self_name, std::string self_addr, uint64_t seed);

  // Runs whatever is due at now_ms: the probe cycle, suspicion timeouts, gossip, push-pull.
  std::vector<Message> Tick(int64_t now_ms);
  std::vector<Message> Receive(const Message& m, int64_t now_ms);
  // The earliest time at which Tick has something to do, so a driver can sleep until then
  // (or a simulator skip ahead). Receive may bring it forward.
  int64_t NextTickMs() const;

  // A full state exchange with a member already in the cluster.
  std::vector<Message> Join(const std::string& seed_addr, int64_t now_ms);
  // Marks us left and starts gossiping it; keep ticking so the news gets out.
  std::vector<Message> Leave(int64_t now_ms);

  // Piggybacks `bytes` on gossip with the same retransmit rules as membership news; a newer
  // broadcast with the same key replaces a queued older one. Received user broadcasts are
  // not re-gossiped automatically: the application queues them again if they were news.
  void QueueUserBroadcast(std::string key, std::string bytes);
  std::vector<UserBroadcast> TakeUserBroadcasts();
  std::vector<std::string> TakeUserData();
  std::vector<MemberEvent> TakeEvents();
  void SetStateDelegate(StateDelegate* delegate) { delegate_ = delegate; }

  const Member* Find(const std::string& name) const;
  std::vector<Member> Members() const;          // including ourselves and failed members
  size_t NumActive() const { return active_; }  // alive or suspect, including ourselves
  const std::string& name() const { return self_name_; }
  const std::string& addr() const { return self_addr_; }
  uint64_t incarnation() const;
  int health_score() const { return awareness_.score(); }
  size_t pending_broadcasts() const { return queue_.size(); }

  // Checks the invariants of the internal state; returns what is broken, if anything. Tests
  // and the simulator run it after every step.
  std::optional<std::string> InvariantViolation() const;

 private:
  struct MemberInfo {
    Member member;
    std::optional<Suspicion> suspicion;  // Invariant: set iff member.state == kSuspect
  };
  struct Probe {
    std::string target;
    uint32_t seq = 0;
    int64_t timeout_ms = 0;   // direct ack expected by then, else indirect probes go out
    int64_t deadline_ms = 0;  // any ack expected by then, else the target is suspected
    bool indirect_sent = false;
    int expected_nacks = 0;
    int nacks = 0;
  };
  // A ping we send on behalf of a member that asked for an indirect probe.
  struct Relay {
    std::string origin_addr;
    uint32_t origin_seq = 0;
    int64_t nack_at_ms = 0;
  };

  void Start(int64_t now_ms);
  void ProbeTick(int64_t now_ms, std::vector<Message>& out);
  void StartProbe(int64_t now_ms, std::vector<Message>& out);
  void FinishProbe(bool acked, int64_t now_ms);
  void GossipTick(int64_t now_ms, std::vector<Message>& out);
  void PushPullTo(const std::string& addr, bool join, std::vector<Message>& out);
  void ResetProbeOrder(int64_t now_ms);

  void HandleBroadcast(const Broadcast& b, int64_t now_ms);
  void OnAlive(const Alive& a, int64_t now_ms);
  void OnSuspect(const Suspect& s, int64_t now_ms);
  void OnDead(const Dead& d, int64_t now_ms);
  void Refute(uint64_t accused_incarnation);
  void CorrectStale(const Member& m);
  void MergeRemote(const PushPull& p, int64_t now_ms);
  PushPull LocalState(bool join, bool reply);

  void Enqueue(const std::string& name, Broadcast b);
  Message Make(const std::string& to, Body body, bool piggyback);
  std::vector<const MemberInfo*> RandomMembers(size_t k, int64_t now_ms, bool include_dead,
                                               const std::string& exclude);
  void Emit(MemberEventType type, const Member& m) { events_.push_back({type, m}); }

  Config config_;
  std::string self_name_;
  std::string self_addr_;
  std::mt19937_64 rng_;
  Awareness awareness_;
  BroadcastQueue queue_;
  // Invariant: members_ holds ourselves; probe_order_ points at every member once. The
  // pointers stay valid because unordered_map never moves its elements.
  std::unordered_map<std::string, MemberInfo> members_;
  std::vector<MemberInfo*> probe_order_;
  size_t probe_index_ = 0;
  size_t active_ = 1;                  // Invariant: the number of members neither dead nor left
  std::vector<MemberInfo*> suspects_;  // members whose suspicion timer runs
  std::optional<Probe> probe_;
  std::unordered_map<uint32_t, Relay> relays_;
  uint32_t next_seq_ = 1;
  bool started_ = false;
  bool left_ = false;
  int64_t next_probe_ms_ = 0;
  int64_t next_gossip_ms_ = 0;
  int64_t next_push_pull_ms_ = 0;
  int64_t next_reconnect_ms_ = 0;
  StateDelegate* delegate_ = nullptr;
  std::vector<MemberEvent> events_;
  std::vector<UserBroadcast> user_broadcasts_;
  std::vector<std::string> user_data_;
  // While Receive handles broadcasts: newer alive news for the sender of stale accusations.
  bool correcting_ = false;
  std::vector<Alive> corrections_;
};

}  // namespace skep::gossip
