#include <catch2/catch.hpp>

#include "daemon/manager/store.h"

using namespace skep;
using namespace skep::manager;

namespace {

raftpb::Entry EntryOf(uint64_t index, const api::StoreBatch& batch) {
  raftpb::Entry e;
  e.set_index(index);
  e.set_term(1);
  e.set_data(batch.SerializeAsString());
  return e;
}

api::StoreBatch One(api::StoreAction::Kind kind, const api::Node& n) {
  api::StoreBatch b;
  b.set_proposed_at(1000);
  auto* a = b.add_actions();
  a->set_kind(kind);
  *a->mutable_node() = n;
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
  ApplyResult outcome;
  auto batch = One(api::StoreAction::UPDATE, update);
  batch.set_request_id("r1");
  store.ExpectOutcome("r1", [&](const ApplyResult& r) { outcome = r; });
  store.Apply(EntryOf(6, batch));
  CHECK(outcome.ok);
  CHECK(store.GetNode("n1")->meta().version() == 6);

  batch.set_request_id("r2");
  store.ExpectOutcome("r2", [&](const ApplyResult& r) { outcome = r; });
  store.Apply(EntryOf(7, batch));  // still says version 5
  CHECK_FALSE(outcome.ok);
  CHECK(outcome.error.rfind("update out of sequence", 0) == 0);
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
  CHECK(store.Validate(batch).error == "node a already exists");
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
  copy.Watch([&](const StoreEvent&) { ++events; });
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
  ApplyResult outcome;
  auto batch = One(api::StoreAction::CREATE, b);
  batch.set_request_id("r");
  store.ExpectOutcome("r", [&](const ApplyResult& r) { outcome = r; });
  store.Apply(EntryOf(3, batch));
  CHECK_FALSE(outcome.ok);
  CHECK(outcome.error == "raft id 42 is taken by node a");
  CHECK_FALSE(store.GetNode("b"));
  CHECK(store.NodeByRaftId(42)->id() == "a");
}
