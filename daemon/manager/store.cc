#include "daemon/manager/store.h"

namespace skep::manager {
namespace {

const api::Meta& MetaOf(const api::StoreAction& a) {
  return a.has_node() ? a.node().meta() : a.cluster().meta();
}

const std::string& IdOf(const api::StoreAction& a) {
  return a.has_node() ? a.node().id() : a.cluster().id();
}

const char* KindName(const api::StoreAction& a) {
  return a.has_node() ? "node" : "cluster";
}

// Applies one checked action to the objects of its kind; returns the object after the change
// (before it, for a removal). The version is the index of the entry that changed it.
template <class T>
T ApplyAction(std::map<std::string, T>& objects, api::StoreAction::Kind kind, T obj,
              int64_t proposed_at, uint64_t index) {
  if (kind == api::StoreAction::REMOVE) {
    T old = objects.at(obj.id());
    objects.erase(obj.id());
    return old;
  }
  const int64_t created =
      kind == api::StoreAction::CREATE ? proposed_at : objects.at(obj.id()).meta().created_at();
  obj.mutable_meta()->set_created_at(created);
  obj.mutable_meta()->set_updated_at(proposed_at);
  obj.mutable_meta()->set_version(index);
  objects[obj.id()] = obj;
  return obj;
}

}  // namespace

std::optional<api::Node> Store::GetNode(const std::string& id) const {
  std::shared_lock lock(mu_);
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return std::nullopt;
  return it->second;
}

std::vector<api::Node> Store::ListNodes() const {
  std::shared_lock lock(mu_);
  std::vector<api::Node> out;
  out.reserve(nodes_.size());
  for (const auto& [id, n] : nodes_)
    out.push_back(n);
  return out;
}

std::optional<api::Cluster> Store::GetCluster() const {
  std::shared_lock lock(mu_);
  if (clusters_.empty()) return std::nullopt;
  return clusters_.begin()->second;
}

std::optional<api::Node> Store::NodeByRaftId(uint64_t raft_id) const {
  std::shared_lock lock(mu_);
  for (const auto& [id, n] : nodes_) {
    if (n.raft_id() == raft_id) return n;
  }
  return std::nullopt;
}

uint64_t Store::applied_index() const {
  std::shared_lock lock(mu_);
  return applied_;
}

void Store::ExpectOutcome(const std::string& request_id,
                          std::function<void(const ApplyResult&)> done) {
  std::lock_guard lock(watch_mu_);
  outcomes_[request_id] = std::move(done);
}

void Store::ForgetOutcome(const std::string& request_id) {
  std::lock_guard lock(watch_mu_);
  outcomes_.erase(request_id);
}

void Store::Watch(std::function<void(const StoreEvent&)> watcher) {
  std::lock_guard lock(watch_mu_);
  watchers_.push_back(std::move(watcher));
}

ApplyResult Store::Validate(const api::StoreBatch& batch) const {
  std::shared_lock lock(mu_);
  return CheckLocked(batch);
}

ApplyResult Store::CheckLocked(const api::StoreBatch& batch) const {
  for (const auto& a : batch.actions()) {
    if (!a.has_node() && !a.has_cluster()) return {false, "a store action without an object"};
    const std::string& id = IdOf(a);
    if (id.empty()) return {false, std::string("a ") + KindName(a) + " without an ID"};
    const bool exists = a.has_node() ? nodes_.count(id) > 0 : clusters_.count(id) > 0;
    const uint64_t current = !exists ? 0
                                     : (a.has_node() ? nodes_.at(id).meta().version()
                                                     : clusters_.at(id).meta().version());
    switch (a.kind()) {
      case api::StoreAction::CREATE:
        if (exists) return {false, std::string(KindName(a)) + " " + id + " already exists"};
        if (a.has_node() && a.node().raft_id() != 0) {
          // A raft id names one node for good; two would fight over one raft identity.
          for (const auto& [other_id, other] : nodes_) {
            if (other.raft_id() == a.node().raft_id()) {
              return {false, "raft id " + std::to_string(a.node().raft_id()) +
                                 " is taken by node " + other_id};
            }
          }
        }
        break;
      case api::StoreAction::UPDATE:
      case api::StoreAction::REMOVE:
        if (!exists) return {false, std::string(KindName(a)) + " " + id + " not found"};
        // An update made from an older version would overwrite a change it never saw.
        if (MetaOf(a).version() != current) {
          return {false, std::string("update out of sequence: ") + KindName(a) + " " + id +
                             " changed since it was read (version " +
                             std::to_string(MetaOf(a).version()) + ", now " +
                             std::to_string(current) + ")"};
        }
        break;
      default:
        return {false, "unknown store action"};
    }
  }
  return {};
}

void Store::Apply(const raftpb::Entry& entry) {
  std::vector<StoreEvent> events;
  ApplyResult result;
  api::StoreBatch batch;
  const bool is_batch = entry.type() == raftpb::ENTRY_NORMAL && !entry.data().empty();
  if (is_batch && !batch.ParseFromString(entry.data())) {
    result = {false, "a store entry that does not parse"};
  }
  {
    std::unique_lock lock(mu_);
    applied_ = entry.index();
    if (is_batch && result.ok) {
      result = CheckLocked(batch);
      if (result.ok) {
        for (const auto& a : batch.actions()) {
          StoreEvent ev{a.kind(), std::nullopt, std::nullopt};
          if (a.has_node()) {
            ev.node = ApplyAction(nodes_, a.kind(), a.node(), batch.proposed_at(), entry.index());
          } else {
            ev.cluster =
                ApplyAction(clusters_, a.kind(), a.cluster(), batch.proposed_at(), entry.index());
          }
          events.push_back(std::move(ev));
        }
      }
    }
  }
  std::function<void(const ApplyResult&)> done;
  std::vector<std::function<void(const StoreEvent&)>> watchers;
  {
    std::lock_guard lock(watch_mu_);
    if (is_batch && !batch.request_id().empty()) {
      auto it = outcomes_.find(batch.request_id());
      if (it != outcomes_.end()) {
        done = std::move(it->second);
        outcomes_.erase(it);
      }
    }
    if (!events.empty()) watchers = watchers_;
  }
  for (const auto& ev : events) {
    for (const auto& w : watchers)
      w(ev);
  }
  if (done) done(result);
}

std::function<std::string()> Store::Snapshot() {
  auto snap = std::make_shared<api::StoreSnapshot>();
  {
    std::shared_lock lock(mu_);
    for (const auto& [id, n] : nodes_)
      *snap->add_nodes() = n;
    for (const auto& [id, c] : clusters_)
      *snap->add_clusters() = c;
  }
  return [snap] { return snap->SerializeAsString(); };
}

void Store::Restore(const raftpb::Snapshot& snapshot) {
  api::StoreSnapshot snap;
  if (!snap.ParseFromString(snapshot.data())) {
    throw std::runtime_error("store snapshot at index " +
                             std::to_string(snapshot.metadata().index()) + " does not parse");
  }
  std::vector<StoreEvent> events;
  {
    std::unique_lock lock(mu_);
    nodes_.clear();
    clusters_.clear();
    for (const auto& n : snap.nodes()) {
      nodes_[n.id()] = n;
      events.push_back({api::StoreAction::UPDATE, n, std::nullopt});
    }
    for (const auto& c : snap.clusters()) {
      clusters_[c.id()] = c;
      events.push_back({api::StoreAction::UPDATE, std::nullopt, c});
    }
    applied_ = snapshot.metadata().index();
  }
  std::vector<std::function<void(const StoreEvent&)>> watchers;
  {
    std::lock_guard lock(watch_mu_);
    watchers = watchers_;
  }
  for (const auto& ev : events) {
    for (const auto& w : watchers)
      w(ev);
  }
}

}  // namespace skep::manager
