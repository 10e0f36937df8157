// The managers' store: the cluster's objects in memory, changed only by applying committed
// raft entries (StoreBatch: actions applied together or not at all). Reads are served from any
// thread; Apply runs in the raft node's serializer. Watchers hear of every change after it is
// applied.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "daemon/raft_node.h"
#include "objects.pb.h"

namespace skep::manager {

struct StoreEvent {
  api::StoreAction::Kind kind;
  std::optional<api::Node> node;        // after the change (before it, for REMOVE)
  std::optional<api::Cluster> cluster;  // after the change
};

// Why a batch was refused; the same on every manager, since apply is deterministic.
struct ApplyResult {
  bool ok = true;
  std::string error;
};

class Store final : public RaftStateMachine {
 public:
  std::optional<api::Node> GetNode(const std::string& id) const;
  std::vector<api::Node> ListNodes() const;
  std::optional<api::Cluster> GetCluster() const;
  // The node holding a raft ID, if any.
  std::optional<api::Node> NodeByRaftId(uint64_t raft_id) const;
  // The index of the last entry applied.
  uint64_t applied_index() const;

  // Called with the outcome once the batch with this request ID is applied here.
  void ExpectOutcome(const std::string& request_id, std::function<void(const ApplyResult&)> done);
  // Drops an expectation (the proposal failed or timed out).
  void ForgetOutcome(const std::string& request_id);
  // Called in the raft node's serializer after each applied change.
  void Watch(std::function<void(const StoreEvent&)> watcher);

  // Checks a batch against the current objects, as Apply would, without changing anything.
  ApplyResult Validate(const api::StoreBatch& batch) const;

  // RaftStateMachine
  void Apply(const raftpb::Entry& entry) override;
  std::function<std::string()> Snapshot() override;
  void Restore(const raftpb::Snapshot& snapshot) override;

 private:
  ApplyResult CheckLocked(const api::StoreBatch& batch) const;

  mutable std::shared_mutex mu_;
  std::map<std::string, api::Node> nodes_;
  std::map<std::string, api::Cluster> clusters_;
  uint64_t applied_ = 0;

  std::mutex watch_mu_;
  std::vector<std::function<void(const StoreEvent&)>> watchers_;
  std::map<std::string, std::function<void(const ApplyResult&)>> outcomes_;
};

}  // namespace skep::manager
