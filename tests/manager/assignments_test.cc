// What a node's session is sent: every task of the node first (and after every reconnection),
// then only what changed in a way the node sees, and what is no longer its own.
#include <catch2/catch.hpp>

#include "daemon/manager/assignments.h"

using namespace skep;
using namespace skep::manager;

namespace {

struct World {
  Store store;
  uint64_t index = 0;
  void Apply(api::StoreAction::Kind kind, const api::Task& t) {
    api::StoreBatch b;
    auto* a = b.add_actions();
    a->set_kind(kind);
    *a->mutable_task() = t;
    raftpb::Entry e;
    e.set_index(++index);
    e.set_term(1);
    e.set_data(b.SerializeAsString());
    store.Apply(e);
  }
  api::Task Get(const std::string& id) { return *store.GetTask(id); }
  api::SessionMessage Next(Assignments& a, bool* changed = nullptr) {
    api::SessionMessage m;
    const bool c = store.View([&](const ReadTx& tx) { return a.Next(tx, &m); });
    if (changed != nullptr) *changed = c;
    return m;
  }
};

api::Task TaskOn(const std::string& id, const std::string& node) {
  api::Task t;
  t.set_id(id);
  t.set_service_id("s");
  t.set_node_id(node);
  t.set_desired_state(api::TASK_RUNNING);
  t.mutable_status()->set_state(api::TASK_ASSIGNED);
  t.mutable_spec()->mutable_container()->set_image("web:1");
  return t;
}

std::vector<std::string> Ids(const api::SessionMessage& m) {
  std::vector<std::string> out;
  for (const auto& t : m.tasks())
    out.push_back(t.id());
  return out;
}

}  // namespace

TEST_CASE("assignments: a full list first, then increments, and a full list again on resync",
          "[dispatcher]") {
  World w;
  w.Apply(api::StoreAction::CREATE, TaskOn("t1", "n1"));
  w.Apply(api::StoreAction::CREATE, TaskOn("t2", "n1"));
  w.Apply(api::StoreAction::CREATE, TaskOn("other", "n2"));
  Assignments a("n1");
  bool changed = false;
  auto m = w.Next(a, &changed);
  CHECK(changed);
  CHECK_FALSE(m.incremental());
  CHECK(Ids(m) == std::vector<std::string>{"t1", "t2"});
  CHECK(m.tasks(0).status().state() == api::TASK_NEW);  // the status is the node's to report

  // Nothing changed: nothing to send.
  w.Next(a, &changed);
  CHECK_FALSE(changed);

  // The node's own report changes nothing it is sent.
  api::Task t1 = w.Get("t1");
  t1.mutable_status()->set_state(api::TASK_RUNNING);
  w.Apply(api::StoreAction::UPDATE, t1);
  w.Next(a, &changed);
  CHECK_FALSE(changed);

  // A change it sees goes out alone; a task that is no longer its own is named.
  api::Task t2 = w.Get("t2");
  t2.set_desired_state(api::TASK_SHUTDOWN);
  w.Apply(api::StoreAction::UPDATE, t2);
  api::Task t1now = w.Get("t1");
  w.Apply(api::StoreAction::REMOVE, t1now);
  m = w.Next(a, &changed);
  CHECK(changed);
  CHECK(m.incremental());
  CHECK(Ids(m) == std::vector<std::string>{"t2"});
  CHECK(m.tasks(0).desired_state() == api::TASK_SHUTDOWN);
  REQUIRE(m.removed_task_ids_size() == 1);
  CHECK(m.removed_task_ids(0) == "t1");

  // A reconnection is a new session: everything again.
  Assignments again("n1");
  m = w.Next(again, &changed);
  CHECK_FALSE(m.incremental());
  CHECK(Ids(m) == std::vector<std::string>{"t2"});
}
