// The certificate authority on 2377: hands out the root CA, admits joining nodes that present a
// valid join token (signing their first certificate and recording them in the store), and
// renews certificates, with the role the store says the node should have. On gRPC's callback
// API: a join that reaches a follower goes to the leader, and waits for one while there is
// none, without holding a thread.
#pragma once

#include "ca.grpc.pb.h"
#include "daemon/manager/context.h"

namespace skep::manager {

// The leader's part of a renewal: signs `csr_pem` for node `node_id` with the role the swarm
// wants for it (a demoted manager stays a manager until it has left the raft group) and records
// that role in the node's object. `done` gets the outcome; `resp` is filled in on success.
void Renew(ServiceContext& ctx, std::string node_id, std::string csr_pem,
           api::RenewCertificateResponse* resp, Done done);

class CAService final : public api::CA::CallbackService {
 public:
  explicit CAService(ServiceContext& ctx) : ctx_(ctx) {}

  grpc::ServerUnaryReactor* GetRootCACertificate(grpc::CallbackServerContext* c,
                                                 const api::GetRootCARequest* req,
                                                 api::GetRootCAResponse* resp) override;
  grpc::ServerUnaryReactor* JoinNode(grpc::CallbackServerContext* c,
                                     const api::JoinNodeRequest* req,
                                     api::JoinNodeResponse* resp) override;
  grpc::ServerUnaryReactor* RenewCertificate(grpc::CallbackServerContext* c,
                                             const api::RenewCertificateRequest* req,
                                             api::RenewCertificateResponse* resp) override;

 private:
  ServiceContext& ctx_;
};

}  // namespace skep::manager
