#include "daemon/common/tls.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <fstream>
#include <sstream>

#include "daemon/common/pki.h"

namespace skep::tls {

namespace gx = grpc::experimental;

namespace {

// Accepts a server only if its certificate (already verified against the root CA by the
// handshake) belongs to a manager, and to this node's cluster when that is known: a worker's
// certificate is signed by the same CA and must not pass for a manager's.
class ManagerVerifier final : public gx::ExternalCertificateVerifier {
 public:
  explicit ManagerVerifier(std::string cluster_id) : cluster_id_(std::move(cluster_id)) {}
  bool Verify(gx::TlsCustomVerificationCheckRequest* request, std::function<void(grpc::Status)>,
              grpc::Status* sync_status) override {
    const std::string pem(request->peer_cert().data(), request->peer_cert().size());
    try {
      const pki::CertInfo info = pki::ParseCertificate(pem);
      if (info.role != pki::kManagerRole) {
        *sync_status = {grpc::StatusCode::UNAUTHENTICATED,
                        "the server's certificate is not a manager's (" + info.role + ")"};
      } else if (!cluster_id_.empty() && info.cluster_id != cluster_id_) {
        *sync_status = {grpc::StatusCode::UNAUTHENTICATED,
                        "the server belongs to another swarm (" + info.cluster_id + ")"};
      } else {
        *sync_status = grpc::Status::OK;
      }
    } catch (const pki::PkiError& e) {
      *sync_status = {grpc::StatusCode::UNAUTHENTICATED,
                      std::string("the server's certificate does not parse: ") + e.what()};
    }
    return true;  // decided synchronously
  }
  void Cancel(gx::TlsCustomVerificationCheckRequest*) override {}

 private:
  std::string cluster_id_;
};

std::string ClusterOf(const std::string& cert_pem) {
  try {
    return pki::ParseCertificate(cert_pem).cluster_id;
  } catch (const pki::PkiError&) {
    return "";  // the handshake fails on it anyway
  }
}

std::string ClusterOf(const Files& files) {
  std::ifstream in(files.cert);
  std::stringstream pem;
  pem << in.rdbuf();
  return ClusterOf(pem.str());
}

std::shared_ptr<grpc::ChannelCredentials> NodeCredentialsWith(
    std::shared_ptr<gx::CertificateProviderInterface> provider, const std::string& cluster_id) {
  gx::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(std::move(provider));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  options.set_certificate_verifier(
      gx::ExternalCertificateVerifier::Create<ManagerVerifier>(cluster_id));
  options.set_check_call_host(false);
  return grpc::experimental::TlsCredentials(options);
}

}  // namespace

Files Files::In(const std::string& dir) {
  return {dir + "/node.key", dir + "/node.crt", dir + "/ca.crt"};
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const Files& files) {
  auto provider =
      std::make_shared<gx::FileWatcherCertificateProvider>(files.key, files.cert, files.ca, 1);
  gx::TlsServerCredentialsOptions options(provider);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  // A certificate is verified when presented; calls that need one check for it (PeerOf).
  options.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> NodeCredentials(const Files& files) {
  return NodeCredentialsWith(
      std::make_shared<gx::FileWatcherCertificateProvider>(files.key, files.cert, files.ca, 1),
      ClusterOf(files));
}

std::shared_ptr<grpc::ChannelCredentials> NodeCredentialsFromPem(const std::string& key_pem,
                                                                 const std::string& cert_pem,
                                                                 const std::string& ca_pem) {
  return NodeCredentialsWith(std::make_shared<gx::StaticDataCertificateProvider>(
                                 ca_pem, std::vector<gx::IdentityKeyCertPair>{{key_pem, cert_pem}}),
                             ClusterOf(cert_pem));
}

std::shared_ptr<grpc::ChannelCredentials> JoinCredentials(const std::string& ca_pem) {
  auto provider = std::make_shared<gx::StaticDataCertificateProvider>(ca_pem);
  gx::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider);
  options.watch_root_certs();
  options.set_verify_server_certs(true);
  // A join token is only ever shown to a manager of the swarm the token's CA digest names.
  options.set_certificate_verifier(gx::ExternalCertificateVerifier::Create<ManagerVerifier>(""));
  options.set_check_call_host(false);
  return grpc::experimental::TlsCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> UnverifiedCredentials() {
  gx::TlsChannelCredentialsOptions options;
  options.set_verify_server_certs(false);
  options.set_certificate_verifier(std::make_shared<gx::NoOpCertificateVerifier>());
  options.set_check_call_host(false);
  return grpc::experimental::TlsCredentials(options);
}

grpc::ChannelArguments ChannelArgs() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  return args;
}

void ConfigureServer(grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 500);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
}

Peer PeerOf(const grpc::ServerContextBase& context) {
  Peer peer;
  const std::string uri = context.peer();  // ipv4:10.0.0.1:1234
  if (uri.rfind("ipv4:", 0) == 0) {
    const std::string hostport = uri.substr(5);
    peer.address = hostport.substr(0, hostport.rfind(':'));
  } else if (uri.rfind("ipv6:", 0) == 0) {
    const std::string hostport = uri.substr(5);
    peer.address = hostport.substr(0, hostport.rfind(':'));
  }
  auto auth = context.auth_context();
  if (!auth) return peer;
  auto pems = auth->FindPropertyValues("x509_pem_cert");
  if (pems.empty()) return peer;
  try {
    const pki::CertInfo info =
        pki::ParseCertificate(std::string(pems.front().data(), pems.front().size()));
    peer.has_certificate = true;
    peer.node_id = info.node_id;
    peer.role = info.role;
    peer.cluster_id = info.cluster_id;
  } catch (const pki::PkiError&) {
  }
  return peer;
}

}  // namespace skep::tls
