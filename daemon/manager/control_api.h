// The cluster control API: validation, then one raft write per change. Any manager accepts a
// request: the leader serves it, a follower forwards it to the leader over 2377. ControlService
// serves it on gRPC's callback API, on 2377 to the other managers (worker certificates are
// refused) and on skepd's control socket to the CLI; a later entry point (the Docker Engine
// API) calls the same asynchronous operations.
//
// Every operation is asynchronous: `done` gets its outcome once the response is filled in, and
// no thread waits meanwhile (each is a coroutine on a strand of its own, suspended while raft,
// the leader or a registry answers). A request that arrives while there is no leader, or
// before this leader serves, waits for one (a few election timeouts at most) and then goes to
// it; a request whose leader was lost goes to the next one. Writes carry the request's ID, set
// by the manager that first received it: the store applies a request once, so a create that
// succeeded before its leader died is answered as a success, not "already exists", when it
// reaches the next leader.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "control.grpc.pb.h"
#include "daemon/manager/context.h"

namespace skep::manager {

class Dispatcher;
class LogFeed;

class ControlApi {
 public:
  ControlApi(ServiceContext& ctx, std::shared_ptr<Dispatcher> dispatcher);

  using Call = CallInfo;

  void InspectSwarm(const api::Empty& req, api::ClusterView* resp, Call call, Done done);
  void UpdateSwarm(const api::UpdateSwarmRequest& req, api::Empty* resp, Call call, Done done);
  void GetJoinToken(const api::JoinTokenRequest& req, api::JoinTokenResponse* resp, Call call,
                    Done done);
  void ListNodes(const api::ListNodesRequest& req, api::ListNodesResponse* resp, Call call,
                 Done done);
  void GetNode(const api::NodeRef& req, api::NodeView* resp, Call call, Done done);
  void UpdateNode(const api::UpdateNodeRequest& req, api::NodeView* resp, Call call, Done done);
  void RemoveNode(const api::RemoveNodeRequest& req, api::Empty* resp, Call call, Done done);
  // Services and tasks (service_api.cc).
  void CreateService(const api::CreateServiceRequest& req, api::CreateServiceResponse* resp,
                     Call call, Done done);
  void ListServices(const api::ListServicesRequest& req, api::ListServicesResponse* resp,
                    Call call, Done done);
  void GetService(const api::ServiceRef& req, api::ServiceView* resp, Call call, Done done);
  void UpdateService(const api::UpdateServiceRequest& req, api::ServiceView* resp, Call call,
                     Done done);
  void RemoveService(const api::ServiceRef& req, api::Empty* resp, Call call, Done done);
  void ListTasks(const api::ListTasksRequest& req, api::ListTasksResponse* resp, Call call,
                 Done done);
  void ExplainService(const api::ServiceRef& req, api::ExplainServiceResponse* resp, Call call,
                      Done done);
  // Networks (network_api.cc).
  void CreateNetwork(const api::CreateNetworkRequest& req, api::CreateNetworkResponse* resp,
                     Call call, Done done);
  void ListNetworks(const api::ListNetworksRequest& req, api::ListNetworksResponse* resp,
                    Call call, Done done);
  void GetNetwork(const api::NetworkRef& req, api::Network* resp, Call call, Done done);
  void RemoveNetwork(const api::NetworkRef& req, api::Empty* resp, Call call, Done done);
  void PruneNetworks(const api::Empty& req, api::PruneNetworksResponse* resp, Call call,
                     Done done);
  // Logs (logs_api.cc): streams the logs of a service's tasks, or of one task, into `feed`,
  // through the leader. Returns what stops the stream early (the client went away).
  std::function<void()> ServiceLogs(const api::ServiceLogsRequest& req,
                                    std::shared_ptr<LogFeed> feed, const Call& call);


 private:
  using Task = boost::asio::awaitable<Status>;
  template <class Req, class Resp, class Remote, class Local>
  void Run(Remote remote, const Req& req, Resp* resp, Call call, Done done, Local local);
  // Proposes a write of this request, given up as kOutcomeUnknown when leadership is lost or
  // the deadline passes first.
  Task Write(api::StoreBatch batch, const Call& call);
  // The ID of what a create applied with the request's ID made: `proposed`, unless another
  // run of the same request made it first.
  std::string CreatedId(const Call& call, const std::string& proposed) const;

  // The leader's part of each call.
  Task InspectSwarmHere(api::ClusterView* resp);
  Task UpdateSwarmHere(const api::UpdateSwarmRequest& req, const Call& call);
  Task JoinTokenHere(const api::JoinTokenRequest& req, api::JoinTokenResponse* resp,
                     const Call& call);
  Task ListNodesHere(const api::ListNodesRequest& req, api::ListNodesResponse* resp);
  Task GetNodeHere(const api::NodeRef& req, api::NodeView* resp);
  Task UpdateNodeHere(const api::UpdateNodeRequest& req, api::NodeView* resp, const Call& call);
  Task RemoveNodeHere(const api::RemoveNodeRequest& req, const Call& call);
  Task CreateServiceHere(const api::CreateServiceRequest& req, api::CreateServiceResponse* resp,
                         const Call& call);
  Task ListServicesHere(const api::ListServicesRequest& req, api::ListServicesResponse* resp);
  Task GetServiceHere(const api::ServiceRef& req, api::ServiceView* resp);
  Task UpdateServiceHere(const api::UpdateServiceRequest& req, api::ServiceView* resp,
                         const Call& call);
  Task RemoveServiceHere(const api::ServiceRef& req, const Call& call);
  Task ListTasksHere(const api::ListTasksRequest& req, api::ListTasksResponse* resp);
  Task ExplainServiceHere(const api::ServiceRef& req, api::ExplainServiceResponse* resp);
  Task CreateNetworkHere(const api::CreateNetworkRequest& req, api::CreateNetworkResponse* resp,
                         const Call& call);
  Task ListNetworksHere(const api::ListNetworksRequest& req, api::ListNetworksResponse* resp);
  Task GetNetworkHere(const api::NetworkRef& req, api::Network* resp);
  Task RemoveNetworkHere(const api::NetworkRef& req, const Call& call);
  Task PruneNetworksHere(api::PruneNetworksResponse* resp, const Call& call);
  // Read-modify-write of the node or the cluster, as one write of this request.
  Task UpdateNodeObject(const std::string& id, std::function<Status(api::Node&)> modify,
                        api::Node* updated, const Call& call);
  Task UpdateClusterObject(std::function<Status(api::Cluster&)> modify, const Call& call);
  // The task's image pinned to the digest its tag names now, and its placement's platforms
  // read from the image; on the registry pool.
  Task PinImage(api::TaskSpec* task, const api::RegistryAuth* auth);
  // The cluster's registry auth key, made and written the first time a service needs one.
  Task RegistryAuthKey(std::string* key, const Call& call);
  Task SealInto(const api::RegistryAuth& auth, api::Service* s, const Call& call);

  std::string SelfRef(const std::string& ref) const;
  Status Resolve(const std::string& ref, api::Node* out) const;
  Status ResolveService(const std::string& ref, api::Service* out) const;
  Status ResolveNetwork(const std::string& ref, api::Network* out) const;
  // Resolves a service's --network names to IDs, and refuses what cannot be attached.
  Status AttachNetworks(api::ServiceSpec* spec) const;
  api::ServiceView ViewOf(const api::Service& s) const;
  api::NodeView View(const api::Node& n) const;

  ServiceContext& ctx_;
  std::shared_ptr<Dispatcher> dispatcher_;
};

// Where a control call is served: the API of the manager it is for, kept alive during the call.
struct ControlTarget {
  ControlApi* api = nullptr;
  std::shared_ptr<void> keep_alive;
};
// Finds it for a call, or says why there is none.
using ControlResolver =
    std::function<Status(const grpc::ServerContextBase& context, ControlTarget* target)>;

// The control API over gRPC's callback API: on 2377 for the other managers (PeerResolver), and
// on skepd's control socket for the CLI (the node's own manager).
class ControlService final : public api::Control::CallbackService {
 public:
  explicit ControlService(ControlResolver resolve) : resolve_(std::move(resolve)) {}

#define SKEP_CONTROL_METHOD(Method, Req, Resp)                                       \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* c, const Req* req, \
                                   Resp* resp) override;
  SKEP_CONTROL_METHOD(InspectSwarm, api::Empty, api::ClusterView)
  SKEP_CONTROL_METHOD(UpdateSwarm, api::UpdateSwarmRequest, api::Empty)
  SKEP_CONTROL_METHOD(GetJoinToken, api::JoinTokenRequest, api::JoinTokenResponse)
  SKEP_CONTROL_METHOD(ListNodes, api::ListNodesRequest, api::ListNodesResponse)
  SKEP_CONTROL_METHOD(GetNode, api::NodeRef, api::NodeView)
  SKEP_CONTROL_METHOD(UpdateNode, api::UpdateNodeRequest, api::NodeView)
  SKEP_CONTROL_METHOD(RemoveNode, api::RemoveNodeRequest, api::Empty)
  SKEP_CONTROL_METHOD(CreateService, api::CreateServiceRequest, api::CreateServiceResponse)
  SKEP_CONTROL_METHOD(ListServices, api::ListServicesRequest, api::ListServicesResponse)
  SKEP_CONTROL_METHOD(GetService, api::ServiceRef, api::ServiceView)
  SKEP_CONTROL_METHOD(UpdateService, api::UpdateServiceRequest, api::ServiceView)
  SKEP_CONTROL_METHOD(RemoveService, api::ServiceRef, api::Empty)
  SKEP_CONTROL_METHOD(ListTasks, api::ListTasksRequest, api::ListTasksResponse)
  SKEP_CONTROL_METHOD(ExplainService, api::ServiceRef, api::ExplainServiceResponse)
  SKEP_CONTROL_METHOD(CreateNetwork, api::CreateNetworkRequest, api::CreateNetworkResponse)
  SKEP_CONTROL_METHOD(ListNetworks, api::ListNetworksRequest, api::ListNetworksResponse)
  SKEP_CONTROL_METHOD(GetNetwork, api::NetworkRef, api::Network)
  SKEP_CONTROL_METHOD(RemoveNetwork, api::NetworkRef, api::Empty)
  SKEP_CONTROL_METHOD(PruneNetworks, api::Empty, api::PruneNetworksResponse)
#undef SKEP_CONTROL_METHOD
  grpc::ServerWriteReactor<api::ServiceLogsMessage>* ServiceLogs(
      grpc::CallbackServerContext* c, const api::ServiceLogsRequest* req) override;

 private:
  ControlResolver resolve_;
};

// Calls on 2377 come from other managers: the certificate must be a manager's, and the store
// must agree that its node is still a manager (a demoted manager's certificate stays valid until
// it expires).
ControlResolver PeerResolver(ServiceContext& ctx, ControlApi& api);

// A ServiceLogs stream to a client, fed by ControlApi::ServiceLogs (logs_api.cc); it holds
// `keep_alive` (the manager) until it is done.
grpc::ServerWriteReactor<api::ServiceLogsMessage>* ServeLogs(ControlApi* api,
                                                             const api::ServiceLogsRequest& req,
                                                             const ControlApi::Call& call,
                                                             std::shared_ptr<void> keep_alive = {});
// A stream that only says no.
grpc::ServerWriteReactor<api::ServiceLogsMessage>* RefuseLogs(const Status& status);

// The request as the entry point knows it: the ID a forwarding manager gave it, or a new one,
// and the client's deadline.
CallInfo CallOf(const grpc::CallbackServerContext& c);

}  // namespace skep::manager
