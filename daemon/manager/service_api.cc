// The control API of services and tasks: validation, then one raft write per change.
#include <algorithm>
#include <regex>
#include <tuple>
#include <set>

#include "daemon/common/log.h"
#include "daemon/common/pki.h"
#include "daemon/common/proto_bytes.h"
#include "daemon/executor/errors.h"
#include "daemon/executor/registry.h"
#include "daemon/manager/control_api.h"
#include "daemon/manager/on_leader.h"
#include "daemon/manager/registry_auth.h"
#include "daemon/manager/task_scheduler.h"
#include "daemon/manager/orchestrator/reconcile.h"
#include "scheduler/constraint.h"
#include "scheduler/scheduler.h"

namespace skep::manager {

namespace {

Status Invalid(const std::string& msg) {
  return InvalidArgument(msg);
}

bool ValidName(const std::string& name) {
  static const std::regex re("[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}");
  return std::regex_match(name, re);
}

Status CheckMounts(const api::ContainerSpec& c) {
  std::set<std::string> targets;
  for (const auto& m : c.mounts()) {
    const std::string what = "invalid mount target \"" + m.target() + "\"";
    if (m.target().empty() || m.target()[0] != '/') {
      return Invalid(what + ": it must be an absolute path in the container");
    }
    if (!targets.insert(m.target()).second) {
      return Invalid("duplicate mount point: " + m.target());
    }
    switch (m.type()) {
      case api::Mount::BIND:
        if (m.source().empty() || m.source()[0] != '/') {
          return Invalid("invalid mount config for type \"bind\": the source \"" + m.source() +
                         "\" must be an absolute path on the node");
        }
        break;
      case api::Mount::VOLUME:
        if (!m.source().empty() && !ValidName(m.source())) {
          return Invalid("invalid mount config for type \"volume\": \"" + m.source() +
                         "\" is not a valid volume name");
        }
        break;
      case api::Mount::TMPFS:
        if (!m.source().empty()) {
          return Invalid("invalid mount config for type \"tmpfs\": a tmpfs mount takes no source");
        }
        if (m.tmpfs_size_bytes() < 0) return Invalid("invalid tmpfs size: it cannot be negative");
        break;
      default:
        return Invalid("invalid mount type");
    }
  }
  return Status::Ok();
}

Status CheckPorts(const api::EndpointSpec& e) {
  std::set<std::pair<std::string, uint32_t>> seen;
  for (const auto& p : e.ports()) {
    if (p.protocol() != "tcp" && p.protocol() != "udp" && p.protocol() != "sctp") {
      return Invalid("invalid protocol \"" + p.protocol() +
                     "\" for a published port: use tcp, "
                     "udp or sctp");
    }
    if (p.target_port() == 0 || p.target_port() > 65535) {
      return Invalid("invalid target port " + std::to_string(p.target_port()));
    }
    if (p.published_port() > 65535) {
      return Invalid("invalid published port " + std::to_string(p.published_port()));
    }
    if (p.published_port() != 0 && !seen.insert({p.protocol(), p.published_port()}).second) {
      return Invalid("port " + std::to_string(p.published_port()) + "/" + p.protocol() +
                     " is published twice");
    }
  }
  return Status::Ok();
}

// Checks a spec as the user gave it; fills in defaults Docker fills in.
Status CheckSpec(api::ServiceSpec& spec) {
  if (!ValidName(spec.name())) {
    return Invalid("invalid service name \"" + spec.name() +
                   "\": it must start with a letter or digit and contain only letters, digits, "
                   "'_', '.' and '-' (at most 63)");
  }
  auto* c = spec.mutable_task()->mutable_container();
  if (c->image().empty()) return Invalid("a service needs an image");
  if (c->image().find_first_of(" \t\n") != std::string::npos) {
    return Invalid("invalid image reference \"" + c->image() + "\"");
  }
  if (spec.mode_case() == api::ServiceSpec::MODE_NOT_SET)
    spec.mutable_replicated()->set_replicas(1);
  auto parsed = scheduler::ParseConstraints(
      {spec.task().placement().constraints().begin(), spec.task().placement().constraints().end()});
  if (auto* err = std::get_if<std::string>(&parsed)) return Invalid(*err);
  for (const auto& d : spec.task().placement().spread()) {
    if (auto err = scheduler::CheckSpreadDescriptor(d)) return Invalid(*err);
  }
  if (Status st = CheckMounts(*c); !st.ok()) return st;
  if (Status st = CheckPorts(spec.endpoint()); !st.ok()) return st;
  if (c->stop_grace_period_ns() < 0) return Invalid("the stop grace period cannot be negative");
  const auto& r = spec.task().restart();
  if (r.has_delay_ns() && r.delay_ns() < 0) return Invalid("the restart delay cannot be negative");
  if (r.window_ns() < 0) return Invalid("the restart window cannot be negative");
  for (const auto* u : {&spec.update(), &spec.rollback()}) {
    if (u->delay_ns() < 0 || (u->has_monitor_ns() && u->monitor_ns() < 0)) {
      return Invalid("update delays and monitor periods cannot be negative");
    }
    if (u->max_failure_ratio() < 0 || u->max_failure_ratio() > 1) {
      return Invalid("the max failure ratio must be between 0 and 1");
    }
  }
  const auto& res = spec.task().resources();
  if (res.reservations().nano_cpus() < 0 || res.reservations().memory_bytes() < 0 ||
      res.limits().nano_cpus() < 0 || res.limits().memory_bytes() < 0 || res.limits().pids() < 0) {
    return Invalid("resources cannot be negative");
  }
  // runc cannot start a container in less; Docker refuses it too.
  constexpr int64_t kMinMemoryLimit = 6 * 1024 * 1024;
  if (res.limits().memory_bytes() > 0 && res.limits().memory_bytes() < kMinMemoryLimit) {
    return Invalid("the memory limit " + std::to_string(res.limits().memory_bytes()) +
                   " bytes is below the minimum of 6MB");
  }
  if (res.limits().memory_bytes() > 0 &&
      res.reservations().memory_bytes() > res.limits().memory_bytes()) {
    return Invalid("the memory limit (" + std::to_string(res.limits().memory_bytes()) +
                   " bytes) is below the memory reservation (" +
                   std::to_string(res.reservations().memory_bytes()) + " bytes)");
  }
  if (res.limits().nano_cpus() > 0 && res.reservations().nano_cpus() > res.limits().nano_cpus()) {
    return Invalid("the CPU limit is below the CPU reservation");
  }
  return Status::Ok();
}

// A port published in ingress mode belongs to one service in the whole swarm.
// Docker's range for ports published through the routing mesh without a number.
constexpr uint32_t kFirstDynamicPort = 30000;
constexpr uint32_t kLastDynamicPort = 32767;

// Ingress ports given without a published number get the lowest free one of the range.
Status AssignPublishedPorts(const ReadTx& tx, api::ServiceSpec& spec,
                            const std::string& self_id) {
  std::set<std::pair<std::string, uint32_t>> used;
  for (const auto* s : tx.services()) {
    if (s->id() == self_id) continue;
    for (const auto& q : s->spec().endpoint().ports()) {
      if (q.publish_mode() == api::PortConfig::INGRESS)
        used.insert({q.protocol(), q.published_port()});
    }
  }
  for (const auto& q : spec.endpoint().ports())
    used.insert({q.protocol(), q.published_port()});
  for (auto& p : *spec.mutable_endpoint()->mutable_ports()) {
    if (p.publish_mode() != api::PortConfig::INGRESS || p.published_port() != 0) continue;
    uint32_t port = kFirstDynamicPort;
    while (port <= kLastDynamicPort && used.count({p.protocol(), port}))
      ++port;
    if (port > kLastDynamicPort) {
      return {Code::kResourceExhausted, "no port left to publish " +
                                                  std::to_string(p.target_port()) + "/" +
                                                  p.protocol() + " on (30000-32767 are all taken)"};
    }
    p.set_published_port(port);
    used.insert({p.protocol(), port});
  }
  return Status::Ok();
}

Status CheckPortConflicts(const ReadTx& tx, api::ServiceSpec& spec, const std::string& self_id) {
  if (Status st = AssignPublishedPorts(tx, spec, self_id); !st.ok()) return st;
  for (const auto& p : spec.endpoint().ports()) {
    if (p.publish_mode() != api::PortConfig::INGRESS || p.published_port() == 0) continue;
    for (const auto* s : tx.services()) {
      if (s->id() == self_id) continue;
      for (const auto& q : s->spec().endpoint().ports()) {
        if (q.publish_mode() == api::PortConfig::INGRESS &&
            q.published_port() == p.published_port() && q.protocol() == p.protocol()) {
          return FailedPrecondition("port " + std::to_string(p.published_port()) + "/" +
                                    p.protocol() + " is already published by service " +
                                    s->spec().name());
        }
      }
    }
  }
  return Status::Ok();
}

// The image as given, pinned to the digest its tag names now, so that every replica runs the
// same image: "skep/web:1" -> "skep/web:1@sha256:...", and the platforms it has (an index's
// manifests, or the one manifest's config), which the scheduler's platform filter reads. A
// registry that cannot be asked leaves the tag as it is (each node then pulls what the tag
// names when it starts the task) and the platforms unknown (any node), as Docker does, with a
// warning in the log. With the service's registry login, when it has one. Blocks on the
// registry: only on the manager's registry threads.
struct PinnedImage {
  std::string image;
  std::optional<std::vector<executor::Platform>> platforms;  // nullopt: not known
};

PinnedImage PinImageBlocking(executor::RegistryConfig config, const std::string& image,
                             std::optional<api::RegistryAuth> auth) {
  PinnedImage pinned{image, std::nullopt};
  try {
    executor::ImageRef ref = executor::ParseImageRef(image);
    if (auth) {
      config.credentials[executor::RegistryDomain(auth->server())] = {auth->username(),
                                                                       auth->password()};
    }
    executor::Registry registry(config);
    const executor::Descriptor d = registry.Resolve(ref);
    if (ref.digest.empty()) pinned.image = image + "@" + d.digest;
    try {
      pinned.platforms = registry.Platforms(ref, d);
    } catch (const std::exception& e) {
      SKEP_LOG(warn, "control",
               "the platforms of image {} could not be read ({}); its tasks may go to any node",
               image, e.what());
    }
  } catch (const std::exception& e) {
    SKEP_LOG(warn, "control",
             "image {} could not be accessed on a registry to record its digest "
             "({}); each node resolves it when it starts a task",
             image, e.what());
  }
  return pinned;
}

bool LiveTask(const api::Task& t) {
  return t.desired_state() <= api::TASK_RUNNING;
}

const char* DesiredName(api::TaskState s) {
  if (s <= api::TASK_RUNNING) return "running";
  if (s == api::TASK_REMOVE) return "remove";
  return "shutdown";
}

}  // namespace

ControlApi::Task ControlApi::PinImage(api::TaskSpec* task, const api::RegistryAuth* auth) {
  std::optional<api::RegistryAuth> login;
  if (auth != nullptr) login = *auth;
  auto pin = OnPool(ctx_.blocking(),
                    [config = ctx_.registry(), image = task->container().image(), login] {
                      return PinImageBlocking(config, image, login);
                    });
  const PinnedImage pinned = co_await std::move(pin);
  task->mutable_container()->set_image(pinned.image);
  if (pinned.platforms) {
    auto* platforms = task->mutable_placement()->mutable_platforms();
    platforms->Clear();
    for (const executor::Platform& p : *pinned.platforms) {
      api::Platform* out = platforms->Add();
      out->set_os(p.os);
      out->set_architecture(p.architecture);
    }
  }
  co_return Status::Ok();
}

ControlApi::Task ControlApi::RegistryAuthKey(std::string* key, const Call& call) {
  Status st;
  for (int attempt = 0; attempt < 3; ++attempt) {  // a concurrent change of the cluster
    auto c = ctx_.store().GetCluster();
    if (!c) co_return Unavailable("the cluster state is not available yet");
    if (!c->registry_auth_key().empty()) {
      *key = c->registry_auth_key();
      co_return Status::Ok();
    }
    c->set_registry_auth_key(NewRegistryAuthKey());
    api::StoreBatch batch;
    auto* a = batch.add_actions();
    a->set_kind(api::StoreAction::UPDATE);
    *a->mutable_cluster() = *c;
    // Its own write, not the request's: the request's ID goes on its last write.
    Call own = call;
    own.request_id = pki::RandomId();
    auto write = Write(std::move(batch), own);
    st = co_await std::move(write);
    if (st.ok()) {
      *key = c->registry_auth_key();
      co_return st;
    }
  }
  co_return st;
}

// Seals the login a create or update came with into the service.
ControlApi::Task ControlApi::SealInto(const api::RegistryAuth& auth, api::Service* s,
                                      const Call& call) {
  if (std::string why = CheckRegistryAuth(auth); !why.empty()) co_return InvalidArgument(why);
  std::string key;
  auto made = RegistryAuthKey(&key, call);
  if (Status st = co_await std::move(made); !st.ok()) co_return st;
  s->set_sealed_registry_auth(SealRegistryAuth(key, auth));
  co_return Status::Ok();
}

Status ControlApi::ResolveService(const std::string& ref, api::Service* out) const {
  if (ref.empty()) return InvalidArgument("a service name or ID is required");
  return ctx_.store().View([&](const ReadTx& tx) -> Status {
    if (const auto* s = tx.service(ref)) {
      *out = *s;
      return Status::Ok();
    }
    if (const auto* s = tx.service_by_name(ref)) {
      *out = *s;
      return Status::Ok();
    }
    std::vector<const api::Service*> matches;
    for (const auto* s : tx.services()) {
      if (s->id().rfind(ref, 0) == 0) matches.push_back(s);
    }
    if (matches.empty()) return NotFound("service " + ref + " not found");
    if (matches.size() > 1) {
      return InvalidArgument("service " + ref + " is ambiguous (" +
                             std::to_string(matches.size()) + " matches found)");
    }
    *out = *matches.front();
    return Status::Ok();
  });
}

api::ServiceView ControlApi::ViewOf(const api::Service& s) const {
  api::ServiceView v;
  *v.mutable_service() = s;
  v.mutable_service()->clear_sealed_registry_auth();  // not even sealed
  v.set_registry_auth(!s.sealed_registry_auth().empty());
  ctx_.store().View([&](const ReadTx& tx) {
    uint64_t running = 0, live = 0;
    std::vector<const api::Task*> pending, checked;
    for (const auto* t : tx.tasks_of_service(s.id())) {
      if (!LiveTask(*t)) continue;
      ++live;
      if (orchestrator::Ready(*t)) ++running;  // healthy, when it has a check
      if (t->status().state() == api::TASK_PENDING && !t->scheduling_error().empty())
        pending.push_back(t);
      if (t->status().state() == api::TASK_RUNNING && t->status().health() != api::HEALTH_NONE)
        checked.push_back(t);
    }
    // At most a few of each, by slot: enough to see why, small for a service of thousands.
    constexpr size_t kShownTaskNotes = 10;
    auto note = [&](const api::Task& t, const std::string& text, api::TaskNote* out) {
      out->set_task_id(t.id());
      out->set_slot(t.slot());
      if (const api::Node* n = tx.node(t.node_id())) out->set_node(n->description().hostname());
      out->set_text(text);
      out->set_health(t.status().health());
    };
    auto by_slot = [](const api::Task* a, const api::Task* b) {
      return std::make_tuple(a->slot(), a->node_id()) < std::make_tuple(b->slot(), b->node_id());
    };
    std::sort(pending.begin(), pending.end(), by_slot);
    std::sort(checked.begin(), checked.end(), by_slot);
    for (size_t i = 0; i < pending.size() && i < kShownTaskNotes; ++i)
      note(*pending[i], pending[i]->scheduling_error(), v.add_pending());
    v.set_pending_count(pending.size());
    for (size_t i = 0; i < checked.size() && i < kShownTaskNotes; ++i)
      note(*checked[i], checked[i]->status().health_output(), v.add_checks());
    v.set_running(running);
    v.set_desired(s.spec().has_global() ? live : s.spec().replicated().replicas());
  });
  return v;
}

void ControlApi::CreateService(const api::CreateServiceRequest& req,
                               api::CreateServiceResponse* resp, Call call, Done done) {
  Run(SKEP_REMOTE(CreateService), req, resp, call, std::move(done),
      [this, &req, resp, call] { return CreateServiceHere(req, resp, call); });
}

ControlApi::Task ControlApi::CreateServiceHere(const api::CreateServiceRequest& req,
                                               api::CreateServiceResponse* resp,
                                               const Call& call) {
  // Created already, before a leader was lost: the same answer as then.
  if (auto done = ctx_.store().Applied(call.request_id)) {
    resp->set_id(done->created_id);
    co_return Status::Ok();
  }
  api::Service s;
  s.set_id(pki::RandomId());
  *s.mutable_spec() = req.spec();
  if (s.spec().name().empty()) s.mutable_spec()->set_name("service-" + s.id().substr(0, 8));
  // A spec without update settings gets Docker's: one task at a time.
  if (!s.spec().has_update()) s.mutable_spec()->mutable_update()->set_parallelism(1);
  if (!s.spec().has_rollback()) s.mutable_spec()->mutable_rollback()->set_parallelism(1);
  if (Status st = CheckSpec(*s.mutable_spec()); !st.ok()) co_return st;
  if (Status st = AttachNetworks(s.mutable_spec()); !st.ok()) co_return st;
  Status conflict = ctx_.store().View([&](const ReadTx& tx) -> Status {
    if (tx.service_by_name(s.spec().name())) {
      return AlreadyExists("service name \"" + s.spec().name() + "\" is already in use");
    }
    return CheckPortConflicts(tx, *s.mutable_spec(), s.id());
  });
  if (!conflict.ok()) co_return conflict;
  s.set_spec_version(1);
  const api::RegistryAuth* auth = req.has_registry_auth() ? &req.registry_auth() : nullptr;
  if (auth != nullptr) {
    auto sealed = SealInto(*auth, &s, call);
    if (Status st = co_await std::move(sealed); !st.ok()) co_return st;
  }
  auto pinned = PinImage(s.mutable_spec()->mutable_task(), auth);
  co_await std::move(pinned);
  api::StoreBatch batch;
  auto* a = batch.add_actions();
  a->set_kind(api::StoreAction::CREATE);
  *a->mutable_service() = s;
  auto write = Write(std::move(batch), call);
  if (Status st = co_await std::move(write); !st.ok()) co_return st;
  resp->set_id(CreatedId(call, s.id()));
  co_return Status::Ok();
}

void ControlApi::ListServices(const api::ListServicesRequest& req, api::ListServicesResponse* resp,
                              Call call, Done done) {
  Run(SKEP_REMOTE(ListServices), req, resp, call, std::move(done),
      [this, &req, resp] { return ListServicesHere(req, resp); });
}

ControlApi::Task ControlApi::ListServicesHere(const api::ListServicesRequest& req,
                                              api::ListServicesResponse* resp) {
  std::vector<std::pair<std::string, std::string>> filters;
  for (const auto& f : req.filters()) {
    const size_t eq = f.find('=');
    const std::string key = f.substr(0, eq);
    if (eq == std::string::npos ||
        (key != "id" && key != "name" && key != "label" && key != "mode")) {
      co_return Invalid("invalid filter '" + f + "': use id=, name=, label= or mode=");
    }
    filters.emplace_back(key, f.substr(eq + 1));
  }
  for (const auto& s : ctx_.store().ListServices()) {
    bool keep = true;
    for (const auto& [k, v] : filters) {
      if (k == "id") keep &= s.id().rfind(v, 0) == 0;
      if (k == "name") keep &= s.spec().name().find(v) != std::string::npos;
      if (k == "mode") keep &= (s.spec().has_global() ? "global" : "replicated") == v;
      if (k == "label") {
        const size_t eq = v.find('=');
        auto it = s.spec().labels().find(v.substr(0, eq));
        keep &= it != s.spec().labels().end() &&
                (eq == std::string::npos || it->second == v.substr(eq + 1));
      }
    }
    if (keep) *resp->add_services() = ViewOf(s);
  }
  co_return Status::Ok();
}

void ControlApi::GetService(const api::ServiceRef& req, api::ServiceView* resp, Call call,
                            Done done) {
  Run(SKEP_REMOTE(GetService), req, resp, call, std::move(done),
      [this, &req, resp] { return GetServiceHere(req, resp); });
}

ControlApi::Task ControlApi::GetServiceHere(const api::ServiceRef& req, api::ServiceView* resp) {
  api::Service s;
  if (Status st = ResolveService(req.ref(), &s); !st.ok()) co_return st;
  *resp = ViewOf(s);
  co_return Status::Ok();
}

void ControlApi::ExplainService(const api::ServiceRef& req, api::ExplainServiceResponse* resp,
                                Call call, Done done) {
  Run(SKEP_REMOTE(ExplainService), req, resp, call, std::move(done),
      [this, &req, resp] { return ExplainServiceHere(req, resp); });
}

ControlApi::Task ControlApi::ExplainServiceHere(const api::ServiceRef& req,
                                                api::ExplainServiceResponse* resp) {
  api::Service s;
  if (Status st = ResolveService(req.ref(), &s); !st.ok()) co_return st;
  const int64_t now = ctx_.clock().Now();
  ctx_.store().View([&](const ReadTx& tx) { *resp = ExplainPlacement(tx, s, now); });
  co_return Status::Ok();
}

void ControlApi::UpdateService(const api::UpdateServiceRequest& req, api::ServiceView* resp,
                               Call call, Done done) {
  Run(SKEP_REMOTE(UpdateService), req, resp, call, std::move(done),
      [this, &req, resp, call] { return UpdateServiceHere(req, resp, call); });
}

ControlApi::Task ControlApi::UpdateServiceHere(const api::UpdateServiceRequest& req,
                                               api::ServiceView* resp, const Call& call) {
  api::Service s;
  if (Status st = ResolveService(req.ref(), &s); !st.ok()) co_return st;
  // Applied already, before a leader was lost: answered with the service as it is.
  if (ctx_.store().Applied(call.request_id)) {
    *resp = ViewOf(s);
    co_return Status::Ok();
  }
  if (req.version() != 0 && req.version() != s.meta().version()) {
    co_return Status(Code::kConflict, "update out of sequence: service " + s.spec().name() +
                                          " changed since it was read (version " +
                                          std::to_string(req.version()) + ", now " +
                                          std::to_string(s.meta().version()) + ")");
  }
  api::ServiceSpec next;
  if (req.rollback()) {
    if (!s.has_previous_spec()) {
      co_return FailedPrecondition("service " + s.spec().name() +
                                   " has no previous spec to roll back to");
    }
    next = s.previous_spec();
  } else {
    next = req.spec();
  }
  if (next.name() != s.spec().name()) {
    co_return Invalid("renaming services is not supported (service " + s.spec().name() + ")");
  }
  if (next.has_global() != s.spec().has_global()) {
    co_return Invalid("service mode change is not allowed (service " + s.spec().name() + " is " +
                      (s.spec().has_global() ? "global" : "replicated") + ")");
  }
  if (Status st = CheckSpec(next); !st.ok()) co_return st;
  if (Status st = AttachNetworks(&next); !st.ok()) co_return st;
  Status conflict =
      ctx_.store().View([&](const ReadTx& tx) { return CheckPortConflicts(tx, next, s.id()); });
  if (!conflict.ok()) co_return conflict;
  const api::RegistryAuth* auth = req.has_registry_auth() ? &req.registry_auth() : nullptr;
  if (auth != nullptr) {
    auto sealed = SealInto(*auth, &s, call);
    if (Status st = co_await std::move(sealed); !st.ok()) co_return st;
  }
  if (next.task().container().image() != s.spec().task().container().image()) {
    std::optional<api::RegistryAuth> stored;
    if (auth == nullptr && !s.sealed_registry_auth().empty()) {
      if (auto c = ctx_.store().GetCluster())
        stored = OpenRegistryAuth(c->registry_auth_key(), s.sealed_registry_auth());
      if (stored) auth = &*stored;
    }
    auto pinned = PinImage(next.mutable_task(), auth);
    co_await std::move(pinned);
  }
  const bool task_changed =
      !SameMessage(next.task(), s.spec().task()) ||
      !SameMessage(next.endpoint(), s.spec().endpoint()) ||
      !std::equal(next.networks().begin(), next.networks().end(), s.spec().networks().begin(),
                  s.spec().networks().end(),
                  [](const auto& a, const auto& b) { return SameMessage(a, b); });
  *s.mutable_previous_spec() = s.spec();
  *s.mutable_spec() = next;
  if (task_changed) {
    s.set_spec_version(s.spec_version() + 1);
    auto* u = s.mutable_update_status();
    u->set_state(req.rollback() ? api::UpdateStatus::ROLLBACK_STARTED
                                : api::UpdateStatus::UPDATING);
    u->set_started_at(ctx_.clock().Now());
    u->set_completed_at(0);
    u->set_message(req.rollback() ? "manually requested rollback" : "update in progress");
  }
  api::StoreBatch batch;
  auto* a = batch.add_actions();
  a->set_kind(api::StoreAction::UPDATE);
  *a->mutable_service() = s;
  auto write = Write(std::move(batch), call);
  if (Status st = co_await std::move(write); !st.ok()) co_return st;
  if (auto now = ctx_.store().GetService(s.id())) *resp = ViewOf(*now);
  co_return Status::Ok();
}

void ControlApi::RemoveService(const api::ServiceRef& req, api::Empty* resp, Call call,
                               Done done) {
  Run(SKEP_REMOTE(RemoveService), req, resp, call, std::move(done),
      [this, &req, call] { return RemoveServiceHere(req, call); });
}

ControlApi::Task ControlApi::RemoveServiceHere(const api::ServiceRef& req, const Call& call) {
  if (ctx_.store().Applied(call.request_id)) co_return Status::Ok();
  // A live service's tasks change all the time (the scheduler, the allocator, the nodes'
  // reports): a removal that lost the race with one of them is made again from the newer
  // versions.
  for (int attempt = 0;; ++attempt) {
    api::Service s;
    if (Status st = ResolveService(req.ref(), &s); !st.ok()) co_return st;
    // The service goes with its tasks' desired state: the agents stop them, and the
    // orchestrator deletes each task once it has stopped (or at once if it never ran).
    api::StoreBatch batch;
    auto* a = batch.add_actions();
    a->set_kind(api::StoreAction::REMOVE);
    *a->mutable_service() = s;
    for (auto t : ctx_.store().TasksOfService(s.id())) {
      auto* ta = batch.add_actions();
      if (t.node_id().empty() || orchestrator::Terminal(t.status().state())) {
        ta->set_kind(api::StoreAction::REMOVE);
      } else {
        ta->set_kind(api::StoreAction::UPDATE);
        t.set_desired_state(api::TASK_REMOVE);
      }
      *ta->mutable_task() = t;
    }
    auto write = Write(std::move(batch), call);
    const Status st = co_await std::move(write);
    if (st.code() == Code::kConflict && attempt < 5) continue;
    co_return st;
  }
}

void ControlApi::ListTasks(const api::ListTasksRequest& req, api::ListTasksResponse* resp,
                           Call call, Done done) {
  Run(SKEP_REMOTE(ListTasks), req, resp, call, std::move(done),
      [this, &req, resp] { return ListTasksHere(req, resp); });
}

ControlApi::Task ControlApi::ListTasksHere(const api::ListTasksRequest& req,
                                           api::ListTasksResponse* resp) {
  std::string service_id, node_id, desired, id;
  for (const auto& f : req.filters()) {
    const size_t eq = f.find('=');
    const std::string key = f.substr(0, eq), value = eq == std::string::npos ? "" : f.substr(eq + 1);
    if (key == "service") {
      api::Service s;
      if (Status st = ResolveService(value, &s); !st.ok()) co_return st;
      service_id = s.id();
    } else if (key == "node") {
      api::Node n;
      if (Status st = Resolve(value, &n); !st.ok()) co_return st;
      node_id = n.id();
    } else if (key == "desired-state") {
      if (value != "running" && value != "shutdown" && value != "accepted") {
        co_return Invalid("invalid filter 'desired-state=" + value +
                          "': use running, shutdown or accepted");
      }
      desired = value == "accepted" ? "running" : value;
    } else if (key == "id") {
      id = value;
    } else {
      co_return Invalid("invalid filter '" + f + "': use service=, node=, desired-state= or id=");
    }
  }
  ctx_.store().View([&](const ReadTx& tx) {
    auto tasks = !service_id.empty() ? tx.tasks_of_service(service_id)
                 : !node_id.empty()  ? tx.tasks_on_node(node_id)
                                     : tx.tasks();
    for (const auto* t : tasks) {
      if (!node_id.empty() && t->node_id() != node_id) continue;
      if (!desired.empty() && DesiredName(t->desired_state()) != desired) continue;
      if (!id.empty() && t->id().rfind(id, 0) != 0) continue;
      auto* v = resp->add_tasks();
      *v->mutable_task() = *t;
      if (const auto* n = tx.node(t->node_id())) v->set_node_hostname(n->description().hostname());
      const auto* s = tx.service(t->service_id());
      v->set_service_name(s ? s->spec().name() : t->service_name());
    }
  });
  co_return Status::Ok();
}

}  // namespace skep::manager
