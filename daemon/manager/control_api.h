// The cluster control API: validation, then one raft write per change. Any manager accepts a
// request; a follower forwards it to the leader over 2377. ControlService serves it on 2377 to
// other managers only (worker certificates are refused); skepd's control socket calls ControlApi
// directly.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>

#include "control.grpc.pb.h"

namespace skep::manager {

class Manager;
class LogFeed;

class ControlApi {
 public:
  explicit ControlApi(Manager* manager) : m_(manager) {}

  grpc::Status InspectSwarm(const api::Empty& req, api::ClusterView* resp);
  grpc::Status UpdateSwarm(const api::UpdateSwarmRequest& req, api::Empty* resp);
  grpc::Status GetJoinToken(const api::JoinTokenRequest& req, api::JoinTokenResponse* resp);
  grpc::Status ListNodes(const api::ListNodesRequest& req, api::ListNodesResponse* resp);
  grpc::Status GetNode(const api::NodeRef& req, api::NodeView* resp);
  grpc::Status UpdateNode(const api::UpdateNodeRequest& req, api::NodeView* resp);
  grpc::Status RemoveNode(const api::RemoveNodeRequest& req, api::Empty* resp);
  // Services and tasks (service_api.cc).
  grpc::Status CreateService(const api::CreateServiceRequest& req,
                             api::CreateServiceResponse* resp);
  grpc::Status ListServices(const api::ListServicesRequest& req, api::ListServicesResponse* resp);
  grpc::Status GetService(const api::ServiceRef& req, api::ServiceView* resp);
  grpc::Status UpdateService(const api::UpdateServiceRequest& req, api::ServiceView* resp);
  grpc::Status RemoveService(const api::ServiceRef& req, api::Empty* resp);
  grpc::Status ListTasks(const api::ListTasksRequest& req, api::ListTasksResponse* resp);
  grpc::Status ExplainService(const api::ServiceRef& req, api::ExplainServiceResponse* resp);
  // Networks (network_api.cc).
  grpc::Status CreateNetwork(const api::CreateNetworkRequest& req,
                             api::CreateNetworkResponse* resp);
  grpc::Status ListNetworks(const api::ListNetworksRequest& req, api::ListNetworksResponse* resp);
  grpc::Status GetNetwork(const api::NetworkRef& req, api::Network* resp);
  grpc::Status RemoveNetwork(const api::NetworkRef& req, api::Empty* resp);
  grpc::Status PruneNetworks(const api::Empty& req, api::PruneNetworksResponse* resp);
  // Logs (logs_api.cc): streams the logs of a service's tasks, or of one task, into `feed`,
  // through the leader. Returns what stops the stream early (the client went away).
  std::function<void()> ServiceLogs(const api::ServiceLogsRequest& req,
                                    std::shared_ptr<LogFeed> feed);

 private:
  template <class Req, class Resp>
  grpc::Status Forward(grpc::Status (api::Control::Stub::*method)(grpc::ClientContext*, const Req&,
                                                                  Resp*),
                       const Req& req, Resp* resp);
  // Runs `local` on the leader: here, once this manager serves as the leader, or else by
  // forwarding the request to it.
  template <class Req, class Resp>
  grpc::Status OnLeader(grpc::Status (api::Control::Stub::*method)(grpc::ClientContext*, const Req&,
                                                                   Resp*),
                        const Req& req, Resp* resp, const std::function<grpc::Status()>& local);
  // The leader's part of the swarm and node calls.
  grpc::Status UpdateSwarmHere(const api::UpdateSwarmRequest& req);
  grpc::Status JoinToken(const api::JoinTokenRequest& req, api::JoinTokenResponse* resp);
  grpc::Status ListNodesHere(const api::ListNodesRequest& req, api::ListNodesResponse* resp);
  grpc::Status UpdateNodeHere(const api::UpdateNodeRequest& req, api::NodeView* resp);
  grpc::Status RemoveNodeHere(const api::RemoveNodeRequest& req);
  std::string SelfRef(const std::string& ref) const;
  grpc::Status Resolve(const std::string& ref, api::Node* out) const;
  grpc::Status ResolveService(const std::string& ref, api::Service* out) const;
  grpc::Status ResolveNetwork(const std::string& ref, api::Network* out) const;
  // Resolves a service's --network names to IDs, and refuses what cannot be attached.
  grpc::Status AttachNetworks(api::ServiceSpec* spec) const;
  api::ServiceView ViewOf(const api::Service& s) const;
  api::NodeView View(const api::Node& n) const;

  Manager* m_;
};

// Where a control call is served: the API of the manager it is for, kept alive during the call.
struct ControlTarget {
  ControlApi* api = nullptr;
  std::shared_ptr<void> keep_alive;
};
// Finds it for a call, or says why there is none.
using ControlResolver =
    std::function<grpc::Status(const grpc::ServerContextBase& context, ControlTarget* target)>;

// The control API over gRPC: on 2377 for the other managers (PeerResolver), and on skepd's
// control socket for the CLI (the node's own manager, see daemon/node/node.cc).
class ControlService final
    : public api::Control::WithCallbackMethod_ServiceLogs<api::Control::Service> {
 public:
  explicit ControlService(ControlResolver resolve) : resolve_(std::move(resolve)) {}

  grpc::Status InspectSwarm(grpc::ServerContext* c, const api::Empty* req,
                            api::ClusterView* resp) override;
  grpc::Status UpdateSwarm(grpc::ServerContext* c, const api::UpdateSwarmRequest* req,
                           api::Empty* resp) override;
  grpc::Status GetJoinToken(grpc::ServerContext* c, const api::JoinTokenRequest* req,
                            api::JoinTokenResponse* resp) override;
  grpc::Status ListNodes(grpc::ServerContext* c, const api::ListNodesRequest* req,
                         api::ListNodesResponse* resp) override;
  grpc::Status GetNode(grpc::ServerContext* c, const api::NodeRef* req,
                       api::NodeView* resp) override;
  grpc::Status UpdateNode(grpc::ServerContext* c, const api::UpdateNodeRequest* req,
                          api::NodeView* resp) override;
  grpc::Status RemoveNode(grpc::ServerContext* c, const api::RemoveNodeRequest* req,
                          api::Empty* resp) override;
  grpc::Status CreateService(grpc::ServerContext* c, const api::CreateServiceRequest* req,
                             api::CreateServiceResponse* resp) override;
  grpc::Status ListServices(grpc::ServerContext* c, const api::ListServicesRequest* req,
                            api::ListServicesResponse* resp) override;
  grpc::Status GetService(grpc::ServerContext* c, const api::ServiceRef* req,
                          api::ServiceView* resp) override;
  grpc::Status UpdateService(grpc::ServerContext* c, const api::UpdateServiceRequest* req,
                             api::ServiceView* resp) override;
  grpc::Status RemoveService(grpc::ServerContext* c, const api::ServiceRef* req,
                             api::Empty* resp) override;
  grpc::Status ListTasks(grpc::ServerContext* c, const api::ListTasksRequest* req,
                         api::ListTasksResponse* resp) override;
  grpc::Status ExplainService(grpc::ServerContext* c, const api::ServiceRef* req,
                              api::ExplainServiceResponse* resp) override;
  grpc::Status CreateNetwork(grpc::ServerContext* c, const api::CreateNetworkRequest* req,
                             api::CreateNetworkResponse* resp) override;
  grpc::Status ListNetworks(grpc::ServerContext* c, const api::ListNetworksRequest* req,
                            api::ListNetworksResponse* resp) override;
  grpc::Status GetNetwork(grpc::ServerContext* c, const api::NetworkRef* req,
                          api::Network* resp) override;
  grpc::Status RemoveNetwork(grpc::ServerContext* c, const api::NetworkRef* req,
                             api::Empty* resp) override;
  grpc::Status PruneNetworks(grpc::ServerContext* c, const api::Empty* req,
                             api::PruneNetworksResponse* resp) override;
  grpc::ServerWriteReactor<api::ServiceLogsMessage>* ServiceLogs(
      grpc::CallbackServerContext* c, const api::ServiceLogsRequest* req) override;

 private:
  ControlResolver resolve_;
};

// Calls on 2377 come from other managers: the certificate must be a manager's, and the store
// must agree that its node is still a manager (a demoted manager's certificate stays valid until
// it expires). A request a follower forwarded is not forwarded again.
ControlResolver PeerResolver(Manager* manager);

// A ServiceLogs stream to a client, fed by ControlApi::ServiceLogs (logs_api.cc); it holds
// `keep_alive` (the manager) until it is done.
grpc::ServerWriteReactor<api::ServiceLogsMessage>* ServeLogs(ControlApi* api,
                                                             const api::ServiceLogsRequest& req,
                                                             std::shared_ptr<void> keep_alive = {});
// A stream that only says no.
grpc::ServerWriteReactor<api::ServiceLogsMessage>* RefuseLogs(grpc::Status status);

// Marks a request one manager forwards to another.
inline constexpr char kForwardedHeader[] = "skep-forwarded";

}  // namespace skep::manager
