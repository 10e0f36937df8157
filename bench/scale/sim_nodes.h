// Simulated worker nodes for bench/scale: many nodes in one process, each a real member of the
// swarm as far as the managers can tell. Each joins with the worker token (CA.JoinNode with a
// certificate request of its own key, as daemon/node/node.cc does), then keeps an agent session
// with the leader's dispatcher over mutual TLS with its own certificate, as daemon/node/agent.cc
// does: it follows the "not the leader" hints, heartbeats at half the period the dispatcher
// asks for, and reports task statuses in batches, one request in flight per node and only the
// latest status of each task in it (the worker's own batching, daemon/node/worker.cc).
//
// The executor is a test double: a task the node is given to run is RUNNING at once (with an
// instant executor the worker's batching leaves only that state to report); a task it is told
// to stop is SHUTDOWN at once. No containers, no overlay, no gossip.
//
// Threads: gRPC's callback API (its own few threads) and an io_context run by a few threads;
// every node's state belongs to its strand, where gRPC's completions are posted. Nothing here
// is a thread per node.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "objects.pb.h"

namespace skep::bench {

struct SimOptions {
  std::vector<std::string> managers;  // ip:port of every manager's 2377; joins go to the first
  std::string join_token;             // the worker token
  std::string advertise_ip;           // the address the nodes give as theirs
  int nodes = 1000;
  int join_threads = 16;  // joins in flight at once
  int io_threads = 2;
  // The first sessions open at this rate (nodes of a cluster being built join over time); 0:
  // all at once. Reconnections after a failure are never held back.
  int sessions_per_second = 0;
  // 0: the product's channel arguments as they are (tls::ChannelArgs). Otherwise the minimum
  // time given to a connection attempt (TCP and TLS handshake), which gRPC takes from
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS (100 ms in tls::ChannelArgs).
  int connect_timeout_ms = 0;
  int64_t nano_cpus = 4'000'000'000;
  int64_t memory_bytes = int64_t{8} << 30;
};

// A task as the node that holds it sees it.
struct SimTask {
  std::string id;
  std::string service_id;
  uint64_t slot = 0;
  int node = 0;  // index of the simulated node
  api::TaskState desired = api::TASK_NEW;
  api::TaskState state = api::TASK_NEW;
  bool running_acked = false;  // the leader took its RUNNING
};

// One node's session, as a snapshot sees it.
struct SimSession {
  std::string manager;  // where its session is open; empty while it has none
  std::chrono::steady_clock::time_point opened;
};

// Totals over every node, kept as the nodes' strands change them.
struct SimCounters {
  std::atomic<int64_t> sessions{0};  // nodes with an open session (first message read)
  std::atomic<int64_t> sessions_opened{0};
  std::atomic<int64_t> sessions_ended{0};
  std::atomic<int64_t> live_tasks{0};     // held, with a desired state of RUNNING or less
  std::atomic<int64_t> running_acked{0};  // of those, whose RUNNING the leader acknowledged
  std::atomic<int64_t> told_to_stop{0};   // tasks whose desired state went past RUNNING
  std::atomic<int64_t> dropped{0};        // tasks a full resync no longer listed
  std::atomic<int64_t> unreported{0};     // statuses waiting to be sent or acknowledged
  std::atomic<int64_t> status_calls{0};
  std::atomic<int64_t> status_failures{0};
  std::atomic<int64_t> heartbeats{0};
  std::atomic<int64_t> heartbeat_failures{0};
  std::atomic<int64_t> session_refusals{0};     // sessions that ended before their first message
  std::atomic<int64_t> heartbeat_period_ms{0};  // as the dispatcher last asked
  std::atomic<int64_t> tasks_received{0};       // tasks in session messages, and their bytes
  std::atomic<int64_t> task_bytes_received{0};
};

class SimNodes {
 public:
  explicit SimNodes(SimOptions options);
  ~SimNodes();
  SimNodes(const SimNodes&) = delete;
  SimNodes& operator=(const SimNodes&) = delete;

  // Fetches the root CA (checked against the token's digest) and joins every node, each with a
  // key and certificate of its own. Throws std::runtime_error saying what failed.
  void Join();
  // Opens every node's session (at options.sessions_per_second); returns at once.
  void Start();
  // Ends every session and cancels every call; false if some had not completed within a
  // minute.
  bool Stop();

  const SimCounters& counters() const { return counters_; }
  // Snapshots, taken on each node's strand.
  std::vector<SimTask> Tasks();
  std::vector<SimSession> Sessions();
  // How sessions ended, by status code, with the last message of each: "UNAVAILABLE 12 (...)".
  std::string EndReasons() const;
  int size() const { return options_.nodes; }

 private:
  struct Node;
  class SessionCall;
  struct Io;

  SimOptions options_;
  std::string ca_pem_;
  SimCounters counters_;
  mutable std::mutex reasons_mu_;
  std::map<int, std::pair<int64_t, std::string>> reasons_;  // status code -> count, last message
  std::unique_ptr<Io> io_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

}  // namespace skep::bench
