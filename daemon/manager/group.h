// What this manager knows of its raft group, kept on one strand and woken by events only: the
// raft driver's leader and status changes, the store's node and cluster events, and the
// addresses peers announce. From them it keeps
//   - the transport's address for every member (from the store, or as the join answer or the
//     peer itself announced it);
//   - where this manager stands (Leadership): on becoming leader it reads its log up to date
//     (a read index), then serves and starts the leader components with its term; on stepping
//     down it stops them;
//   - the list of managers nodes fall back on, and who leads and where;
//   - the raft timeouts the cluster object asks for.
// Its reads (leadership(), Managers(), NoLeaderStatus()...) are thread-safe.
#pragma once


#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/common/mutex.h"
#include "daemon/manager/context.h"
#include "raft/node.h"

namespace skep {
class RaftNode;
}

namespace skep::manager {

class GrpcRaftTransport;

class Group {
 public:
  struct Options {
    ServiceContext::Identity self;
    std::map<uint64_t, std::string> known_peers;  // raft id -> addr, until the store has them
    int64_t heartbeat_ms = 0;
    int64_t election_ms = 0;
    // Converts milliseconds to the raft clock's ticks.
    std::function<int(int64_t ms)> ticks;
  };
  Group(Strand strand, Options options, const Store& store, skep::RaftNode& raft,
        GrpcRaftTransport& transport, Clock& clock);
  ~Group();

  // Registers the leader components (before Start).
  void Add(std::unique_ptr<LeaderComponent> component);
  void Start();
  // Stops the leader components and stops listening; returns at once.
  void Stop();

  // From the raft driver's serializer and the transport: they only post.
  void OnLeaderChange(uint64_t lead, uint64_t term, bool self);
  void OnStatusChange(const raft::NodeStatus& status);
  void OnPeerAnnounced();

  Leadership leadership() const;
  Subscription WatchLeadership(std::function<void(const Leadership&)> f);
  std::vector<api::ManagerPeer> Managers() const;
  Subscription WatchManagers(std::function<void()> f);
  // The raft core's status, and its changes that matter to membership (role, leader, term,
  // configuration, a learner caught up): from the raft driver's serializer, so `f` only posts.
  raft::NodeStatus RaftStatus() const;
  Subscription WatchStatus(std::function<void(const raft::NodeStatus&)> f);

  // Heard from within two election timeouts (raft resets its own activity flags every
  // election timeout, so a reading just after a reset would call everyone unreachable).
  bool Reachable(uint64_t raft_id) const;
  std::string ManagerStatusOf(const api::Node& node) const;
  std::optional<std::string> QuorumRiskOfRemoving(uint64_t raft_id, const std::string& what) const;
  Status NoLeaderStatus() const;
  std::chrono::milliseconds ElectionTimeout() const;

 private:
  void QueueRefresh();
  void Refresh();  // on strand_
  void ReadUpToDate(uint64_t term);
  void Serve(uint64_t term);
  void StopComponents();
  void ApplySettings(const api::Cluster& cluster);
  std::string AddrOf(uint64_t raft_id, const ReadTx* tx) const;

  Strand strand_;
  const Options options_;
  const Store& store_;
  skep::RaftNode& raft_;
  GrpcRaftTransport& transport_;
  Clock& clock_;
  Subscription store_events_;

  // On strand_.
  bool running_ = false;
  std::vector<std::unique_ptr<LeaderComponent>> components_;
  bool components_running_ = false;
  uint64_t lead_ = 0;
  uint64_t term_ = 0;
  bool self_leads_ = false;
  uint64_t serving_term_ = 0;  // the term in which this manager, leading, applied its log
  std::unique_ptr<Timer> retry_read_;
  int64_t heartbeat_ms_;
  std::atomic<int64_t> election_ms_;

  mutable Mutex mu_;
  Leadership leadership_ SKEP_GUARDED_BY(mu_);
  std::vector<api::ManagerPeer> managers_ SKEP_GUARDED_BY(mu_);
  Observers<const Leadership&> leadership_watchers_;
  Observers<> managers_watchers_;
  Observers<const raft::NodeStatus&> status_watchers_;
  std::atomic<bool> refresh_queued_{false};
};

}  // namespace skep::manager
