// The managers' store: the cluster's objects in memory, one table per kind (nodes, the cluster,
// services, tasks, networks) with indexes, changed only by applying committed raft entries
// (StoreBatch: actions applied together or not at all). Reads are served from any thread, either
// object by object or through a consistent view across kinds (View); Apply runs in the raft node's
// serializer. Watchers hear of every change after it is applied, in order, stamped with the
// raft index of the entry; a watcher only enqueues.
//
// Invariant: every object's meta.version is the index of the entry that last changed it, so an
// update names the version it was made from and one made from an older version is refused
// identically on every manager.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "daemon/common/observers.h"
#include "daemon/common/rwlock.h"
#include "daemon/common/status.h"
#include "daemon/manager/raft_node.h"
#include "objects.pb.h"

namespace skep::manager {

// The store's objects are immutable once stored: a change stores a new object, so a reader may
// keep one past its read (Share*) without a copy, and an event hands out the store's own.
template <class T>
using Shared = std::shared_ptr<const T>;
using StoreObject = std::variant<Shared<api::Node>, Shared<api::Cluster>, Shared<api::Service>,
                                 Shared<api::Task>, Shared<api::Network>>;

struct StoreEvent {
  uint64_t index = 0;  // the raft entry (one batch) the change belongs to
  bool last_in_batch = false;
  api::StoreAction::Kind kind = api::StoreAction::UPDATE;
  StoreObject object;              // after the change (before it, for REMOVE)
  std::optional<StoreObject> old;  // before the change, for UPDATE

  const api::Node* node() const { return as<api::Node>(object); }
  const api::Cluster* cluster() const { return as<api::Cluster>(object); }
  const api::Service* service() const { return as<api::Service>(object); }
  const api::Task* task() const { return as<api::Task>(object); }
  const api::Network* network() const { return as<api::Network>(object); }
  template <class T>
  const T* old_as() const {
    return old ? as<T>(*old) : nullptr;
  }
  template <class T>
  static const T* as(const StoreObject& o) {
    const auto* p = std::get_if<Shared<T>>(&o);
    return p ? p->get() : nullptr;
  }
};

// A control request applied recently, by the ID its entry point gave it: the same request
// proposed again (forwarded again after a leader was lost) is answered from this instead of
// being applied twice.
struct AppliedRequest {
  uint64_t index = 0;      // the entry it was applied at
  std::string created_id;  // the object its batch created first, if any
};

class Store;

// A consistent view of every table, held for the duration of Store::View. Pointers it returns
// are valid only inside that call.
class ReadTx {
 public:
  const api::Cluster* cluster() const;
  const api::Node* node(const std::string& id) const;
  const api::Node* node_by_raft_id(uint64_t raft_id) const;
  std::vector<const api::Node*> nodes() const;
  const api::Service* service(const std::string& id) const;
  const api::Service* service_by_name(const std::string& name) const;
  std::vector<const api::Service*> services() const;
  const api::Task* task(const std::string& id) const;
  std::vector<const api::Task*> tasks() const;
  std::vector<const api::Task*> tasks_of_service(const std::string& service_id) const;
  // The services that have tasks (a removed service's, until they go, among them).
  std::vector<std::string> services_with_tasks() const;
  std::vector<const api::Task*> tasks_on_node(const std::string& node_id) const;
  std::vector<const api::Task*> tasks_in_slot(const std::string& service_id, uint64_t slot) const;
  std::vector<const api::Task*> tasks_desired(api::TaskState desired) const;
  // The store's own objects, to keep past the read without copying them.
  Shared<api::Task> share_task(const std::string& id) const;
  std::vector<Shared<api::Task>> share_tasks_of_service(const std::string& service_id) const;
  std::vector<Shared<api::Task>> share_tasks_on_node(const std::string& node_id) const;
  // Tasks that want to run and are not placed yet (desired RUNNING, observed PENDING).
  std::vector<Shared<api::Task>> share_tasks_waiting() const;
  std::vector<Shared<api::Task>> share_tasks_in_state(api::TaskState observed) const;
  // Tasks that hold addresses on networks and have not ended.
  std::vector<Shared<api::Task>> share_tasks_with_addresses() const;
  std::vector<Shared<api::Node>> share_nodes() const;
  std::vector<Shared<api::Service>> share_services() const;
  std::vector<Shared<api::Network>> share_networks() const;
  size_t task_count() const;
  const api::Network* network(const std::string& id) const;
  const api::Network* network_by_name(const std::string& name) const;
  std::vector<const api::Network*> networks() const;

 private:
  friend class Store;
  explicit ReadTx(const Store& s) : s_(s) {}
  const Store& s_;
};

// A read that holds the store for long holds up the raft node's apply (and so its clock): it
// is logged, with where it was made. (The builtins, not std::source_location, which Debian 12's
// clang cannot compile with its libstdc++.)
struct SlowRead {
  const char* file;
  unsigned line;
  std::chrono::steady_clock::time_point start;
  ~SlowRead();
};

// The version gate for a write of store `format` (see kStoreFormat): OK when every manager
// (or node on its way to be one) reads it, else kFailedPrecondition naming one that does not:
// "<what> needs every manager to read store format 2; m2 runs skep 0.1.0, which reads up to
// 1: upgrade it first". Checked before such a write is proposed.
Status CheckStoreFormat(const ReadTx& tx, uint32_t format, std::string_view what);

class Store final : public RaftStateMachine {
 public:
  Store();
  ~Store() override;

  // A consistent view across kinds: `f(const ReadTx&)` runs under the store's read lock, so it
  // must be quick and must not write.
  template <class F>
  auto View(F&& f, const char* file = __builtin_FILE(), unsigned line = __builtin_LINE()) const {
    ReaderLock lock(mu_);
    const SlowRead timer{file, line, std::chrono::steady_clock::now()};
    return f(ReadTx(*this));
  }

  // Copies, for callers that keep what they read.
  std::optional<api::Node> GetNode(const std::string& id) const;
  std::vector<api::Node> ListNodes() const;
  std::optional<api::Cluster> GetCluster() const;
  std::optional<api::Node> NodeByRaftId(uint64_t raft_id) const;
  std::optional<api::Service> GetService(const std::string& id) const;
  std::vector<api::Service> ListServices() const;
  std::optional<api::Task> GetTask(const std::string& id) const;
  std::vector<api::Task> TasksOfService(const std::string& service_id) const;
  // The index of the last entry applied.
  uint64_t applied_index() const;

  // Called with the outcome once the batch with this request ID is applied here: OK, or why
  // the store refused it (kConflict, kAlreadyExists, kNotFound, kInvalidArgument), the same on
  // every manager since apply is deterministic.
  void ExpectOutcome(const std::string& request_id, std::function<void(const Status&)> done);
  // Drops an expectation (the proposal failed or timed out).
  void ForgetOutcome(const std::string& request_id);
  // `watcher` runs where entries are applied (the raft node's apply thread) after each applied
  // change, and for every object a snapshot restore adds, changes or removes.
  [[nodiscard]] Subscription Watch(std::function<void(const StoreEvent&)> watcher) const;

  // Checks a batch against the current objects, as Apply would, without changing anything.
  Status Validate(const api::StoreBatch& batch) const;
  // The control request with this ID (StoreBatch.client_request_id), if it was applied among
  // the last kAppliedRequestsKept.
  std::optional<AppliedRequest> Applied(const std::string& client_request_id) const;
  static constexpr size_t kAppliedRequestsKept = 10000;

  // RaftStateMachine
  void Apply(const raftpb::Entry& entry) override;
  std::function<std::string()> Snapshot() override;
  void Restore(const raftpb::Snapshot& snapshot) override;

 private:
  friend class ReadTx;
  struct Tables;
  // For ReadTx, which exists only inside View, under the read lock (the analysis cannot follow
  // the lock into View's `f`).
  const Tables& tables() const SKEP_NO_THREAD_SAFETY_ANALYSIS { return *t_; }
  Status CheckLocked(const api::StoreBatch& batch) const SKEP_REQUIRES_SHARED(mu_);
  void Remember(const std::string& client_request_id, const AppliedRequest& r)
      SKEP_REQUIRES(mu_);
  void Notify(const std::vector<StoreEvent>& events);

  mutable WriterFirstMutex mu_;  // Apply, the raft node's, must not wait behind readers
  std::unique_ptr<Tables> t_ SKEP_GUARDED_BY(mu_) SKEP_PT_GUARDED_BY(mu_);
  uint64_t applied_ SKEP_GUARDED_BY(mu_) = 0;
  // The newest store format among what was applied (a snapshot writes it as its own).
  uint32_t format_ SKEP_GUARDED_BY(mu_) = 1;

  // The control requests applied last, oldest first, and by ID.
  std::deque<std::string> applied_order_ SKEP_GUARDED_BY(mu_);
  std::unordered_map<std::string, AppliedRequest> applied_requests_ SKEP_GUARDED_BY(mu_);

  mutable Observers<const StoreEvent&> watchers_;
  Mutex outcomes_mu_;
  std::map<std::string, std::function<void(const Status&)>> outcomes_ SKEP_GUARDED_BY(outcomes_mu_);
};

}  // namespace skep::manager
