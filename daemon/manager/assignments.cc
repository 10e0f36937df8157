#include "daemon/manager/assignments.h"

#include <set>

#include "daemon/common/log.h"
#include "daemon/common/proto_bytes.h"
#include "daemon/manager/registry_auth.h"

namespace skep::manager {

bool Assignments::Next(const ReadTx& tx, api::SessionMessage* msg) {
  api::SessionMessage& m = *msg;
  // The node's tasks as they go out, the ones whose version was not sent yet: a session is
  // composed after every batch that touches one of the node's tasks, and a node runs many.
  std::map<std::string, Sent> sent;
  std::map<std::string, api::Task> fresh;
  const api::Node* self = tx.node(node_id_);
  if (self != nullptr) *m.mutable_node() = *self;
  std::string auth_key;
  if (const api::Cluster* c = tx.cluster()) {
    m.set_data_path_port(c->spec().networks().data_path_port());
    for (const auto& k : c->network_keys())
      m.add_network_keys(k.key());
    auth_key = c->registry_auth_key();
  }
  std::set<std::string> nets, services;
  for (const auto* t : tx.tasks_on_node(node_id_)) {
    if (t->status().state() < api::TASK_ASSIGNED) continue;  // not scheduled yet
    const bool terminal = t->status().state() > api::TASK_RUNNING;
    if (terminal && t->desired_state() > api::TASK_RUNNING) {  // settled, in the history
      m.add_kept_task_ids(t->id());
      continue;
    }
    for (const auto& a : t->networks())
      nets.insert(a.network_id());
    services.insert(t->service_id());
    auto was = sent_.find(t->id());
    if (!first_ && was != sent_.end() && was->second.version == t->meta().version()) {
      sent.emplace(t->id(), std::move(was->second));  // the key stays: not removed
      continue;
    }
    api::Task out = *t;
    out.clear_status();  // the node's own to report
    out.clear_meta();
    out.clear_scheduling_error();
    fresh.emplace(t->id(), std::move(out));
    sent[t->id()].version = t->meta().version();
  }
  // Every node is on the ingress network, for the routing mesh.
  if (self != nullptr) {
    for (const auto& a : self->attachments())
      nets.insert(a.network_id());
  }
  for (const auto& id : nets) {
    if (const api::Network* n = tx.network(id)) *m.add_networks() = *n;
  }
  // The logins of the services it runs tasks of, and no other.
  for (const auto& id : services) {
    const api::Service* svc = tx.service(id);
    if (svc == nullptr || svc->sealed_registry_auth().empty()) continue;
    if (auto auth = OpenRegistryAuth(auth_key, svc->sealed_registry_auth())) {
      (*m.mutable_registry_auth())[svc->id()] = std::move(*auth);
    } else {
      SKEP_LOG(warn, "dispatcher", "the registry login of service {} does not open", svc->id());
    }
  }
  m.set_tasks_known(true);
  const std::string header = CanonicalBytes(m);

  // A new version of a task goes out only if what the node sees of it changed (a report of
  // its own, say, changes nothing it is sent).
  for (auto& [id, t] : fresh) {
    std::string bytes = CanonicalBytes(t);
    auto was = sent_.find(id);
    if (first_ || was == sent_.end() || was->second.bytes != bytes) *m.add_tasks() = t;
    sent[id].bytes = std::move(bytes);
  }
  if (!first_) {
    m.set_incremental(true);
    for (const auto& [id, s] : sent_) {
      if (!sent.count(id)) m.add_removed_task_ids(id);
    }
  }
  const bool changed =
      first_ || header != header_ || m.tasks_size() > 0 || m.removed_task_ids_size() > 0;
  first_ = false;
  sent_ = std::move(sent);
  header_ = header;
  return changed;
}

}  // namespace skep::manager
