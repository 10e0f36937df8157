// raft_bench: three raft nodes in one process over an in-memory transport, driven by the same
// RaftNode driver the manager uses. Closed-loop proposers (each waits for its proposal to be
// applied on the leader before sending the next) with 1, 16 and 256 of them, once with
// in-memory storage and once with RocksDB on disk, every write synced.
//
//   raft_bench [--seconds N] [--payload BYTES] [--dir PATH] [--threads N]
#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "daemon/manager/raft_node.h"
#include "raft/conf.h"
#include "raft/memory_storage.h"
#include "raft/rocks_storage.h"

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using namespace skep;

namespace {

struct Options {
  double seconds = 5;
  size_t payload = 256;
  std::string dir = "/var/tmp/skep-raft-bench";
  int threads = 2;
};

// Hands each message to the io_context, as a network hands it to the receiver's threads: the
// three nodes work in parallel, as they would in processes of their own (delivered inline, one
// thread would end up running all three).
class LocalTransport : public RaftTransport {
 public:
  explicit LocalTransport(asio::io_context& io) : io_(io) {}
  void Send(raftpb::Message m) override {
    auto it = nodes.find(m.to());
    if (it == nodes.end()) return;
    asio::post(io_, [node = it->second, m = std::move(m)]() mutable { node->Step(std::move(m)); });
  }
  std::map<raft::NodeId, RaftNode*> nodes;

 private:
  asio::io_context& io_;
};

class CountingStateMachine : public RaftStateMachine {
 public:
  void Apply(const raftpb::Entry&) override { ++applied; }
  std::function<std::string()> Snapshot() override {
    return [n = applied] { return std::to_string(n); };
  }
  void Restore(const raftpb::Snapshot&) override {}
  uint64_t applied = 0;
};

struct Result {
  double commits_per_sec = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

Result Run(const Options& opt, bool rocks, int proposers) {
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  std::vector<std::thread> threads;
  for (int i = 0; i < opt.threads; ++i)
    threads.emplace_back([&] { io.run(); });

  const raftpb::ConfState conf = raft::MakeConfState({1, 2, 3});
  std::vector<std::unique_ptr<raft::Storage>> storages;
  std::vector<std::unique_ptr<CountingStateMachine>> sms;
  std::vector<std::unique_ptr<RaftNode>> nodes;
  LocalTransport transport(io);
  std::filesystem::remove_all(opt.dir);
  for (raft::NodeId id = 1; id <= 3; ++id) {
    if (rocks) {
      auto st = raft::RocksStorage::Open(opt.dir + "/node" + std::to_string(id));
      st->Bootstrap(conf);
      storages.push_back(std::move(st));
    } else {
      storages.push_back(std::make_unique<raft::MemoryStorage>(conf));
    }
    sms.push_back(std::make_unique<CountingStateMachine>());
    RaftNodeOptions o;
    o.raft.id = id;
    o.raft.seed = id;
    o.raft.election_tick = 20;
    o.raft.heartbeat_tick = 2;
    o.tick = std::chrono::milliseconds(10);
    o.snapshot_every = 50000;
    o.snapshot_keep = 5000;
    nodes.push_back(
        std::make_unique<RaftNode>(io, o, storages.back().get(), &transport, sms.back().get()));
    transport.nodes[id] = nodes.back().get();
  }
  for (auto& n : nodes)
    n->Start();
  nodes[0]->Campaign();
  while (nodes[0]->GetStatus().role != raft::Role::kLeader) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  RaftNode& leader = *nodes[0];

  std::atomic<bool> measuring{false}, stop{false};
  std::mutex mu;
  std::vector<double> latencies;
  std::atomic<uint64_t> commits{0};
  const std::string payload(opt.payload, 'p');
  std::function<void()> propose = [&] {
    if (stop) return;
    const auto start = Clock::now();
    leader.Propose(payload, [&, start](const raft::Status& st) {
      if (st.ok() && measuring) {
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
        commits++;
        std::lock_guard lock(mu);
        latencies.push_back(ms);
      }
      propose();
    });
  };
  for (int i = 0; i < proposers; ++i)
    propose();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // warm up
  measuring = true;
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(opt.seconds));
  measuring = false;
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  stop = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (auto& n : nodes)
    n->Stop();
  guard.reset();
  io.stop();
  for (auto& t : threads)
    t.join();

  Result r;
  r.commits_per_sec = static_cast<double>(commits.load()) / elapsed;
  std::lock_guard lock(mu);
  r.p50_ms = Percentile(latencies, 0.50);
  r.p99_ms = Percentile(latencies, 0.99);
  nodes.clear();
  storages.clear();
  std::filesystem::remove_all(opt.dir);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "raft_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--seconds") {
      opt.seconds = std::stod(value());
    } else if (a == "--payload") {
      opt.payload = std::stoul(value());
    } else if (a == "--dir") {
      opt.dir = value();
    } else if (a == "--threads") {
      opt.threads = std::stoi(value());
    } else {
      std::fprintf(
          stderr, "usage: raft_bench [--seconds N] [--payload BYTES] [--dir PATH] [--threads N]\n");
      return a == "--help" ? 0 : 2;
    }
  }
  std::printf("3 nodes, in-memory transport, %zu-byte proposals, %.0f s per row, %d threads\n\n",
              opt.payload, opt.seconds, opt.threads);
  std::printf("%-22s %10s %12s %10s %10s\n", "STORAGE", "PROPOSERS", "COMMITS/S", "P50 MS",
              "P99 MS");
  for (bool rocks : {false, true}) {
    for (int proposers : {1, 16, 256}) {
      const Result r = Run(opt, rocks, proposers);
      std::printf("%-22s %10d %12.0f %10.3f %10.3f\n", rocks ? "rocksdb (fsync)" : "memory",
                  proposers, r.commits_per_sec, r.p50_ms, r.p99_ms);
      std::fflush(stdout);
    }
  }
  return 0;
}
