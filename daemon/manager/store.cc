#include "daemon/manager/store.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>

#include <algorithm>
#include <stdexcept>

#include "daemon/common/log.h"
#include "daemon/common/version.h"
#include "daemon/manager/allocator/networks.h"

namespace skep::manager {

namespace {
constexpr std::chrono::milliseconds kSlow(100);

// A format field's value: 0 (written before formats were numbered) is format 1.
uint32_t FormatOf(uint32_t field) {
  return field == 0 ? 1 : field;
}
}  // namespace

Status CheckStoreFormat(const ReadTx& tx, uint32_t format, std::string_view what) {
  for (const api::Node* n : tx.nodes()) {
    if (n->role() != api::ROLE_MANAGER && n->spec().desired_role() != api::ROLE_MANAGER) continue;
    const uint32_t reads = FormatOf(n->description().store_format());
    if (reads >= format) continue;
    const std::string name = n->description().hostname().empty() ? n->id()
                                                                  : n->description().hostname();
    const std::string version = n->description().engine_version().empty()
                                    ? "an older skep"
                                    : "skep " + n->description().engine_version();
    return FailedPrecondition(std::string(what) + " needs every manager to read store format " +
                              std::to_string(format) + "; " + name + " runs " + version +
                              ", which reads up to " + std::to_string(reads) +
                              ": upgrade it first");
  }
  return Status::Ok();
}

SlowRead::~SlowRead() {
  const auto held = std::chrono::steady_clock::now() - start;
  if (held > kSlow) {
    SKEP_LOG(warn, "store", "a read at {}:{} held the store for {} ms", file, line,
             std::chrono::duration_cast<std::chrono::milliseconds>(held).count());
  }
}

// ---------------------------------------------------------------------------------------------
// Tables and their indexes

template <class T>
using Rows = std::map<std::string, Shared<T>>;

struct Store::Tables {
  Rows<api::Node> nodes;
  std::map<uint64_t, std::string> node_by_raft_id;
  Rows<api::Cluster> clusters;
  Rows<api::Service> services;
  std::map<std::string, std::string> service_by_name;
  Rows<api::Task> tasks;
  // The tasks' indexes hold the objects themselves, in the order of their IDs.
  std::map<std::string, Rows<api::Task>> task_by_service;
  std::map<std::string, Rows<api::Task>> task_by_node;
  std::map<std::pair<std::string, uint64_t>, Rows<api::Task>> task_by_slot;
  std::map<int, Rows<api::Task>> task_by_desired;
  std::map<int, Rows<api::Task>> task_by_state;  // observed
  Rows<api::Task> task_waiting;    // desired RUNNING, observed PENDING: the scheduler's
  Rows<api::Task> task_addressed;  // not ended, with network addresses: the allocator's
  Rows<api::Network> networks;
  std::map<std::string, std::string> network_by_name;

  void Index(const api::Node& n) {
    if (n.raft_id() != 0) node_by_raft_id[n.raft_id()] = n.id();
  }
  void Unindex(const api::Node& n) {
    auto it = node_by_raft_id.find(n.raft_id());
    if (it != node_by_raft_id.end() && it->second == n.id()) node_by_raft_id.erase(it);
  }
  void Index(const api::Cluster&) {}
  void Unindex(const api::Cluster&) {}
  void Index(const api::Service& s) { service_by_name[s.spec().name()] = s.id(); }
  void Unindex(const api::Service& s) {
    auto it = service_by_name.find(s.spec().name());
    if (it != service_by_name.end() && it->second == s.id()) service_by_name.erase(it);
  }
  void Index(const api::Network& n) { network_by_name[n.spec().name()] = n.id(); }
  void Unindex(const api::Network& n) {
    auto it = network_by_name.find(n.spec().name());
    if (it != network_by_name.end() && it->second == n.id()) network_by_name.erase(it);
  }
  template <class T>
  void Index(const Shared<T>& obj) {
    Index(*obj);
  }
  void Index(const Shared<api::Task>& p) {
    const api::Task& t = *p;
    // A restore adds the tasks in the order of their IDs: each goes in at the end, without a
    // search (a wrong hint costs a comparison or two).
    auto add = [&](Rows<api::Task>& rows) { rows.emplace_hint(rows.end(), t.id(), p); };
    add(task_by_service[t.service_id()]);
    if (!t.node_id().empty()) add(task_by_node[t.node_id()]);
    add(task_by_slot[{t.service_id(), t.slot()}]);
    add(task_by_desired[t.desired_state()]);
    add(task_by_state[t.status().state()]);
    if (Waiting(t)) add(task_waiting);
    if (Addressed(t)) add(task_addressed);
  }
  static bool Waiting(const api::Task& t) {
    return t.desired_state() == api::TASK_RUNNING && t.status().state() == api::TASK_PENDING;
  }
  static bool Addressed(const api::Task& t) {
    return t.status().state() <= api::TASK_RUNNING && t.networks_size() > 0;
  }
  void Unindex(const api::Task& t) {
    auto drop = [&](auto& index, const auto& key) {
      auto it = index.find(key);
      if (it == index.end()) return;
      it->second.erase(t.id());
      if (it->second.empty()) index.erase(it);
    };
    drop(task_by_service, t.service_id());
    if (!t.node_id().empty()) drop(task_by_node, t.node_id());
    drop(task_by_slot, std::make_pair(t.service_id(), t.slot()));
    drop(task_by_desired, static_cast<int>(t.desired_state()));
    drop(task_by_state, static_cast<int>(t.status().state()));
    task_waiting.erase(t.id());
    task_addressed.erase(t.id());
  }
  // `now` replaces `old`, the same object's previous version.
  template <class T>
  void Reindex(const T& old, const Shared<T>& now) {
    Unindex(old);
    Index(now);
  }
  // Most updates of a task change none of its keys (a status report): the entries then only
  // point at the new version, without leaving or joining an index.
  void Reindex(const api::Task& old, const Shared<api::Task>& p) {
    const api::Task& t = *p;
    const std::string& id = t.id();
    auto move = [&](auto& index, const auto& from, bool was, const auto& to, bool is) {
      if (was && is && from == to) {
        index.find(from)->second.find(id)->second = p;
        return;
      }
      if (was) {
        auto it = index.find(from);
        it->second.erase(id);
        if (it->second.empty()) index.erase(it);
      }
      if (is) index[to].emplace(id, p);
    };
    auto move_in = [&](Rows<api::Task>& rows, bool was, bool is) {
      if (was && is) {
        rows.find(id)->second = p;
      } else if (was) {
        rows.erase(id);
      } else if (is) {
        rows.emplace(id, p);
      }
    };
    move(task_by_service, old.service_id(), true, t.service_id(), true);
    move(task_by_node, old.node_id(), !old.node_id().empty(), t.node_id(), !t.node_id().empty());
    move(task_by_slot, std::make_pair(old.service_id(), old.slot()), true,
         std::make_pair(t.service_id(), t.slot()), true);
    move(task_by_desired, static_cast<int>(old.desired_state()), true,
         static_cast<int>(t.desired_state()), true);
    move(task_by_state, static_cast<int>(old.status().state()), true,
         static_cast<int>(t.status().state()), true);
    move_in(task_waiting, Waiting(old), Waiting(t));
    move_in(task_addressed, Addressed(old), Addressed(t));
  }

  auto& rows(const api::Node*) { return nodes; }
  auto& rows(const api::Cluster*) { return clusters; }
  auto& rows(const api::Service*) { return services; }
  auto& rows(const api::Task*) { return tasks; }
  auto& rows(const api::Network*) { return networks; }
  const auto& by_name(const api::Service*) const { return service_by_name; }
  const auto& by_name(const api::Network*) const { return network_by_name; }
  const auto& rows(const api::Network*) const { return networks; }
  const auto& rows(const api::Node*) const { return nodes; }
  const auto& rows(const api::Cluster*) const { return clusters; }
  const auto& rows(const api::Service*) const { return services; }
  const auto& rows(const api::Task*) const { return tasks; }
};

namespace {

const char* KindName(const api::Node*) {
  return "node";
}
const char* KindName(const api::Cluster*) {
  return "cluster";
}
const char* KindName(const api::Service*) {
  return "service";
}
const char* KindName(const api::Task*) {
  return "task";
}
const char* KindName(const api::Network*) {
  return "network";
}

// A name taken by another object of the kind (services and networks have unique names).
template <class T>
const std::string* NameTaken(const std::map<std::string, std::string>& by_name, const T& obj) {
  auto it = by_name.find(obj.spec().name());
  return it != by_name.end() && it->second != obj.id() ? &it->second : nullptr;
}

// Calls f(object) with the action's object, whatever its kind; false if it has none. The object
// is const when the action is: a non-const action's object may be taken.
template <class Action, class F>
bool VisitTarget(Action& a, F&& f) {
  auto pass = [&](const auto& obj) {
    using T = std::decay_t<decltype(obj)>;
    if constexpr (std::is_const_v<Action>) {
      f(obj);
    } else {
      f(const_cast<T&>(obj));  // a field of a non-const message
    }
  };
  switch (a.target_case()) {
    case api::StoreAction::kNode:
      pass(a.node());
      return true;
    case api::StoreAction::kCluster:
      pass(a.cluster());
      return true;
    case api::StoreAction::kService:
      pass(a.service());
      return true;
    case api::StoreAction::kTask:
      pass(a.task());
      return true;
    case api::StoreAction::kNetwork:
      pass(a.network());
      return true;
    default:
      return false;
  }
}

// The objects of `rows`, as Out: a raw pointer or the shared object.
template <class Out, class T>
std::vector<Out> Collect(const Rows<T>* rows) {
  std::vector<Out> out;
  if (rows == nullptr) return out;
  out.reserve(rows->size());
  for (const auto& [id, obj] : *rows) {
    if constexpr (std::is_pointer_v<Out>) {
      out.push_back(obj.get());
    } else {
      out.push_back(obj);
    }
  }
  return out;
}

template <class M, class K>
const typename M::mapped_type* Find(const M& index, const K& key) {
  auto it = index.find(key);
  return it == index.end() ? nullptr : &it->second;
}

template <class T>
const T* Lookup(const Rows<T>& rows, const std::string& id) {
  auto it = rows.find(id);
  return it == rows.end() ? nullptr : it->second.get();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ReadTx

const api::Cluster* ReadTx::cluster() const {
  return s_.tables().clusters.empty() ? nullptr : s_.tables().clusters.begin()->second.get();
}
const api::Node* ReadTx::node(const std::string& id) const {
  return Lookup(s_.tables().nodes, id);
}
const api::Node* ReadTx::node_by_raft_id(uint64_t raft_id) const {
  auto it = s_.tables().node_by_raft_id.find(raft_id);
  return it == s_.tables().node_by_raft_id.end() ? nullptr : node(it->second);
}
std::vector<const api::Node*> ReadTx::nodes() const {
  return Collect<const api::Node*>(&s_.tables().nodes);
}
const api::Service* ReadTx::service(const std::string& id) const {
  return Lookup(s_.tables().services, id);
}
const api::Service* ReadTx::service_by_name(const std::string& name) const {
  auto it = s_.tables().service_by_name.find(name);
  return it == s_.tables().service_by_name.end() ? nullptr : service(it->second);
}
std::vector<const api::Service*> ReadTx::services() const {
  return Collect<const api::Service*>(&s_.tables().services);
}
const api::Task* ReadTx::task(const std::string& id) const {
  return Lookup(s_.tables().tasks, id);
}
std::vector<const api::Task*> ReadTx::tasks() const {
  return Collect<const api::Task*>(&s_.tables().tasks);
}
std::vector<const api::Task*> ReadTx::tasks_of_service(const std::string& service_id) const {
  return Collect<const api::Task*>(Find(s_.tables().task_by_service, service_id));
}
std::vector<std::string> ReadTx::services_with_tasks() const {
  std::vector<std::string> out;
  out.reserve(s_.tables().task_by_service.size());
  for (const auto& [id, tasks] : s_.tables().task_by_service)
    out.push_back(id);
  return out;
}
std::vector<const api::Task*> ReadTx::tasks_on_node(const std::string& node_id) const {
  return Collect<const api::Task*>(Find(s_.tables().task_by_node, node_id));
}
std::vector<const api::Task*> ReadTx::tasks_in_slot(const std::string& service_id,
                                                    uint64_t slot) const {
  return Collect<const api::Task*>(Find(s_.tables().task_by_slot, std::make_pair(service_id, slot)));
}
std::vector<const api::Task*> ReadTx::tasks_desired(api::TaskState desired) const {
  return Collect<const api::Task*>(Find(s_.tables().task_by_desired, static_cast<int>(desired)));
}
Shared<api::Task> ReadTx::share_task(const std::string& id) const {
  auto it = s_.tables().tasks.find(id);
  return it == s_.tables().tasks.end() ? nullptr : it->second;
}
std::vector<Shared<api::Task>> ReadTx::share_tasks_of_service(const std::string& service_id) const {
  return Collect<Shared<api::Task>>(Find(s_.tables().task_by_service, service_id));
}
std::vector<Shared<api::Task>> ReadTx::share_tasks_on_node(const std::string& node_id) const {
  return Collect<Shared<api::Task>>(Find(s_.tables().task_by_node, node_id));
}
std::vector<Shared<api::Task>> ReadTx::share_tasks_waiting() const {
  return Collect<Shared<api::Task>>(&s_.tables().task_waiting);
}
std::vector<Shared<api::Task>> ReadTx::share_tasks_in_state(api::TaskState state) const {
  return Collect<Shared<api::Task>>(Find(s_.tables().task_by_state, static_cast<int>(state)));
}
std::vector<Shared<api::Task>> ReadTx::share_tasks_with_addresses() const {
  return Collect<Shared<api::Task>>(&s_.tables().task_addressed);
}
std::vector<Shared<api::Node>> ReadTx::share_nodes() const {
  return Collect<Shared<api::Node>>(&s_.tables().nodes);
}
std::vector<Shared<api::Service>> ReadTx::share_services() const {
  return Collect<Shared<api::Service>>(&s_.tables().services);
}
std::vector<Shared<api::Network>> ReadTx::share_networks() const {
  return Collect<Shared<api::Network>>(&s_.tables().networks);
}
size_t ReadTx::task_count() const {
  return s_.tables().tasks.size();
}
const api::Network* ReadTx::network(const std::string& id) const {
  return Lookup(s_.tables().networks, id);
}
const api::Network* ReadTx::network_by_name(const std::string& name) const {
  auto it = s_.tables().network_by_name.find(name);
  return it == s_.tables().network_by_name.end() ? nullptr : network(it->second);
}
std::vector<const api::Network*> ReadTx::networks() const {
  return Collect<const api::Network*>(&s_.tables().networks);
}

// ---------------------------------------------------------------------------------------------
// Store

Store::Store() : t_(std::make_unique<Tables>()) {}
Store::~Store() = default;

std::optional<api::Node> Store::GetNode(const std::string& id) const {
  return View([&](const ReadTx& tx) -> std::optional<api::Node> {
    if (const auto* n = tx.node(id)) return *n;
    return std::nullopt;
  });
}

std::vector<api::Node> Store::ListNodes() const {
  ReaderLock lock(mu_);
  const SlowRead timer{__FILE__, __LINE__, std::chrono::steady_clock::now()};
  std::vector<api::Node> out;
  out.reserve(t_->nodes.size());
  for (const auto& [id, n] : t_->nodes)
    out.push_back(*n);
  return out;
}

std::optional<api::Cluster> Store::GetCluster() const {
  return View([&](const ReadTx& tx) -> std::optional<api::Cluster> {
    if (const auto* c = tx.cluster()) return *c;
    return std::nullopt;
  });
}

std::optional<api::Node> Store::NodeByRaftId(uint64_t raft_id) const {
  return View([&](const ReadTx& tx) -> std::optional<api::Node> {
    if (const auto* n = tx.node_by_raft_id(raft_id)) return *n;
    return std::nullopt;
  });
}

std::optional<api::Service> Store::GetService(const std::string& id) const {
  return View([&](const ReadTx& tx) -> std::optional<api::Service> {
    if (const auto* s = tx.service(id)) return *s;
    return std::nullopt;
  });
}

std::vector<api::Service> Store::ListServices() const {
  ReaderLock lock(mu_);
  const SlowRead timer{__FILE__, __LINE__, std::chrono::steady_clock::now()};
  std::vector<api::Service> out;
  for (const auto& [id, s] : t_->services)
    out.push_back(*s);
  return out;
}

std::optional<api::Task> Store::GetTask(const std::string& id) const {
  return View([&](const ReadTx& tx) -> std::optional<api::Task> {
    if (const auto* t = tx.task(id)) return *t;
    return std::nullopt;
  });
}

std::vector<api::Task> Store::TasksOfService(const std::string& service_id) const {
  return View([&](const ReadTx& tx) {
    std::vector<api::Task> out;
    for (const auto* t : tx.tasks_of_service(service_id))
      out.push_back(*t);
    return out;
  });
}

uint64_t Store::applied_index() const {
  ReaderLock lock(mu_);
  const SlowRead timer{__FILE__, __LINE__, std::chrono::steady_clock::now()};
  return applied_;
}

void Store::ExpectOutcome(const std::string& request_id, std::function<void(const Status&)> done) {
  MutexLock lock(outcomes_mu_);
  outcomes_[request_id] = std::move(done);
}

void Store::ForgetOutcome(const std::string& request_id) {
  MutexLock lock(outcomes_mu_);
  outcomes_.erase(request_id);
}

std::optional<AppliedRequest> Store::Applied(const std::string& client_request_id) const {
  if (client_request_id.empty()) return std::nullopt;
  ReaderLock lock(mu_);
  auto it = applied_requests_.find(client_request_id);
  if (it == applied_requests_.end()) return std::nullopt;
  return it->second;
}

void Store::Remember(const std::string& client_request_id, const AppliedRequest& r) {
  if (!applied_requests_.emplace(client_request_id, r).second) return;
  applied_order_.push_back(client_request_id);
  while (applied_order_.size() > kAppliedRequestsKept) {
    applied_requests_.erase(applied_order_.front());
    applied_order_.pop_front();
  }
}

Subscription Store::Watch(std::function<void(const StoreEvent&)> watcher) const {
  return watchers_.Add(std::move(watcher));
}

Status Store::Validate(const api::StoreBatch& batch) const {
  ReaderLock lock(mu_);
  const SlowRead timer{__FILE__, __LINE__, std::chrono::steady_clock::now()};
  return CheckLocked(batch);
}

Status Store::CheckLocked(const api::StoreBatch& batch) const {
  const Tables& t = *t_;  // for the visitor below, which runs here, under the lock
  Status result;
  for (const auto& a : batch.actions()) {
    bool has_target = VisitTarget(a, [&](const auto& obj) {
      using T = std::decay_t<decltype(obj)>;
      const T* kind = nullptr;
      const std::string what = KindName(kind);
      const auto& rows = t.rows(kind);
      if (obj.id().empty()) {
        result = {Code::kInvalidArgument, "a " + what + " without an ID"};
        return;
      }
      auto it = rows.find(obj.id());
      switch (a.kind()) {
        case api::StoreAction::CREATE:
          if (it != rows.end()) {
            result = {Code::kAlreadyExists, what + " " + obj.id() + " already exists"};
            return;
          }
          if constexpr (std::is_same_v<T, api::Node>) {
            // A raft id names one node for good; two would fight over one raft identity.
            auto taken = t.node_by_raft_id.find(obj.raft_id());
            if (obj.raft_id() != 0 && taken != t.node_by_raft_id.end()) {
              result = {Code::kAlreadyExists, "raft id " + std::to_string(obj.raft_id()) +
                                                  " is taken by node " + taken->second};
              return;
            }
          }
          if constexpr (std::is_same_v<T, api::Service> || std::is_same_v<T, api::Network>) {
            if (NameTaken(t.by_name(kind), obj)) {
              result = {Code::kAlreadyExists,
                        what + " name \"" + obj.spec().name() + "\" is already in use"};
              return;
            }
          }
          if constexpr (std::is_same_v<T, api::Network>) {
            // Two creates that raced for one subnet or VNI: the later one loses, everywhere.
            for (const auto& [id, other] : t.networks) {
              if (std::string why = allocator::AllocationConflict(obj, *other); !why.empty()) {
                result = {Code::kAlreadyExists, why};
                return;
              }
            }
          }
          break;
        case api::StoreAction::UPDATE:
        case api::StoreAction::REMOVE:
          if (it == rows.end()) {
            result = {Code::kNotFound, what + " " + obj.id() + " not found"};
            return;
          }
          // An update made from an older version would overwrite a change it never saw.
          if (obj.meta().version() != it->second->meta().version()) {
            result = {Code::kConflict, "update out of sequence: " + what + " " + obj.id() +
                                           " changed since it was read (version " +
                                           std::to_string(obj.meta().version()) + ", now " +
                                           std::to_string(it->second->meta().version()) + ")"};
            return;
          }
          if constexpr (std::is_same_v<T, api::Service> || std::is_same_v<T, api::Network>) {
            if (a.kind() == api::StoreAction::UPDATE && NameTaken(t.by_name(kind), obj)) {
              result = {Code::kAlreadyExists,
                        what + " name \"" + obj.spec().name() + "\" is already in use"};
              return;
            }
          }
          break;
        default:
          result = {Code::kInvalidArgument, "unknown store action"};
          return;
      }
      // Networks and the services on them refer to each other only while both exist.
      if constexpr (std::is_same_v<T, api::Service>) {
        if (a.kind() == api::StoreAction::REMOVE) return;
        for (const auto& att : obj.spec().networks()) {
          if (!t.networks.count(att.target())) {
            result = {Code::kNotFound, "network " + att.target() + " not found"};
            return;
          }
        }
      }
      if constexpr (std::is_same_v<T, api::Network>) {
        if (a.kind() != api::StoreAction::REMOVE) return;
        for (const auto& [id, svc] : t.services) {
          for (const auto& att : svc->spec().networks()) {
            if (att.target() == obj.id()) {
              result = {Code::kConflict, "network " + obj.spec().name() + " is in use by service " +
                                             svc->spec().name()};
              return;
            }
          }
        }
      }
    });
    if (!has_target) return {Code::kInvalidArgument, "a store action without an object"};
    if (!result.ok()) return result;
  }
  return result;
}

void Store::Apply(const raftpb::Entry& entry) {
  std::vector<StoreEvent> events;
  Status result;
  api::StoreBatch batch;
  const bool is_batch = entry.type() == raftpb::ENTRY_NORMAL && !entry.data().empty();
  if (is_batch && !batch.ParseFromString(entry.data())) {
    result = {Code::kInvalidArgument, "a store entry that does not parse"};
  }
  const uint32_t format = is_batch && result.ok() ? FormatOf(batch.format()) : 0;
  if (format > kStoreFormat) {
    // Applying what it cannot read (an object of a kind it does not know would be an empty
    // action) would make this manager's store differ from the others'.
    throw std::runtime_error(
        "raft entry " + std::to_string(entry.index()) + " needs store format " +
        std::to_string(format) + ", and this skepd (" + std::string(Version()) +
        ") reads store formats up to " + std::to_string(kStoreFormat) + ": upgrade skepd");
  }
  {
    const auto asked = std::chrono::steady_clock::now();
    WriterLock lock(mu_);
    if (const auto waited = std::chrono::steady_clock::now() - asked; waited > kSlow) {
      SKEP_LOG(warn, "store", "applying entry {} waited {} ms for readers", entry.index(),
               std::chrono::duration_cast<std::chrono::milliseconds>(waited).count());
    }
    applied_ = entry.index();
    format_ = std::max(format_, format);
    // A control request applied before (proposed again after its leader was lost) is not
    // applied twice: its outcome was success.
    const bool again =
        is_batch && result.ok() && applied_requests_.count(batch.client_request_id()) > 0;
    if (is_batch && result.ok() && !again) result = CheckLocked(batch);
    if (is_batch && result.ok() && !again) {
      if (!batch.client_request_id().empty()) {
        AppliedRequest r{entry.index(), ""};
        for (const auto& a : batch.actions()) {
          if (a.kind() != api::StoreAction::CREATE) continue;
          VisitTarget(a, [&](const auto& obj) { r.created_id = obj.id(); });
          break;
        }
        Remember(batch.client_request_id(), r);
      }
      events.reserve(batch.actions_size());
      Tables& t = *t_;  // for the visitor below, which runs here, under the lock
      for (auto& a : *batch.mutable_actions()) {
        VisitTarget(a, [&](auto& given) {
          using T = std::decay_t<decltype(given)>;
          auto& rows = t.rows(static_cast<const T*>(nullptr));
          StoreEvent ev;
          ev.index = entry.index();
          ev.kind = a.kind();
          if (a.kind() == api::StoreAction::REMOVE) {
            auto it = rows.find(given.id());
            t.Unindex(*it->second);
            ev.object = std::move(it->second);
            rows.erase(it);
          } else {
            auto obj = std::make_shared<T>(std::move(given));
            auto it = rows.find(obj->id());
            const bool create = a.kind() == api::StoreAction::CREATE;
            obj->mutable_meta()->set_created_at(create ? batch.proposed_at()
                                                       : it->second->meta().created_at());
            obj->mutable_meta()->set_updated_at(batch.proposed_at());
            obj->mutable_meta()->set_version(entry.index());
            if (!create) {
              t.Reindex(*it->second, Shared<T>(obj));
              ev.old = std::move(it->second);
              it->second = obj;
            } else {
              rows.emplace(obj->id(), obj);
              t.Index(Shared<T>(obj));
            }
            ev.object = Shared<T>(std::move(obj));
          }
          events.push_back(std::move(ev));
        });
      }
      if (!events.empty()) events.back().last_in_batch = true;
    }
  }
  std::function<void(const Status&)> done;
  {
    MutexLock lock(outcomes_mu_);
    if (is_batch && !batch.request_id().empty()) {
      auto it = outcomes_.find(batch.request_id());
      if (it != outcomes_.end()) {
        done = std::move(it->second);
        outcomes_.erase(it);
      }
    }
  }
  Notify(events);
  if (done) done(result);
}

void Store::Notify(const std::vector<StoreEvent>& events) {
  if (events.empty()) return;
  watchers_.ForEach([&](const std::function<void(const StoreEvent&)>& fn) {
    for (const auto& ev : events)
      fn(ev);
  });
}

std::function<std::string()> Store::Snapshot() {
  // Under the lock only the objects are taken (they are immutable), in ID order; they are
  // encoded when the raft node asks for the bytes.
  struct Objects {
    std::vector<Shared<api::Node>> nodes;
    std::vector<Shared<api::Cluster>> clusters;
    std::vector<Shared<api::Service>> services;
    std::vector<Shared<api::Task>> tasks;
    std::vector<Shared<api::Network>> networks;
    std::vector<std::shared_ptr<const api::AppliedRequestRecord>> requests;
    uint32_t format = 1;
  };
  auto objects = std::make_shared<Objects>();
  {
    ReaderLock lock(mu_);
    objects->format = format_;
    const SlowRead timer{__FILE__, __LINE__, std::chrono::steady_clock::now()};
    objects->nodes = Collect<Shared<api::Node>>(&t_->nodes);
    objects->clusters = Collect<Shared<api::Cluster>>(&t_->clusters);
    objects->services = Collect<Shared<api::Service>>(&t_->services);
    objects->tasks = Collect<Shared<api::Task>>(&t_->tasks);
    objects->networks = Collect<Shared<api::Network>>(&t_->networks);
    objects->requests.reserve(applied_order_.size());
    for (const auto& id : applied_order_) {
      const AppliedRequest& r = applied_requests_.at(id);
      auto record = std::make_shared<api::AppliedRequestRecord>();
      record->set_id(id);
      record->set_index(r.index);
      record->set_created_id(r.created_id);
      objects->requests.push_back(std::move(record));
    }
  }
  return [objects] {
    // The bytes of an api::StoreSnapshot holding the objects, written from the objects
    // themselves rather than from copies of them in a message.
    std::string out;
    {
      google::protobuf::io::StringOutputStream stream(&out);
      google::protobuf::io::CodedOutputStream coded(&stream);
      auto write = [&](int field, const auto& list) {
        for (const auto& obj : list) {
          google::protobuf::internal::WireFormatLite::WriteTag(
              field, google::protobuf::internal::WireFormatLite::WIRETYPE_LENGTH_DELIMITED, &coded);
          coded.WriteVarint32(static_cast<uint32_t>(obj->ByteSizeLong()));
          obj->SerializeWithCachedSizes(&coded);
        }
      };
      write(api::StoreSnapshot::kNodesFieldNumber, objects->nodes);
      write(api::StoreSnapshot::kClustersFieldNumber, objects->clusters);
      write(api::StoreSnapshot::kServicesFieldNumber, objects->services);
      write(api::StoreSnapshot::kTasksFieldNumber, objects->tasks);
      write(api::StoreSnapshot::kNetworksFieldNumber, objects->networks);
      write(api::StoreSnapshot::kAppliedRequestsFieldNumber, objects->requests);
      // Format 1 is written as nothing, so that a snapshot of it reads the same everywhere.
      if (objects->format > 1) {
        google::protobuf::internal::WireFormatLite::WriteUInt32(
            api::StoreSnapshot::kFormatFieldNumber, objects->format, &coded);
      }
    }
    return out;
  };
}

namespace {

// The events that turn the objects of `before` into those of `after`: removals for what is
// gone, creations and updates for the rest.
template <class T>
void DiffRows(const Rows<T>& before, const Rows<T>& after, uint64_t index,
              std::vector<StoreEvent>& out) {
  for (const auto& [id, obj] : before) {
    if (!after.count(id)) {
      StoreEvent ev;
      ev.index = index;
      ev.kind = api::StoreAction::REMOVE;
      ev.object = obj;
      out.push_back(std::move(ev));
    }
  }
  for (const auto& [id, obj] : after) {
    auto it = before.find(id);
    if (it != before.end() && it->second->meta().version() == obj->meta().version()) continue;
    StoreEvent ev;
    ev.index = index;
    ev.kind = it == before.end() ? api::StoreAction::CREATE : api::StoreAction::UPDATE;
    ev.object = obj;
    if (it != before.end()) ev.old = it->second;
    out.push_back(std::move(ev));
  }
}

}  // namespace

void Store::Restore(const raftpb::Snapshot& snapshot) {
  api::StoreSnapshot snap;
  if (!snap.ParseFromString(snapshot.data())) {
    throw std::runtime_error("store snapshot at index " +
                             std::to_string(snapshot.metadata().index()) + " does not parse");
  }
  if (FormatOf(snap.format()) > kStoreFormat) {
    throw std::runtime_error("the store snapshot at raft entry " +
                             std::to_string(snapshot.metadata().index()) + " has store format " +
                             std::to_string(snap.format()) + ", and this skepd (" +
                             std::string(Version()) + ") reads store formats up to " +
                             std::to_string(kStoreFormat) + ": upgrade skepd");
  }
  auto fresh = std::make_unique<Tables>();
  auto load = [&](auto* list) {
    for (auto& obj : *list) {
      using T = std::decay_t<decltype(obj)>;
      auto shared = std::make_shared<const T>(std::move(obj));
      const std::string& id = shared->id();
      fresh->rows(shared.get()).emplace_hint(fresh->rows(shared.get()).end(), id, shared);
      fresh->Index(shared);
    }
  };
  load(snap.mutable_nodes());
  load(snap.mutable_clusters());
  load(snap.mutable_services());
  load(snap.mutable_tasks());
  load(snap.mutable_networks());
  std::vector<StoreEvent> events;
  {
    WriterLock lock(mu_);
    const uint64_t index = snapshot.metadata().index();
    DiffRows(t_->nodes, fresh->nodes, index, events);
    DiffRows(t_->clusters, fresh->clusters, index, events);
    DiffRows(t_->services, fresh->services, index, events);
    DiffRows(t_->tasks, fresh->tasks, index, events);
    DiffRows(t_->networks, fresh->networks, index, events);
    t_ = std::move(fresh);
    applied_ = index;
    format_ = FormatOf(snap.format());
    applied_order_.clear();
    applied_requests_.clear();
    for (const auto& r : snap.applied_requests())
      Remember(r.id(), AppliedRequest{r.index(), r.created_id()});
  }
  if (!events.empty()) events.back().last_in_batch = true;
  Notify(events);
}

}  // namespace skep::manager
