// What skepd is on one machine: the local control socket for `skep`, the node's membership of a
// swarm (state on disk, certificates), its agent, and — on managers — the manager. It creates a
// swarm (init), joins one (join), leaves, switches between worker and manager when the swarm
// promotes or demotes it, and resumes all of that after a restart.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "control.grpc.pb.h"
#include "daemon/manager/manager.h"
#include "daemon/node/session_client.h"
#include "daemon/node/state.h"
#include "daemon/node/worker.h"

namespace skep::node {

struct NodeOptions {
  std::string data_dir = "/var/lib/skep";
  std::string control_socket = "/run/skep/skepd.sock";
  std::string hostname;  // empty: the machine's
  std::map<std::string, std::string> labels;
  std::string containerd_socket = "/run/containerd/containerd.sock";
  std::vector<std::string> registry_mirrors;     // for docker.io names, e.g. http://10.0.0.5:5000
  std::vector<std::string> insecure_registries;  // host[:port] spoken to over plain HTTP
  std::string registry_ca;  // a PEM bundle trusted for registries besides the system's CAs
  uint16_t gossip_port = 7946;  // every node's, UDP and TCP: the managers' is the seed
};

struct GossipHost;  // the gossip agent with its thread

class NodeRuntime {
 public:
  explicit NodeRuntime(NodeOptions options);
  ~NodeRuntime();

  // Resumes the node's role from its data directory and opens the control socket. Throws
  // std::runtime_error with a message for the operator.
  void Start();
  void Stop();

  grpc::Status Init(const api::InitRequest& req, api::InitResponse* resp);
  grpc::Status Join(const api::JoinRequest& req, api::JoinResponse* resp);
  grpc::Status Leave(const api::LeaveRequest& req, api::Empty* resp);
  grpc::Status Info(api::InfoResponse* resp);
  // Checks a registry login with this node's registry settings (`skep login`).
  grpc::Status Login(const api::LoginRequest& req, api::LoginResponse* resp);

  // The local manager, or the error `skep` shows on a node that is not one.
  grpc::Status LocalManager(std::shared_ptr<manager::Manager>* out) const;
  std::string node_id() const;

 private:
  api::NodeDescription Describe() const;
  void StartAgent(const std::vector<api::ManagerPeer>& managers);
  executor::RegistryConfig Registries() const;
  void StartManager(manager::ManagerOptions::Start mode,
                    const std::vector<api::ManagerPeer>& peers);
  void OnSession(const api::SessionMessage& msg);
  void OnRole(api::NodeRole role);

  NodeOptions options_;
  DataDir dir_;
  mutable std::mutex mu_;  // Init, Join, Leave and role changes one at a time
  std::optional<api::LocalState> state_;
  std::shared_ptr<manager::Manager> manager_;
  std::shared_ptr<Agent> agent_;
  std::unique_ptr<GossipHost> gossip_;  // outlives worker_
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<grpc::Server> local_server_;
  std::unique_ptr<grpc::Service> local_node_service_;
  std::unique_ptr<grpc::Service> local_control_service_;
  std::string error_;    // this node's own failure (its manager did not start)
  std::string removed_;  // the swarm says it does not know this node
};

}  // namespace skep::node
