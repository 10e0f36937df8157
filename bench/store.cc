// store: the manager's store (daemon/manager/store.h) at a large swarm's size, in one process,
// without raft: N tasks of one service on 1,000 nodes, created through Apply in batches of
// 2,000 (as the orchestrator writes them), then updated once each (as the scheduler assigns
// them); a snapshot taken and encoded; and the snapshot restored into a fresh store (what a
// manager does when it starts). Each step is timed once per run, the best of --runs shown.
//
//   store [--runs N] [--tasks N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "daemon/manager/orchestrator/reconcile.h"
#include "daemon/manager/store.h"

using Clock = std::chrono::steady_clock;
using namespace skep;

namespace {

struct Options {
  int runs = 3;
  int tasks = 100000;
};

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    auto value = [&]() {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "store: %s needs a value\n", argv[i]);
        std::exit(2);
      }
      return std::atoi(argv[++i]);
    };
    if (!std::strcmp(argv[i], "--runs")) {
      o.runs = value();
    } else if (!std::strcmp(argv[i], "--tasks")) {
      o.tasks = value();
    } else {
      std::fprintf(stderr, "usage: store [--runs N] [--tasks N]\n");
      std::exit(2);
    }
  }
  if (o.runs < 1 || o.tasks < 1) {
    std::fprintf(stderr, "store: --runs and --tasks must be positive\n");
    std::exit(2);
  }
  return o;
}

raftpb::Entry EntryOf(uint64_t index, const api::StoreBatch& batch) {
  raftpb::Entry e;
  e.set_index(index);
  e.set_term(1);
  e.set_type(raftpb::ENTRY_NORMAL);
  e.set_data(batch.SerializeAsString());
  return e;
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

struct Run {
  double create = 0, update = 0, snapshot = 0, encode = 0, restore = 0;
  size_t bytes = 0;
};

Run Once(const Options& o) {
  manager::Store store;
  uint64_t index = 0;
  api::StoreBatch batch;
  batch.set_proposed_at(1);
  std::vector<std::string> nodes;
  for (int n = 0; n < 1000; ++n) {
    auto* a = batch.add_actions();
    a->set_kind(api::StoreAction::CREATE);
    api::Node* node = a->mutable_node();
    node->set_id("node" + std::to_string(n));
    node->mutable_description()->set_hostname("sim-" + std::to_string(n));
    node->mutable_status()->set_state(api::NODE_STATE_READY);
    nodes.push_back(node->id());
  }
  api::Service service;
  service.set_id("svc0123456789abcdefghijklm");
  service.mutable_spec()->set_name("web");
  service.mutable_spec()->mutable_replicated()->set_replicas(o.tasks);
  service.mutable_spec()->mutable_task()->mutable_container()->set_image("skep/web:1");
  *batch.add_actions()->mutable_service() = service;
  batch.mutable_actions(batch.actions_size() - 1)->set_kind(api::StoreAction::CREATE);
  store.Apply(EntryOf(++index, batch));

  Run r;
  // The orchestrator's writes: the tasks, 2,000 to a batch.
  std::vector<api::StoreBatch> creates;
  for (int from = 0; from < o.tasks; from += 2000) {
    api::StoreBatch b;
    b.set_proposed_at(2);
    for (int slot = from + 1; slot <= std::min(o.tasks, from + 2000); ++slot) {
      auto* a = b.add_actions();
      a->set_kind(api::StoreAction::CREATE);
      api::Task t = orchestrator::NewTask(service, slot, "", 2);
      t.set_id("task" + std::to_string(slot) + "abcdefghijklmnopq");
      *a->mutable_task() = std::move(t);
    }
    creates.push_back(std::move(b));
  }
  std::vector<raftpb::Entry> entries;
  for (const auto& b : creates)
    entries.push_back(EntryOf(++index, b));
  auto start = Clock::now();
  for (const auto& e : entries)
    store.Apply(e);
  r.create = Seconds(start);

  // The scheduler's: every task assigned to a node, from its stored version.
  entries.clear();
  std::vector<manager::Shared<api::Task>> tasks;
  store.View([&](const manager::ReadTx& tx) { tasks = tx.share_tasks_of_service(service.id()); });
  for (size_t from = 0; from < tasks.size(); from += 2000) {
    api::StoreBatch b;
    b.set_proposed_at(3);
    for (size_t i = from; i < std::min(tasks.size(), from + 2000); ++i) {
      auto* a = b.add_actions();
      a->set_kind(api::StoreAction::UPDATE);
      api::Task t = *tasks[i];
      t.set_node_id(nodes[i % nodes.size()]);
      t.mutable_status()->set_state(api::TASK_ASSIGNED);
      *a->mutable_task() = std::move(t);
    }
    entries.push_back(EntryOf(++index, b));
  }
  tasks.clear();
  start = Clock::now();
  for (const auto& e : entries)
    store.Apply(e);
  r.update = Seconds(start);

  start = Clock::now();
  auto encode = store.Snapshot();
  r.snapshot = Seconds(start);
  start = Clock::now();
  raftpb::Snapshot snap;
  snap.set_data(encode());
  snap.mutable_metadata()->set_index(index);
  r.encode = Seconds(start);
  r.bytes = snap.data().size();

  manager::Store fresh;
  start = Clock::now();
  fresh.Restore(snap);
  r.restore = Seconds(start);
  if (fresh.View([](const manager::ReadTx& tx) { return tx.task_count(); }) !=
      static_cast<size_t>(o.tasks)) {
    std::fprintf(stderr, "store: the restored store lost tasks\n");
    std::exit(1);
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = ParseArgs(argc, argv);
  Run best;
  for (int i = 0; i < o.runs; ++i) {
    const Run r = Once(o);
    auto keep = [&](double& b, double v) { b = i == 0 ? v : std::min(b, v); };
    keep(best.create, r.create);
    keep(best.update, r.update);
    keep(best.snapshot, r.snapshot);
    keep(best.encode, r.encode);
    keep(best.restore, r.restore);
    best.bytes = r.bytes;
  }
  std::printf("store: %d tasks of one service on 1000 nodes, best of %d runs\n\n", o.tasks,
              o.runs);
  std::printf("%-52s %10s %12s\n", "STEP", "SECONDS", "PER TASK us");
  auto row = [&](const char* what, double s) {
    std::printf("%-52s %10.3f %12.2f\n", what, s, s * 1e6 / o.tasks);
  };
  row("apply the creates (batches of 2000)", best.create);
  row("apply an update of each (batches of 2000)", best.update);
  row("snapshot: the tables shared, under the lock", best.snapshot);
  row("snapshot: encoded", best.encode);
  row("restore into a fresh store (a manager's start)", best.restore);
  std::printf("\nsnapshot size: %.1f MB\n", best.bytes / 1e6);
  return 0;
}
