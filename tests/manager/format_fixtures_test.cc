// A manager's raft log as an earlier skep wrote it (tests/fixtures/format-1/raft: a RocksDB
// log with a snapshot of the store and entries after it) must open and apply the same in this
// build. The writer is a hidden test that made the fixture:
//   SKEP_FIXTURE_DIR=tests/fixtures/format-1 build/tests/manager_unit_test "[.write-fixtures]"
// A change of format keeps the old fixture and adds one for the new format.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

#include "daemon/manager/store.h"
#include "raft/rocks_storage.h"
#include "tests/manager/fakes.h"

using namespace skep;
using namespace skep::manager;
using skep::testing::EntryOf;
namespace fs = std::filesystem;

namespace {

// The batches of the fixture's log, in order (entries 1 to 6).
std::vector<api::StoreBatch> FixtureBatches() {
  std::vector<api::StoreBatch> out;
  auto batch = [&](auto fill) {
    api::StoreBatch b;
    b.set_proposed_at(1'700'000'000'000'000'000 + static_cast<int64_t>(out.size()));
    auto* a = b.add_actions();
    a->set_kind(api::StoreAction::CREATE);
    fill(a);
    out.push_back(b);
  };
  batch([](api::StoreAction* a) {
    a->mutable_cluster()->set_id("c1");
    a->mutable_cluster()->mutable_spec()->set_name("default");
  });
  batch([](api::StoreAction* a) {
    api::Node* n = a->mutable_node();
    n->set_id("n1");
    n->set_raft_id(7);
    n->set_role(api::ROLE_MANAGER);
    n->mutable_spec()->set_desired_role(api::ROLE_MANAGER);
    n->mutable_description()->set_hostname("m1");
    n->mutable_description()->set_engine_version("0.1.0");
    n->set_advertise_addr("10.0.0.11:2377");
  });
  batch([](api::StoreAction* a) {
    api::Network* net = a->mutable_network();
    net->set_id("net1");
    net->mutable_spec()->set_name("servicenet");
    net->set_vni(4097);
    net->mutable_ipam()->set_subnet("10.0.9.0/24");
  });
  batch([](api::StoreAction* a) {
    api::Service* s = a->mutable_service();
    s->set_id("s1");
    s->mutable_spec()->set_name("web");
    s->mutable_spec()->mutable_replicated()->set_replicas(2);
    s->mutable_spec()->mutable_task()->mutable_container()->set_image("skep/web:1");
    s->mutable_spec()->add_networks()->set_target("net1");
    s->set_spec_version(1);
  });
  for (uint64_t slot : {1, 2}) {
    batch([slot](api::StoreAction* a) {
      api::Task* t = a->mutable_task();
      t->set_id("t" + std::to_string(slot));
      t->set_service_id("s1");
      t->set_service_name("web");
      t->set_slot(slot);
      t->set_node_id("n1");
      t->set_spec_version(1);
      t->set_desired_state(api::TASK_RUNNING);
      t->mutable_status()->set_state(api::TASK_RUNNING);
      t->mutable_spec()->mutable_container()->set_image("skep/web:1");
    });
  }
  return out;
}

}  // namespace

TEST_CASE("write the format fixtures", "[.write-fixtures]") {
  const char* out = std::getenv("SKEP_FIXTURE_DIR");
  REQUIRE(out != nullptr);
  const fs::path raft_dir = fs::path(out) / "raft";
  fs::remove_all(raft_dir);
  fs::create_directories(raft_dir);
  Store store;
  std::vector<raftpb::Entry> entries;
  const auto batches = FixtureBatches();
  for (size_t i = 0; i < batches.size(); ++i)
    entries.push_back(EntryOf(i + 1, batches[i]));
  {
    auto storage = raft::RocksStorage::Open(raft_dir.string());
    raftpb::HardState hs;
    hs.set_term(1);
    hs.set_vote(7);
    hs.set_commit(entries.size());
    storage->Save(&hs, entries, nullptr);
    // A snapshot of the store after entry 4, the log compacted behind entry 3.
    for (size_t i = 0; i < 4; ++i)
      store.Apply(entries[i]);
    raftpb::ConfState conf;
    conf.add_voters(7);
    storage->CreateSnapshot(4, conf, store.Snapshot()(), 3);
  }
  // RocksDB's own text log is no part of the format.
  for (const auto& f : fs::directory_iterator(raft_dir)) {
    if (f.path().filename().string().rfind("LOG", 0) == 0) fs::remove(f.path());
  }
}

TEST_CASE("a raft log of store format 1 opens and applies the same", "[store][fixtures]") {
  const fs::path copy =
      fs::temp_directory_path() / ("skep-fixture-" + std::to_string(getpid()));
  fs::remove_all(copy);
  fs::copy(SKEP_SOURCE_DIR "/tests/fixtures/format-1/raft", copy, fs::copy_options::recursive);
  {
    auto storage = raft::RocksStorage::Open(copy.string());
    CHECK(storage->HardState().commit() == 6);
    const auto snap = storage->Snapshot();
    REQUIRE(snap->metadata().index() == 4);
    CHECK(storage->FirstIndex() == 4);
    CHECK(storage->LastIndex() == 6);
    Store store;
    store.Restore(*snap);
    std::vector<raftpb::Entry> rest;
    REQUIRE(storage->Entries(5, 7, UINT64_MAX, &rest));
    for (const auto& e : rest)
      store.Apply(e);
    CHECK(store.applied_index() == 6);
    CHECK(store.GetCluster()->spec().name() == "default");
    CHECK(store.GetNode("n1")->description().hostname() == "m1");
    CHECK(store.NodeByRaftId(7)->id() == "n1");
    const auto web = store.GetService("s1");
    REQUIRE(web);
    CHECK(web->spec().replicated().replicas() == 2);
    CHECK(web->spec().networks(0).target() == "net1");
    CHECK(store.TasksOfService("s1").size() == 2);
    CHECK(store.View([](const ReadTx& tx) { return tx.network_by_name("servicenet") != nullptr; }));
    // The same objects as the batches make in a store of this build.
    Store fresh;
    const auto batches = FixtureBatches();
    for (size_t i = 0; i < batches.size(); ++i)
      fresh.Apply(EntryOf(i + 1, batches[i]));
    CHECK(fresh.GetService("s1")->SerializeAsString() == web->SerializeAsString());
    CHECK(fresh.GetTask("t2")->SerializeAsString() == store.GetTask("t2")->SerializeAsString());
  }
  fs::remove_all(copy);
}
