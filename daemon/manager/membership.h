// The leader's membership component: keeps the raft group's members as the store's nodes say.
// A node that joined as a manager becomes a learner, a learner that caught up a voter, a
// demoted manager leaves the group (only while the others keep a reachable quorum), and a
// leader that is itself demoted hands leadership to a voter that holds the whole log first.
// One change at a time. After `swarm init --force-new-cluster` it first shows the managers the
// new cluster left out as workers that are down.
//
// The decision is a pure function (PlanMembership); the component around it lives on a strand
// and is woken by the raft driver's status changes and the store's node events, plus a timer
// when a step waits for time to pass (a transfer's pause, a peer to become reachable).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/manager/context.h"
#include "raft/node.h"

namespace skep::manager {

// The raft group's side of membership, as the component sees it.
class RaftMembership {
 public:
  virtual ~RaftMembership() = default;
  virtual raft::NodeStatus RaftStatus() const = 0;
  // `f` runs when the role, the leader, the term, the configuration or a learner's progress
  // changes; it only posts.
  [[nodiscard]] virtual Subscription WatchStatus(std::function<void(const raft::NodeStatus&)> f) = 0;
  virtual void ChangeMembers(raftpb::ConfChangeType type, uint64_t raft_id, std::string addr,
                             Done done) = 0;
  virtual void TransferLeadership(uint64_t raft_id, Done done) = 0;
  virtual bool Reachable(uint64_t raft_id) const = 0;
  virtual std::optional<std::string> QuorumRiskOfRemoving(uint64_t raft_id,
                                                          const std::string& what) const = 0;
  virtual std::chrono::milliseconds ElectionTimeout() const = 0;
};

// The next change to the raft configuration, if any.
struct MembershipStep {
  enum class Kind {
    kNone,
    kWait,        // a change is due but must wait (for a peer to be reachable, a pause)
    kPromote,     // a learner that caught up becomes a voter
    kRemove,      // a demoted manager leaves
    kAddLearner,  // a new manager joins as a learner
    kTransfer,    // the demoted leader hands over to `raft_id` first
  };
  Kind kind = Kind::kNone;
  uint64_t raft_id = 0;
  std::string addr;  // kAddLearner: where it listens
};

struct MembershipView {
  raft::NodeStatus status;
  uint64_t self = 0;  // this manager's raft id
  std::vector<Shared<api::Node>> nodes;
  std::function<bool(uint64_t raft_id)> reachable;
  // Why removing a member would cost the quorum, if it would.
  std::function<std::optional<std::string>(uint64_t raft_id)> quorum_risk;
  bool may_transfer = true;  // the last transfer is long enough ago
};

MembershipStep PlanMembership(const MembershipView& view);

// The nodes --force-new-cluster left out of the raft group, as workers that are down; empty
// when there is none.
api::StoreBatch DemoteLeftOut(const raft::NodeStatus& status, uint64_t self,
                              const std::vector<Shared<api::Node>>& nodes);

struct MembershipOptions {
  uint64_t self = 0;
  // A file that exists while the left-out managers still have to be demoted (it survives a
  // restart); empty: none.
  std::string cleanup_marker;
  // Called (on the component's strand) once they are.
  std::function<void()> on_cleanup_done;
  // Tells the transport where a new member listens.
  std::function<void(uint64_t raft_id, const std::string& addr)> set_peer;
};

std::unique_ptr<LeaderComponent> MakeMembership(Context& ctx, RaftMembership& raft,
                                                MembershipOptions options);

}  // namespace skep::manager
