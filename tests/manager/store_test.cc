#include <catch2/catch.hpp>

#include "daemon/common/proto_bytes.h"
#include "daemon/common/version.h"
#include "daemon/manager/store.h"
#include "tests/manager/fakes.h"

using namespace skep;
using namespace skep::manager;
using skep::testing::EntryOf;

namespace {

api::StoreBatch One(api::StoreAction::Kind kind, const api::Node& n) {
  api::StoreBatch b;
  b.set_proposed_at(1000);
  auto* a = b.add_actions();
  a->set_kind(kind);
  *a->mutable_node() = n;
  return b;
}

api::StoreBatch One(api::StoreAction::Kind kind, const api::Service& s) {
  api::StoreBatch b;
  b.set_proposed_at(1000);
  auto* a = b.add_actions();
  a->set_kind(kind);
  *a->mutable_service() = s;
  return b;
}

}  // namespace

TEST_CASE("store objects carry the index of their last change", "[store]") {
  Store store;
  api::Node n;
  n.set_id("n1");
  n.mutable_description()->set_hostname("host");
  store.Apply(EntryOf(5, One(api::StoreAction::CREATE, n)));
  auto got = store.GetNode("n1");
  REQUIRE(got);
  CHECK(got->meta().version() == 5);
  CHECK(got->meta().created_at() == 1000);
  CHECK(store.applied_index() == 5);

  // An update made from the current version applies; one from an older version is refused,
  // with the same outcome on every manager.
  api::Node update = *got;
  update.mutable_spec()->set_availability(api::AVAILABILITY_DRAIN);
  Status outcome;
  auto batch = One(api::StoreAction::UPDATE, update);
  batch.set_request_id("r1");
  store.ExpectOutcome("r1", [&](const Status& r) { outcome = r; });
  store.Apply(EntryOf(6, batch));
  CHECK(outcome.ok());
  CHECK(store.GetNode("n1")->meta().version() == 6);

  batch.set_request_id("r2");
  store.ExpectOutcome("r2", [&](const Status& r) { outcome = r; });
  store.Apply(EntryOf(7, batch));  // still says version 5
  CHECK_FALSE(outcome.ok());
  CHECK(outcome.code() == Code::kConflict);
  CHECK(store.GetNode("n1")->meta().version() == 6);
}

TEST_CASE("a batch applies all of its actions or none", "[store]") {
  Store store;
  api::Node a, b;
  a.set_id("a");
  b.set_id("b");
  store.Apply(EntryOf(1, One(api::StoreAction::CREATE, a)));
  api::StoreBatch batch;
  auto* x = batch.add_actions();
  x->set_kind(api::StoreAction::CREATE);
  *x->mutable_node() = b;
  auto* y = batch.add_actions();
  y->set_kind(api::StoreAction::CREATE);
  *y->mutable_node() = a;  // exists already
  CHECK(store.Validate(batch).message() == "node a already exists");
  store.Apply(EntryOf(2, batch));
  CHECK_FALSE(store.GetNode("b"));
  CHECK(store.ListNodes().size() == 1);
}

TEST_CASE("the store's snapshot restores the same objects and tells the watchers", "[store]") {
  Store store;
  api::Node n;
  n.set_id("n1");
  n.set_raft_id(42);
  store.Apply(EntryOf(3, One(api::StoreAction::CREATE, n)));
  auto serialize = store.Snapshot();
  // Entries applied before the view is serialized (on another thread) are not in it.
  api::Node later;
  later.set_id("n2");
  later.set_raft_id(43);
  store.Apply(EntryOf(4, One(api::StoreAction::CREATE, later)));
  raftpb::Snapshot snap;
  snap.mutable_metadata()->set_index(3);
  snap.set_data(serialize());
  Store copy;
  int events = 0;
  auto sub = copy.Watch([&](const StoreEvent&) { ++events; });
  copy.Restore(snap);
  CHECK(copy.GetNode("n1")->meta().version() == 3);
  CHECK(copy.NodeByRaftId(42)->id() == "n1");
  CHECK_FALSE(copy.GetNode("n2"));
  CHECK(events == 1);
  raftpb::Snapshot bad;
  bad.set_data("\xff\xff");
  CHECK_THROWS(copy.Restore(bad));
  CHECK(copy.GetNode("n1"));  // a snapshot that does not parse changed nothing
}

TEST_CASE("two nodes never share a raft id", "[store]") {
  Store store;
  api::Node a;
  a.set_id("a");
  a.set_raft_id(42);
  store.Apply(EntryOf(2, One(api::StoreAction::CREATE, a)));
  api::Node b;
  b.set_id("b");
  b.set_raft_id(42);
  Status outcome;
  auto batch = One(api::StoreAction::CREATE, b);
  batch.set_request_id("r");
  store.ExpectOutcome("r", [&](const Status& r) { outcome = r; });
  store.Apply(EntryOf(3, batch));
  CHECK_FALSE(outcome.ok());
  CHECK(outcome.message() == "raft id 42 is taken by node a");
  CHECK_FALSE(store.GetNode("b"));
  CHECK(store.NodeByRaftId(42)->id() == "a");
}

namespace {

using AnyObject = std::variant<api::Node, api::Cluster, api::Service, api::Task, api::Network>;

api::StoreBatch Batch(std::vector<std::pair<api::StoreAction::Kind, AnyObject>> actions) {
  api::StoreBatch b;
  b.set_proposed_at(2000);
  for (auto& [kind, obj] : actions) {
    auto* a = b.add_actions();
    a->set_kind(kind);
    std::visit(
        [&](auto& o) {
          using T = std::decay_t<decltype(o)>;
          if constexpr (std::is_same_v<T, api::Node>) *a->mutable_node() = o;
          if constexpr (std::is_same_v<T, api::Cluster>) *a->mutable_cluster() = o;
          if constexpr (std::is_same_v<T, api::Service>) *a->mutable_service() = o;
          if constexpr (std::is_same_v<T, api::Task>) *a->mutable_task() = o;
        },
        obj);
  }
  return b;
}

api::Service ServiceNamed(const std::string& id, const std::string& name) {
  api::Service s;
  s.set_id(id);
  s.mutable_spec()->set_name(name);
  return s;
}

api::Task TaskOf(const std::string& id, const std::string& service, uint64_t slot,
                 const std::string& node, api::TaskState desired = api::TASK_RUNNING) {
  api::Task t;
  t.set_id(id);
  t.set_service_id(service);
  t.set_slot(slot);
  t.set_node_id(node);
  t.set_desired_state(desired);
  return t;
}

}  // namespace

TEST_CASE("tasks are indexed by service, node, slot and desired state", "[store]") {
  Store store;
  const auto C = api::StoreAction::CREATE;
  store.Apply(EntryOf(2, Batch({{C, ServiceNamed("s1", "web")},
                                {C, TaskOf("t1", "s1", 1, "n1")},
                                {C, TaskOf("t2", "s1", 2, "n2")},
                                {C, TaskOf("t3", "s1", 1, "", api::TASK_SHUTDOWN)}})));
  store.View([](const ReadTx& tx) {
    CHECK(tx.service_by_name("web")->id() == "s1");
    CHECK(tx.tasks_of_service("s1").size() == 3);
    CHECK(tx.tasks_on_node("n1").size() == 1);
    CHECK(tx.tasks_in_slot("s1", 1).size() == 2);
    CHECK(tx.tasks_desired(api::TASK_RUNNING).size() == 2);
    CHECK(tx.tasks_of_service("nosuch").empty());
  });
  // Moving a task to another node and desired state moves it in the indexes.
  api::Task t1 = *store.GetTask("t1");
  t1.set_node_id("n2");
  t1.set_desired_state(api::TASK_SHUTDOWN);
  store.Apply(EntryOf(3, Batch({{api::StoreAction::UPDATE, t1}})));
  store.View([](const ReadTx& tx) {
    CHECK(tx.tasks_on_node("n1").empty());
    CHECK(tx.tasks_on_node("n2").size() == 2);
    CHECK(tx.tasks_desired(api::TASK_RUNNING).size() == 1);
    CHECK(tx.tasks_desired(api::TASK_SHUTDOWN).size() == 2);
  });
  api::Task t3 = *store.GetTask("t3");
  store.Apply(EntryOf(4, Batch({{api::StoreAction::REMOVE, t3}})));
  store.View([](const ReadTx& tx) {
    CHECK(tx.tasks_in_slot("s1", 1).size() == 1);
    CHECK(tx.task_count() == 2);
  });
}

TEST_CASE("the scheduler's and allocator's indexes follow a task's state; a shared task stays as "
          "it was read",
          "[store]") {
  Store store;
  const auto C = api::StoreAction::CREATE;
  const auto U = api::StoreAction::UPDATE;
  api::Task addressed = TaskOf("t2", "s1", 2, "");
  addressed.add_networks()->set_network_id("net1");
  store.Apply(EntryOf(2, Batch({{C, ServiceNamed("s1", "web")},
                                {C, TaskOf("t1", "s1", 1, "")},
                                {C, addressed}})));
  auto ids = [](const std::vector<Shared<api::Task>>& tasks) {
    std::vector<std::string> out;
    for (const auto& t : tasks)
      out.push_back(t->id());
    return out;
  };
  using Ids = std::vector<std::string>;
  Shared<api::Task> kept;
  store.View([&](const ReadTx& tx) {
    CHECK(ids(tx.share_tasks_in_state(api::TASK_NEW)) == Ids{"t1", "t2"});
    CHECK(tx.share_tasks_waiting().empty());
    CHECK(ids(tx.share_tasks_with_addresses()) == Ids{"t2"});
    kept = tx.share_task("t1");
  });
  // Allocated: PENDING, so waiting for a node.
  api::Task t1 = *store.GetTask("t1");
  t1.mutable_status()->set_state(api::TASK_PENDING);
  store.Apply(EntryOf(3, Batch({{U, t1}})));
  store.View([&](const ReadTx& tx) {
    CHECK(ids(tx.share_tasks_in_state(api::TASK_NEW)) == Ids{"t2"});
    CHECK(ids(tx.share_tasks_in_state(api::TASK_PENDING)) == Ids{"t1"});
    CHECK(ids(tx.share_tasks_waiting()) == Ids{"t1"});
    // The indexes give the new version; what a reader kept is the old one, unchanged.
    CHECK(tx.share_tasks_waiting()[0]->meta().version() == 3);
  });
  CHECK(kept->status().state() == api::TASK_NEW);
  CHECK(kept->meta().version() == 2);
  // A status change that keeps every index key (the same state, a new message) repoints the
  // entries: every index gives the new version.
  t1 = *store.GetTask("t1");
  t1.mutable_status()->set_message("pending task scheduling");
  store.Apply(EntryOf(4, Batch({{U, t1}})));
  store.View([&](const ReadTx& tx) {
    for (const auto& list : {tx.share_tasks_waiting(), tx.share_tasks_of_service("s1"),
                             tx.share_tasks_in_state(api::TASK_PENDING)}) {
      for (const auto& t : list) {
        if (t->id() == "t1") CHECK(t->status().message() == "pending task scheduling");
      }
    }
    CHECK(tx.tasks_in_slot("s1", 1).front()->meta().version() == 4);
  });
  // Assigned, then ended: it leaves the waiting tasks; the ended task's addresses are free.
  t1 = *store.GetTask("t1");
  t1.set_node_id("n1");
  t1.mutable_status()->set_state(api::TASK_ASSIGNED);
  api::Task t2 = *store.GetTask("t2");
  t2.mutable_status()->set_state(api::TASK_FAILED);
  store.Apply(EntryOf(5, Batch({{U, t1}, {U, t2}})));
  store.View([&](const ReadTx& tx) {
    CHECK(tx.share_tasks_waiting().empty());
    CHECK(ids(tx.share_tasks_on_node("n1")) == Ids{"t1"});
    CHECK(tx.share_tasks_with_addresses().empty());
    CHECK(tx.share_tasks_in_state(api::TASK_NEW).empty());
    CHECK(tx.services_with_tasks() == Ids{"s1"});
  });
}

TEST_CASE("service names are unique, and refusals say why with a typed code", "[store]") {
  Store store;
  store.Apply(EntryOf(2, Batch({{api::StoreAction::CREATE, ServiceNamed("s1", "web")}})));
  Status r = store.Validate(Batch({{api::StoreAction::CREATE, ServiceNamed("s2", "web")}}));
  CHECK(r.code() == Code::kAlreadyExists);
  CHECK(r.message() == "service name \"web\" is already in use");
  api::Service stale = ServiceNamed("s1", "web");  // version 0, the store has 2
  r = store.Validate(Batch({{api::StoreAction::UPDATE, stale}}));
  CHECK(r.code() == Code::kConflict);
  r = store.Validate(Batch({{api::StoreAction::REMOVE, ServiceNamed("s9", "x")}}));
  CHECK(r.code() == Code::kNotFound);
  api::StoreBatch empty_action;
  empty_action.add_actions();
  CHECK(store.Validate(empty_action).code() == Code::kInvalidArgument);
  // A whole batch is refused if one action is: nothing of it applies.
  Status outcome;
  auto both = Batch(
      {{api::StoreAction::CREATE, ServiceNamed("s3", "api")}, {api::StoreAction::UPDATE, stale}});
  both.set_request_id("r");
  store.ExpectOutcome("r", [&](const Status& res) { outcome = res; });
  store.Apply(EntryOf(3, both));
  CHECK(outcome.code() == Code::kConflict);
  CHECK_FALSE(store.GetService("s3"));
}

TEST_CASE("watchers get events stamped with the batch, until they unsubscribe", "[store]") {
  Store store;
  std::vector<StoreEvent> seen;
  auto sub = store.Watch([&](const StoreEvent& ev) { seen.push_back(ev); });
  const auto C = api::StoreAction::CREATE;
  store.Apply(EntryOf(7, Batch({{C, ServiceNamed("s1", "web")}, {C, TaskOf("t1", "s1", 1, "")}})));
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].index == 7);
  CHECK(seen[0].service()->spec().name() == "web");
  CHECK_FALSE(seen[0].last_in_batch);
  CHECK(seen[1].task()->id() == "t1");
  CHECK(seen[1].last_in_batch);
  api::Task t1 = *store.GetTask("t1");
  t1.set_node_id("n1");
  store.Apply(EntryOf(8, Batch({{api::StoreAction::UPDATE, t1}})));
  REQUIRE(seen.size() == 3);
  REQUIRE(seen[2].old_as<api::Task>());
  CHECK(seen[2].old_as<api::Task>()->node_id().empty());
  CHECK(seen[2].task()->node_id() == "n1");
  sub.Cancel();
  store.Apply(EntryOf(9, Batch({{C, TaskOf("t2", "s1", 2, "")}})));
  CHECK(seen.size() == 3);
}

TEST_CASE("a restore emits removals for objects the snapshot does not have", "[store]") {
  Store source;
  const auto C = api::StoreAction::CREATE;
  source.Apply(EntryOf(2, Batch({{C, ServiceNamed("s1", "web")}, {C, TaskOf("t1", "s1", 1, "")}})));
  raftpb::Snapshot snap;
  snap.mutable_metadata()->set_index(2);
  snap.set_data(source.Snapshot()());

  Store target;
  target.Apply(EntryOf(1, Batch({{C, TaskOf("old", "s0", 1, "")}})));
  std::map<std::string, api::StoreAction::Kind> kinds;
  auto sub = target.Watch([&](const StoreEvent& ev) {
    std::visit([&](const auto& o) { kinds[o->id()] = ev.kind; }, ev.object);
  });
  target.Restore(snap);
  CHECK(kinds.at("old") == api::StoreAction::REMOVE);
  CHECK(kinds.at("s1") == api::StoreAction::CREATE);
  CHECK(kinds.at("t1") == api::StoreAction::CREATE);
  CHECK_FALSE(target.GetTask("old"));
  CHECK(target.View([](const ReadTx& tx) { return tx.tasks_of_service("s1").size(); }) == 1);
}

TEST_CASE("networks: unique names and subnets, and no service on a network that is gone",
          "[store]") {
  Store store;
  auto apply = [&](uint64_t index, api::StoreAction::Kind kind, auto set) {
    api::StoreBatch b;
    b.set_request_id("r" + std::to_string(index));
    auto* a = b.add_actions();
    a->set_kind(kind);
    set(a);
    Status out;
    store.ExpectOutcome(b.request_id(), [&](const Status& r) { out = r; });
    store.Apply(EntryOf(index, b));
    return out;
  };
  api::Network net;
  net.set_id("net1");
  net.mutable_spec()->set_name("servicenet");
  net.set_vni(4097);
  net.mutable_ipam()->set_subnet("10.0.9.0/24");
  CHECK(apply(1, api::StoreAction::CREATE, [&](auto* a) { *a->mutable_network() = net; }).ok());

  // Two creates that raced for one subnet: the later one is refused, naming the other.
  api::Network twin = net;
  twin.set_id("net2");
  twin.mutable_spec()->set_name("twin");
  twin.set_vni(4098);
  Status r =
      apply(2, api::StoreAction::CREATE, [&](auto* a) { *a->mutable_network() = twin; });
  CHECK(r.code() == Code::kAlreadyExists);
  CHECK(r.message() == "subnet 10.0.9.0/24 overlaps with network servicenet (10.0.9.0/24)");
  twin.mutable_ipam()->set_subnet("10.0.10.0/24");
  twin.mutable_spec()->set_name("servicenet");
  r = apply(3, api::StoreAction::CREATE, [&](auto* a) { *a->mutable_network() = twin; });
  CHECK(r.message() == "network name \"servicenet\" is already in use");

  // A service may only name networks that exist, and keeps its network from going.
  api::Service svc;
  svc.set_id("s1");
  svc.mutable_spec()->set_name("web");
  svc.mutable_spec()->add_networks()->set_target("nope");
  r = apply(4, api::StoreAction::CREATE, [&](auto* a) { *a->mutable_service() = svc; });
  CHECK(r.code() == Code::kNotFound);
  svc.mutable_spec()->mutable_networks(0)->set_target("net1");
  CHECK(apply(5, api::StoreAction::CREATE, [&](auto* a) { *a->mutable_service() = svc; }).ok());
  const api::Network stored = store.View([](const ReadTx& tx) { return *tx.network("net1"); });
  r = apply(6, api::StoreAction::REMOVE, [&](auto* a) { *a->mutable_network() = stored; });
  CHECK(r.message() == "network servicenet is in use by service web");
  CHECK(store.View([](const ReadTx& tx) { return tx.network_by_name("servicenet") != nullptr; }));

  // And the network survives a snapshot.
  Store copy;
  raftpb::Snapshot snap;
  snap.set_data(store.Snapshot()());
  snap.mutable_metadata()->set_index(6);
  copy.Restore(snap);
  CHECK(copy.View([](const ReadTx& tx) { return tx.networks().size(); }) == 1);
}

TEST_CASE("equal messages with maps compare equal whatever order their entries went in",
          "[proto]") {
  api::Node a, b;
  for (int i = 0; i < 100; ++i)
    (*a.mutable_spec()->mutable_labels())["k" + std::to_string(i)] = "v";
  for (int i = 99; i >= 0; --i)
    (*b.mutable_spec()->mutable_labels())["k" + std::to_string(i)] = "v";
  CHECK(skep::SameMessage(a, b));
  CHECK(skep::CanonicalBytes(a) == skep::CanonicalBytes(b));
  (*b.mutable_spec()->mutable_labels())["k0"] = "w";
  CHECK_FALSE(skep::SameMessage(a, b));
}

TEST_CASE("a control request is applied once however often it is proposed, across a snapshot",
          "[store]") {
  Store store;
  api::Service svc;
  svc.set_id("s1");
  svc.mutable_spec()->set_name("web");
  auto batch = One(api::StoreAction::CREATE, svc);
  batch.set_client_request_id("req-1");
  CHECK_FALSE(store.Applied("req-1"));
  store.Apply(EntryOf(3, batch));
  REQUIRE(store.Applied("req-1"));
  CHECK(store.Applied("req-1")->index == 3);
  CHECK(store.Applied("req-1")->created_id == "s1");

  // The same request again (a retry at a new leader): success, and nothing changes; without
  // the request's ID the same create is refused.
  Status outcome(Code::kInternal, "not called");
  batch.set_request_id("p2");
  store.ExpectOutcome("p2", [&](const Status& r) { outcome = r; });
  store.Apply(EntryOf(4, batch));
  CHECK(outcome.ok());
  CHECK(store.GetService("s1")->meta().version() == 3);
  batch.clear_client_request_id();
  CHECK(store.Validate(batch).code() == Code::kAlreadyExists);

  // A refused request is not remembered.
  auto clash = One(api::StoreAction::CREATE, svc);
  clash.set_client_request_id("req-2");
  store.Apply(EntryOf(5, clash));
  CHECK_FALSE(store.Applied("req-2"));

  Store copy;
  raftpb::Snapshot snap;
  snap.set_data(store.Snapshot()());
  snap.mutable_metadata()->set_index(5);
  copy.Restore(snap);
  REQUIRE(copy.Applied("req-1"));
  CHECK(copy.Applied("req-1")->created_id == "s1");

  // Only the last kAppliedRequestsKept are kept, oldest out first.
  for (size_t i = 0; i < Store::kAppliedRequestsKept; ++i) {
    api::Node n;
    n.set_id("n" + std::to_string(i));
    auto b = One(api::StoreAction::CREATE, n);
    b.set_client_request_id("bulk-" + std::to_string(i));
    copy.Apply(EntryOf(6 + i, b));
  }
  CHECK_FALSE(copy.Applied("req-1"));
  CHECK(copy.Applied("bulk-0"));
}

TEST_CASE("a batch or snapshot of a newer store format is refused, never misapplied", "[store]") {
  Store store;
  api::Node n;
  n.set_id("n1");
  n.set_raft_id(42);
  store.Apply(EntryOf(3, One(api::StoreAction::CREATE, n)));

  api::Node next;
  next.set_id("n2");
  next.set_raft_id(43);
  api::StoreBatch newer = One(api::StoreAction::CREATE, next);
  newer.set_format(kStoreFormat + 1);
  CHECK_THROWS_WITH(store.Apply(EntryOf(4, newer)),
                    Catch::StartsWith("raft entry 4 needs store format " +
                                      std::to_string(kStoreFormat + 1)) &&
                        Catch::EndsWith("reads store formats up to " +
                                        std::to_string(kStoreFormat) + ": upgrade skepd"));
  CHECK_FALSE(store.GetNode("n2"));
  CHECK(store.applied_index() == 3);
  // This build's own format, and batches from before formats were numbered (0), apply.
  newer.set_format(kStoreFormat);
  store.Apply(EntryOf(4, newer));
  CHECK(store.GetNode("n2"));

  // A snapshot says the newest format it holds; format 1 is written as nothing at all.
  raftpb::Snapshot snap;
  snap.mutable_metadata()->set_index(4);
  snap.set_data(store.Snapshot()());
  api::StoreSnapshot parsed;
  REQUIRE(parsed.ParseFromString(snap.data()));
  CHECK(parsed.format() == (kStoreFormat == 1 ? 0u : kStoreFormat));
  parsed.set_format(kStoreFormat + 1);
  snap.set_data(parsed.SerializeAsString());
  Store copy;
  CHECK_THROWS_WITH(copy.Restore(snap),
                    Catch::StartsWith("the store snapshot at raft entry 4 has store format " +
                                      std::to_string(kStoreFormat + 1)));
  CHECK_FALSE(copy.GetNode("n1"));
}

TEST_CASE("the version gate: a newer store format waits for every manager", "[store]") {
  Store store;
  auto node = [&](const std::string& id, api::NodeRole role, uint32_t reads, uint64_t index) {
    api::Node n;
    n.set_id(id);
    n.set_raft_id(index);
    n.set_role(role);
    n.mutable_spec()->set_desired_role(role);
    n.mutable_description()->set_hostname(id);
    n.mutable_description()->set_engine_version(reads == 0 ? "" : "0.1." + std::to_string(reads));
    n.mutable_description()->set_store_format(reads);
    store.Apply(EntryOf(index, One(api::StoreAction::CREATE, n)));
  };
  node("m1", api::ROLE_MANAGER, 2, 1);
  node("m2", api::ROLE_MANAGER, 0, 2);  // a version from before formats were numbered
  node("w1", api::ROLE_WORKER, 1, 3);   // workers apply nothing: they do not count
  auto gate = [&](uint32_t format) {
    return store.View([&](const ReadTx& tx) { return CheckStoreFormat(tx, format, "secrets"); });
  };
  CHECK(gate(1).ok());
  const Status refused = gate(2);
  CHECK(refused.code() == Code::kFailedPrecondition);
  CHECK(refused.message() ==
        "secrets needs every manager to read store format 2; m2 runs an older skep, which reads "
        "up to 1: upgrade it first");
  api::Node m2 = *store.GetNode("m2");
  m2.mutable_description()->set_store_format(2);
  m2.mutable_description()->set_engine_version("0.1.2");
  store.Apply(EntryOf(4, One(api::StoreAction::UPDATE, m2)));
  CHECK(gate(2).ok());
  // A worker being promoted counts as a manager.
  api::Node w1 = *store.GetNode("w1");
  w1.mutable_spec()->set_desired_role(api::ROLE_MANAGER);
  store.Apply(EntryOf(5, One(api::StoreAction::UPDATE, w1)));
  CHECK(gate(2).message() ==
        "secrets needs every manager to read store format 2; w1 runs skep 0.1.1, which reads up "
        "to 1: upgrade it first");
}
