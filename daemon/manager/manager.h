// A manager: a member of the raft group that replicates the cluster's store, listening on 2377
// for the other managers (raft), for every node (dispatcher, CA) and for forwarded control
// requests. The leader also runs the cluster's housekeeping: it adds joining managers to the
// raft group as learners and promotes them once caught up, removes demoted ones, and marks
// nodes whose agent stopped heartbeating as down.
#pragma once

#include <grpcpp/grpcpp.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control.pb.h"
#include "daemon/executor/registry.h"
#include "daemon/common/tls.h"
#include "daemon/manager/store.h"
#include "objects.pb.h"
#include "raft/node.h"

namespace skep::manager {

class ControlApi;
class Dispatcher;

// The outcome of a write, typed so that callers act on it without reading its text.
struct WriteResult {
  enum class Code {
    kOk,
    kConflict,     // made from an outdated version of an object: read again and retry
    kExists,       // an ID or name already taken
    kNotFound,     // an object it changes is gone
    kInvalid,      // the batch itself is wrong
    kNotLeader,    // this manager does not lead (another does)
    kNoQuorum,     // no leader, and too few managers reachable to elect one
    kUnavailable,  // not applied: leadership changed meanwhile, or a timeout; may be retried
  };
  Code code = Code::kOk;
  std::string message;
  uint64_t index = 0;  // the raft index it was applied at
  bool ok() const { return code == Code::kOk; }
  grpc::Status ToStatus() const;
};

// Something only the leader runs (orchestrators, the scheduler, the reaper). Started once this
// manager leads and has applied everything committed before its term; stopped when it steps
// down or stops. Both are called on the manager's leadership strand and must not block.
class LeaderComponent {
 public:
  virtual ~LeaderComponent() = default;
  virtual void Start() = 0;
  // Cancels its work: once it returns, nothing it scheduled changes the store any more.
  virtual void Stop() = 0;
};

struct ManagerOptions {
  std::string data_dir;  // the raft log lives in data_dir/raft
  std::string node_id;
  uint64_t raft_id = 0;
  std::string advertise_addr;  // ip:port other nodes reach this manager at
  std::string listen_addr;     // ip:port to listen on
  tls::Files tls;

  enum class Start {
    kResume,           // the raft log on disk says who we are; an empty one (a member that
                       // stopped before the leader sent it anything) waits for it, as kJoin
    kNewCluster,       // swarm init: bootstrap a group of one and create the cluster objects
    kJoin,             // a new member: an empty log, the leader sends us everything
    kForceNewCluster,  // swarm init --force-new-cluster: keep the state, become the only member
  };
  Start start = Start::kResume;
  std::vector<api::ManagerPeer> peers;  // managers known so far (from the join answer)
  // How this manager reaches registries, to resolve a service's image tag to a digest.
  executor::RegistryConfig registry;
  // For kNewCluster: the objects the cluster starts with.
  api::Cluster initial_cluster;
  api::Node initial_node;
  std::vector<api::Network> initial_networks;
};

class Manager {
 public:
  explicit Manager(ManagerOptions options);
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Opens the raft log, starts raft and the 2377 listener. Throws std::runtime_error.
  void Start();
  // For kNewCluster and kForceNewCluster: waits until this manager leads and the initial
  // writes are committed.
  grpc::Status WaitReady(std::chrono::milliseconds timeout);
  void Stop();

  const ManagerOptions& options() const { return options_; }
  Store& store() { return store_; }

  bool IsLeader() const;
  // For the leader's services: waits (a little) until this new leader has applied everything
  // committed before its term, so that it answers from a complete state. FAILED_PRECONDITION if
  // this manager is not the leader, UNAVAILABLE if it is still catching up.
  grpc::Status WaitServing(std::chrono::milliseconds timeout = std::chrono::seconds(2)) const;
  struct LeaderInfo {
    uint64_t raft_id = 0;
    std::string node_id;
    std::string addr;
  };
  std::optional<LeaderInfo> Leader() const;
  // The leader, waiting for one while an election may be under way or this manager, just
  // started, has not heard from it yet: at most the time after which silent peers count as
  // unreachable (two election timeouts). Only for request threads, never a component's.
  std::optional<LeaderInfo> AwaitLeader() const;
  // UNAVAILABLE, explaining that there is no leader: how many managers are unreachable, and
  // that `swarm init --force-new-cluster` recovers when they are gone for good. When quorum is
  // lost (not merely an election under way) the status carries kNoQuorumDetail as its details,
  // so that callers know retrying soon is pointless.
  grpc::Status NoLeaderStatus() const;

  // Proposes a batch; `done` runs once it is applied here or can no longer be, in the raft
  // node's serializer (or on the calling thread when refused at once). Never blocks: this is
  // how components write. Only on the leader.
  void Propose(api::StoreBatch batch, std::function<void(const WriteResult&)> done);
  // Proposes a batch and waits until it is applied here: for request threads only.
  grpc::Status Write(api::StoreBatch batch,
                     std::chrono::milliseconds timeout = std::chrono::seconds(4));
  WriteResult WriteAndWait(api::StoreBatch batch,
                           std::chrono::milliseconds timeout = std::chrono::seconds(4));

  // Registers a leader-only component (before Start).
  void AddLeaderComponent(std::unique_ptr<LeaderComponent> component);
  // The manager's io_context, for components' strands and timers.
  boost::asio::io_context& io();
  // Read-modify-write of one object: `modify` changes a fresh copy, or refuses with an error.
  // Nothing is written when it changed nothing; a write that lost a race with another change
  // ("update out of sequence") is made again from the newer copy.
  grpc::Status UpdateNode(const std::string& id,
                          const std::function<grpc::Status(api::Node&)>& modify,
                          api::Node* updated = nullptr);
  grpc::Status UpdateCluster(const std::function<grpc::Status(api::Cluster&)>& modify);
  // UpdateNode without waiting, for components: `done` (if any) gets the outcome, on the raft
  // node's serializer or the io_context; it must not block.
  void UpdateNodeAsync(const std::string& id, std::function<grpc::Status(api::Node&)> modify,
                       std::function<void(const grpc::Status&)> done = {});

  raft::NodeStatus RaftStatus() const;
  // Leader, Reachable, Unreachable, or empty for a node outside the raft group.
  std::string ManagerStatusOf(const api::Node& node) const;
  std::vector<api::ManagerPeer> Managers() const;
  // Whether removing raft member `raft_id` keeps a reachable quorum; if not, why not.
  std::optional<std::string> QuorumRiskOfRemoving(uint64_t raft_id, const std::string& what) const;

  // A channel to another manager, authenticated with this node's certificate.
  std::shared_ptr<grpc::Channel> ChannelTo(const std::string& addr);
  Dispatcher& dispatcher();
  ControlApi& control();

  class Impl;

 private:
  ManagerOptions options_;
  Store store_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace skep::manager
