// What every machine of a swarm runs, whatever its role: its state on disk (state.h), its
// session with the managers (session_client.h), the worker that runs its tasks (worker.h), and
// the gossip agent that carries the overlay networks' endpoint tables. The host (daemon/host)
// composes it with a manager on the machines that are managers; nothing here knows of one.
//
// Where it runs: the host calls it from its strand; the session's news comes on the session's
// strand (SessionCallbacks); Stop and Leave block (they end the session, the worker and the
// gossip agent), so the host calls them on its blocking pool.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "control.pb.h"
#include "daemon/common/status.h"
#include "daemon/executor/registry.h"
#include "daemon/node/session_client.h"
#include "daemon/node/state.h"

namespace skep::node {

struct NodeOptions {
  std::string data_dir = "/var/lib/skep";
  std::string control_socket = "/run/skep/skepd.sock";
  std::string hostname;  // empty: the machine's
  std::map<std::string, std::string> labels;
  std::string containerd_socket = "/run/containerd/containerd.sock";
  std::vector<std::string> registry_mirrors;     // for docker.io names, e.g. http://10.0.0.5:5000
  std::vector<std::string> insecure_registries;  // host[:port] spoken to over plain HTTP
  std::string registry_ca;      // a PEM bundle trusted for registries besides the system's CAs
  uint16_t gossip_port = 7946;  // every node's, UDP and TCP: the managers' is the seed
};

class GossipHost;
class Worker;

class Node {
 public:
  Node(NodeOptions options, boost::asio::any_io_executor io, boost::asio::any_io_executor blocking);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const NodeOptions& options() const { return options_; }
  const DataDir& dir() const { return dir_; }
  // What this machine is, for the managers.
  api::NodeDescription Describe() const;
  executor::RegistryConfig Registries() const;

  // Starts the gossip agent, the worker and the session for the swarm `state` names; the
  // session's news goes to `events` after the node took what concerns it. Not twice.
  void Start(const api::LocalState& state, SessionCallbacks events);
  // Stops them; the containers keep running (a restarted skepd re-attaches to them).
  void Stop();
  // The node leaves the swarm: the session ends, every container is stopped and removed (at
  // most `timeout`), the gossip cluster is told, and then all of it stops.
  void Leave(std::chrono::milliseconds timeout);
  bool started() const { return session_ != nullptr; }
  // The manager the session is with, empty when there is none. Thread-safe.
  std::string Manager() const;

  // Checks a registry login with this node's registry settings (`skep login`). Blocks on the
  // registry: from the blocking pool.
  Status Login(const api::LoginRequest& req, api::LoginResponse* resp) const;

 private:
  // What a session message means for the node: the gossip cluster's keys and seeds, and the
  // worker's networks and tasks. On the session's strand.
  void Apply(const api::SessionMessage& msg);

  const NodeOptions options_;
  const DataDir dir_;
  const bool memory_cgroup_;  // the kernel's memory controller (checked once, at start)
  boost::asio::any_io_executor io_;
  boost::asio::any_io_executor blocking_;
  std::string node_id_;
  std::unique_ptr<GossipHost> gossip_;  // outlives worker_
  std::unique_ptr<Worker> worker_;
  std::shared_ptr<SessionClient> session_;
};

}  // namespace skep::node
