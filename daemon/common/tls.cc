#include "daemon/common/tls.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <fstream>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "daemon/common/mutex.h"
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

// What a client certificate says, by its PEM text: a node presents the same certificate on every
// call of a connection (heartbeats, status reports), and decoding it is most of what such a
// call costs the leader. Bounded: forgotten wholesale when full, which only costs re-parsing.
class PeerCache {
 public:
  struct Identity {
    bool ok = false;
    std::string node_id, role, cluster_id;
  };
  Identity Get(const std::string& pem) {
    {
      MutexLock lock(mu_);
      if (auto it = known_.find(pem); it != known_.end()) return it->second;
    }
    Identity id;
    try {
      const pki::CertInfo info = pki::ParseCertificate(pem);
      id = {true, info.node_id, info.role, info.cluster_id};
    } catch (const pki::PkiError&) {
    }
    MutexLock lock(mu_);
    if (known_.size() >= kMax) known_.clear();
    known_.emplace(pem, id);
    return id;
  }

 private:
  static constexpr size_t kMax = 16384;
  Mutex mu_;
  std::unordered_map<std::string, Identity> known_ SKEP_GUARDED_BY(mu_);
};

PeerCache& Peers() {
  static PeerCache* cache = new PeerCache;  // never destroyed: calls may come during exit
  return *cache;
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

// A ping a second on every connection a node opens finds a dead peer quickly; the answer may
// take a few seconds before the connection counts as dead, because a manager busy with a
// thousand nodes' handshakes and heartbeats answers late, and dropping its connections for
// that only brings more handshakes (at 1 s, the keepalive watchdog took a 1,000-node swarm's
// managers down).
constexpr int kKeepaliveTimeoutMs = 5000;

grpc::ChannelArguments ChannelArgs() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Attempts start 100 ms apart at first, 1 s at most (gRPC adds 20% jitter). gRPC also reads
  // the minimum backoff as the least time an attempt may take (TCP connect and TLS handshake):
  // it must be long enough for a manager busy with many nodes' handshakes, or no attempt ever
  // finishes while they all retry (a SYN lost to a full accept queue is resent after 1 s).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  return args;
}

void ConfigureServer(grpc::ServerBuilder& builder) {
  // The clients ping (above) and nodes heartbeat: the server's own pings only need to find
  // clients that vanished, and need not double the pings of every connection.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
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
  PeerCache::Identity id = Peers().Get(std::string(pems.front().data(), pems.front().size()));
  if (!id.ok) return peer;
  peer.has_certificate = true;
  peer.node_id = std::move(id.node_id);
  peer.role = std::move(id.role);
  peer.cluster_id = std::move(id.cluster_id);
  return peer;
}

}  // namespace skep::tls
