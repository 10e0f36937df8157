// What the manager's parts may use, and no more. Components (the orchestrator, the allocator,
// the scheduler, the dispatcher, membership) get a Context: the store, proposals, strands, a
// clock and where this manager stands. The API services (control, CA) get a ServiceContext,
// which adds what answering a client takes: this manager's identity, the raft group's health,
// channels to the other managers and the registry. The Manager implements both; unit tests drive
// the parts with fakes of them (tests/manager/fakes.h), a manual clock and no lab.
//
// Nothing here blocks. Callbacks (`done`, watchers) run on the manager's own threads and must
// only post to the caller's strand.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control.pb.h"
#include "daemon/common/clock.h"
#include "daemon/common/observers.h"
#include "daemon/common/status.h"
#include "daemon/manager/store.h"
#include "objects.pb.h"

namespace grpc {
class Channel;
}

namespace skep::executor {
struct RegistryConfig;
}

namespace skep::manager {

using Strand = boost::asio::strand<boost::asio::any_io_executor>;
using Done = std::function<void(const Status&)>;

// Who leads the raft group.
struct LeaderInfo {
  uint64_t raft_id = 0;
  std::string node_id;  // empty until this manager's store names the node
  std::string addr;     // ip:port on 2377; empty while unknown
};

// Where this manager stands in the raft group, as of the last change.
struct Leadership {
  bool leader = false;   // it leads
  bool serving = false;  // it leads and has applied everything committed before its term
  uint64_t term = 0;
  std::optional<LeaderInfo> leader_info;  // who leads (this manager or another), when known
  // A leader is known, with an address to reach it at.
  bool Reachable() const { return leader_info && !leader_info->addr.empty(); }
};

// Something only the leader runs (the orchestrator, the allocator, the scheduler, membership).
// Started once this manager leads and serves, with the term it leads in; stopped when it steps
// down or stops. Both return at once: the work happens on the component's strand, and what it
// proposes carries its term, so that nothing of a stopped component reaches a later term's log.
class LeaderComponent {
 public:
  virtual ~LeaderComponent() = default;
  virtual void Start(uint64_t term) = 0;
  virtual void Stop() = 0;
};

class Context {
 public:
  virtual ~Context() = default;

  virtual const Store& store() const = 0;
  // Proposes a batch; `done` gets the outcome once it is applied here or can no longer be:
  // OK; the store's refusal (kConflict, kAlreadyExists, kNotFound, kInvalidArgument); or
  // kNotLeader, kNoLeader, kNoQuorum, kOutcomeUnknown. With `term` (a leader component's), only
  // while this manager leads in that term. `done` may run before Propose returns.
  virtual void Propose(api::StoreBatch batch, Done done, uint64_t term = 0) = 0;
  // A strand on the manager's threads, for a component's state.
  virtual Strand MakeStrand() = 0;
  virtual Clock& clock() = 0;

  virtual Leadership leadership() const = 0;
  // `f` runs after every change of leadership(), with the new state.
  [[nodiscard]] virtual Subscription WatchLeadership(std::function<void(const Leadership&)> f) = 0;
  // The raft group's members and where they listen (what nodes fall back on).
  virtual std::vector<api::ManagerPeer> Managers() const = 0;
  [[nodiscard]] virtual Subscription WatchManagers(std::function<void()> f) = 0;
};

// A request to an API service as its entry point (the first manager it reached) received it.
struct CallInfo {
  std::string request_id;  // the entry point's name for it; a write with it applies once
  bool forwarded = false;  // another manager forwarded it: it goes no further
  std::optional<Clock::Steady> deadline;  // the client's, if it gave one
};

class ServiceContext : public Context {
 public:
  struct Identity {
    std::string node_id;
    uint64_t raft_id = 0;
    std::string advertise_addr;
  };
  virtual const Identity& self() const = 0;
  // Leader, Reachable, Unreachable, or empty for a node outside the raft group.
  virtual std::string ManagerStatusOf(const api::Node& node) const = 0;
  // Whether removing raft member `raft_id` keeps a reachable quorum; if not, why not.
  virtual std::optional<std::string> QuorumRiskOfRemoving(uint64_t raft_id,
                                                          const std::string& what) const = 0;
  // Why there is no leader: kNoLeader while an election can succeed (how many managers are
  // reachable), kNoQuorum when too few managers are reachable for one.
  virtual Status NoLeaderStatus() const = 0;
  // How long a request waits for a leader (or for this one to serve) before it gives up: a
  // few election timeouts.
  virtual std::chrono::milliseconds LeaderWait() const = 0;
  // A channel to another manager, authenticated with this node's certificate.
  virtual std::shared_ptr<grpc::Channel> ChannelTo(const std::string& addr) = 0;
  // How this manager reaches registries, and the threads that may block on them.
  virtual const executor::RegistryConfig& registry() const = 0;
  virtual boost::asio::any_io_executor blocking() = 0;
};

}  // namespace skep::manager
