// The certificate authority on 2377: hands out the root CA, admits joining nodes that present a
// valid join token (signing their first certificate and recording them in the store), and
// renews certificates, with the role the store says the node should have.
#pragma once

#include "ca.grpc.pb.h"

namespace skep::manager {

class Manager;

class CAService final : public api::CA::Service {
 public:
  explicit CAService(Manager* manager) : m_(manager) {}

  grpc::Status GetRootCACertificate(grpc::ServerContext* c, const api::GetRootCARequest* req,
                                    api::GetRootCAResponse* resp) override;
  grpc::Status JoinNode(grpc::ServerContext* c, const api::JoinNodeRequest* req,
                        api::JoinNodeResponse* resp) override;
  grpc::Status RenewCertificate(grpc::ServerContext* c, const api::RenewCertificateRequest* req,
                                api::RenewCertificateResponse* resp) override;

 private:
  Manager* m_;
};

}  // namespace skep::manager
