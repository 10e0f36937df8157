// A manager: a member of the raft group that replicates the cluster's store, listening on 2377
// for the other managers (raft), for every node (dispatcher, CA) and for forwarded control
// requests. It composes the parts and gives them what they use (context.h): the raft driver on
// a thread of its own, the store, the group's view (group.h), the leader components (the
// orchestrator, the allocator, the scheduler, network keys, membership), the dispatcher and the
// API services, all on strands of two threads. Nothing in it waits for raft.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control.pb.h"
#include "daemon/common/tls.h"
#include "daemon/executor/registry.h"
#include "daemon/manager/context.h"
#include "daemon/manager/membership.h"
#include "objects.pb.h"

namespace grpc {
class Service;
}

namespace skep::manager {

class ControlApi;

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
  // For kNewCluster: the objects the cluster starts with (bootstrap.h makes them).
  std::vector<api::StoreAction> initial_objects;
};

class Manager final : public ServiceContext, public RaftMembership {
 public:
  explicit Manager(ManagerOptions options);
  ~Manager() override;
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Opens the raft log (blocking disk reads: call it off any strand), starts raft and the
  // 2377 listener. Throws std::runtime_error.
  void Start();
  // For kNewCluster and kForceNewCluster: `done` once this manager leads and the initial
  // writes are committed (the new cluster's objects, or the left-out managers demoted), or
  // after `timeout`.
  void WhenReady(std::chrono::milliseconds timeout, Done done);
  // Stops everything; waits for the threads it started.
  void Stop();

  const ManagerOptions& options() const { return options_; }
  ControlApi& control();

  // ServiceContext.
  const Store& store() const override;
  void Propose(api::StoreBatch batch, Done done, uint64_t term = 0) override;
  Strand MakeStrand() override;
  Clock& clock() override;
  Leadership leadership() const override;
  Subscription WatchLeadership(std::function<void(const Leadership&)> f) override;
  std::vector<api::ManagerPeer> Managers() const override;
  Subscription WatchManagers(std::function<void()> f) override;
  const Identity& self() const override;
  std::string ManagerStatusOf(const api::Node& node) const override;
  std::optional<std::string> QuorumRiskOfRemoving(uint64_t raft_id,
                                                  const std::string& what) const override;
  Status NoLeaderStatus() const override;
  std::chrono::milliseconds LeaderWait() const override;
  std::shared_ptr<grpc::Channel> ChannelTo(const std::string& addr) override;
  const executor::RegistryConfig& registry() const override;
  boost::asio::any_io_executor blocking() override;

  // RaftMembership.
  raft::NodeStatus RaftStatus() const override;
  Subscription WatchStatus(std::function<void(const raft::NodeStatus&)> f) override;
  void ChangeMembers(raftpb::ConfChangeType type, uint64_t raft_id, std::string addr,
                     Done done) override;
  void TransferLeadership(uint64_t raft_id, Done done) override;
  bool Reachable(uint64_t raft_id) const override;
  std::chrono::milliseconds ElectionTimeout() const override;

  class Impl;

 private:
  // Start's steps, in order.
  void OpenLog();
  std::map<uint64_t, std::string> StartRaft();  // returns the peers known from the options
  void AddComponents(std::map<uint64_t, std::string> known_peers);
  void MakeServices();
  void RunThreads();
  void Listen();

  ManagerOptions options_;
  Identity self_;
  std::unique_ptr<Impl> impl_;
};

// Converts the raft core's outcome of a proposal or a configuration change.
Status FromRaft(const raft::Status& st);

}  // namespace skep::manager
