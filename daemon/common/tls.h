// Transport security on 2377: every node presents its certificate (mutual TLS) and is checked
// against the cluster's root CA. The only calls made without a node certificate are those of a
// node that is joining: fetching the root CA (checked against the token's digest, since it
// cannot be verified yet) and asking for a certificate with its join token.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace skep::tls {

// Where a node keeps its key, its certificate and the root CA.
struct Files {
  std::string key;
  std::string cert;
  std::string ca;
  static Files In(const std::string& dir);  // dir/node.key, dir/node.crt, dir/ca.crt
};

// Reloads the files when they change (a renewed certificate) without a restart.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const Files& files);
// Presents the node's certificate; trusts servers whose certificate the root CA signed for a
// manager of this node's cluster. Names are not checked: managers are reached by IP address
// and identified by their certificates.
std::shared_ptr<grpc::ChannelCredentials> NodeCredentials(const Files& files);
// The same from PEM held in memory, fixed for the credentials' lifetime (no file watcher, which
// is a thread per provider): for a process that holds the identities of many nodes.
std::shared_ptr<grpc::ChannelCredentials> NodeCredentialsFromPem(const std::string& key_pem,
                                                                 const std::string& cert_pem,
                                                                 const std::string& ca_pem);
// Trusts managers whose certificate `ca_pem` signed, presents none (a joining node).
std::shared_ptr<grpc::ChannelCredentials> JoinCredentials(const std::string& ca_pem);
// Trusts any server: only to fetch the root CA, which the caller checks against its token.
std::shared_ptr<grpc::ChannelCredentials> UnverifiedCredentials();

// Keepalives that notice a dead peer within seconds, quick reconnects, large messages.
grpc::ChannelArguments ChannelArgs();
void ConfigureServer(grpc::ServerBuilder& builder);

// Who is calling, from the certificate the client presented (verified by the handshake).
struct Peer {
  bool has_certificate = false;
  std::string node_id;
  std::string role;  // pki::kManagerRole or pki::kWorkerRole
  std::string cluster_id;
  std::string address;  // the peer's IP
};
Peer PeerOf(const grpc::ServerContextBase& context);

}  // namespace skep::tls
