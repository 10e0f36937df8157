// The cluster's public key infrastructure, on OpenSSL 3: the root CA (ECDSA P-256), node keys,
// certificate requests and node certificates, and the join tokens that carry the CA's digest.
//
// A node certificate names the node in its common name, its role in the organizational unit
// ("swarm-manager" or "swarm-worker") and the cluster in the organization, as Docker's do.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

namespace skep::pki {

// Every failure of this module: bad PEM, a signature that does not verify, a malformed token.
class PkiError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// 25 lowercase base-36 characters from 128 random bits, like Docker's object IDs.
std::string RandomId();
// `n` bytes from OpenSSL's generator (keys).
std::string RandomBytes(size_t n);

struct KeyPair {
  std::string key_pem;   // PKCS#8 private key
  std::string cert_pem;  // certificate
};

// A self-signed root CA, valid for `validity`.
KeyPair CreateRootCA(std::chrono::seconds validity = std::chrono::hours(24 * 365 * 20));

// A new ECDSA P-256 private key and a certificate request for it.
struct KeyAndRequest {
  std::string key_pem;
  std::string csr_pem;
};
KeyAndRequest CreateKeyAndRequest();
// A certificate request for an existing key (certificate renewals keep the node's key).
std::string CreateRequest(const std::string& key_pem);

struct CertInfo {
  std::string node_id;     // CN
  std::string role;        // OU
  std::string cluster_id;  // O
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
};

// Signs a node certificate for the key in `csr_pem`. Throws PkiError if the request's
// signature does not verify.
std::string SignNodeCertificate(const KeyPair& ca, const std::string& csr_pem,
                                const std::string& node_id, const std::string& role,
                                const std::string& cluster_id, std::chrono::seconds validity);

CertInfo ParseCertificate(const std::string& cert_pem);
// Whether `cert_pem` was signed by `ca_cert_pem` and is within its validity period.
bool VerifyCertificate(const std::string& cert_pem, const std::string& ca_cert_pem);
// Whether the private key belongs to the certificate.
bool KeyMatchesCertificate(const std::string& key_pem, const std::string& cert_pem);

// The sha256 of the certificate's DER, in base 36, padded to 50 characters.
std::string CertificateDigest(const std::string& cert_pem);

// SWMTKN-1-<digest of the root CA>-<25-character secret>
std::string NewJoinToken(const std::string& ca_digest);
struct ParsedToken {
  std::string ca_digest;
  std::string secret;
};
// Throws PkiError with a message that says what is wrong with the token.
ParsedToken ParseJoinToken(const std::string& token);

inline constexpr char kManagerRole[] = "swarm-manager";
inline constexpr char kWorkerRole[] = "swarm-worker";

}  // namespace skep::pki
