// Test doubles for the manager's parts: a clock moved by hand, and a context whose store is real
// (in memory) but whose proposals are applied at once, without raft, and whose leadership the
// test sets. The parts run on the test's io_context, which the context keeps from running out of
// work: tests run what is ready with poll() after each step.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "daemon/executor/registry.h"
#include "daemon/manager/context.h"
#include "daemon/manager/membership.h"

namespace skep::testing {

// A committed raft entry (term 1) holding `batch`, as the store applies it.
inline raftpb::Entry EntryOf(uint64_t index, const api::StoreBatch& batch) {
  raftpb::Entry e;
  e.set_index(index);
  e.set_term(1);
  e.set_data(batch.SerializeAsString());
  return e;
}

// Time that moves only when Advance says so; its timers are posted to their executors then.
class ManualClock final : public Clock {
 public:
  int64_t Now() const override;
  Steady SteadyNow() const override;
  std::unique_ptr<Timer> At(boost::asio::any_io_executor executor, Steady when,
                            std::function<void()> f) override;
  // Moves both clocks forward, posting every timer that comes due, in order of time.
  void Advance(std::chrono::nanoseconds d);
  // Timers not fired or cancelled yet.
  size_t Pending() const;

 private:
  struct Entry {
    Steady when;
    uint64_t seq;
    boost::asio::any_io_executor executor;
    std::function<void()> f;
    std::shared_ptr<std::atomic<bool>> live;
  };
  mutable std::mutex mu_;
  int64_t wall_ = 1'700'000'000'000'000'000;
  Steady steady_ = Steady() + std::chrono::hours(1);
  uint64_t seq_ = 0;
  std::vector<Entry> timers_;
};

class FakeContext final : public manager::ServiceContext {
 public:
  explicit FakeContext(boost::asio::io_context& io);

  // Test controls.
  ManualClock& manual_clock() { return clock_; }
  manager::Store& mutable_store() { return store_; }
  // Applies `actions` as one committed entry, as if another manager had written them.
  void Apply(const std::vector<api::StoreAction>& actions);
  void SetLeadership(const manager::Leadership& l);
  // Every batch proposed (and applied, or refused by the store), in order.
  const std::vector<api::StoreBatch>& proposals() const { return proposals_; }
  // Proposals are refused with this while set.
  std::optional<Status> refuse;
  std::map<uint64_t, std::string> manager_status;  // ManagerStatusOf by raft id

  // Context.
  const manager::Store& store() const override { return store_; }
  void Propose(api::StoreBatch batch, manager::Done done, uint64_t term = 0) override;
  manager::Strand MakeStrand() override;
  Clock& clock() override { return clock_; }
  manager::Leadership leadership() const override;
  Subscription WatchLeadership(std::function<void(const manager::Leadership&)> f) override;
  std::vector<api::ManagerPeer> Managers() const override { return {}; }
  Subscription WatchManagers(std::function<void()> f) override { return managers_.Add(f); }
  // ServiceContext.
  const Identity& self() const override { return self_; }
  std::string ManagerStatusOf(const api::Node& node) const override;
  std::optional<std::string> QuorumRiskOfRemoving(uint64_t, const std::string&) const override {
    return std::nullopt;
  }
  Status NoLeaderStatus() const override { return {Code::kNoLeader, "no leader"}; }
  std::chrono::milliseconds LeaderWait() const override { return std::chrono::seconds(4); }
  std::shared_ptr<grpc::Channel> ChannelTo(const std::string&) override { return nullptr; }
  const executor::RegistryConfig& registry() const override { return registry_; }
  boost::asio::any_io_executor blocking() override { return io_.get_executor(); }

 private:
  boost::asio::io_context& io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  ManualClock clock_;
  manager::Store store_;
  uint64_t index_ = 0;
  Identity self_{"self-node", 1, "10.0.0.1:2377"};
  executor::RegistryConfig registry_;
  std::vector<api::StoreBatch> proposals_;
  mutable std::mutex mu_;
  manager::Leadership leadership_;
  Observers<const manager::Leadership&> leadership_watchers_;
  Observers<> managers_;
};

// The raft group's side of membership, as a test drives it.
class FakeRaft final : public manager::RaftMembership {
 public:
  struct Change {
    raftpb::ConfChangeType type;
    uint64_t raft_id;
    std::string addr;
  };
  raft::NodeStatus status;
  std::vector<Change> changes;
  std::vector<uint64_t> transfers;
  std::map<uint64_t, bool> reachable;  // absent: reachable
  std::map<uint64_t, std::string> quorum_risk;
  // Applies each change to `status` (the member joins as a learner, becomes a voter, leaves)
  // and answers OK at once.
  void Publish() { watchers_.Notify(status); }

  raft::NodeStatus RaftStatus() const override { return status; }
  Subscription WatchStatus(std::function<void(const raft::NodeStatus&)> f) override {
    return watchers_.Add(std::move(f));
  }
  void ChangeMembers(raftpb::ConfChangeType type, uint64_t raft_id, std::string addr,
                     manager::Done done) override;
  void TransferLeadership(uint64_t raft_id, manager::Done done) override {
    transfers.push_back(raft_id);
    done(Status::Ok());
  }
  bool Reachable(uint64_t raft_id) const override {
    auto it = reachable.find(raft_id);
    return it == reachable.end() || it->second;
  }
  std::optional<std::string> QuorumRiskOfRemoving(uint64_t raft_id,
                                                  const std::string&) const override {
    auto it = quorum_risk.find(raft_id);
    if (it == quorum_risk.end()) return std::nullopt;
    return it->second;
  }
  std::chrono::milliseconds ElectionTimeout() const override {
    return std::chrono::milliseconds(400);
  }

 private:
  Observers<const raft::NodeStatus&> watchers_;
};

}  // namespace skep::testing
