#include <catch2/catch.hpp>

#include "daemon/common/pki.h"

using namespace skep::pki;

TEST_CASE("node certificates carry the node, its role and the cluster", "[pki]") {
  const KeyPair ca = CreateRootCA();
  const KeyAndRequest kr = CreateKeyAndRequest();
  const std::string cert =
      SignNodeCertificate(ca, kr.csr_pem, "node1", kManagerRole, "cluster1", std::chrono::hours(1));
  const CertInfo info = ParseCertificate(cert);
  CHECK(info.node_id == "node1");
  CHECK(info.role == "swarm-manager");
  CHECK(info.cluster_id == "cluster1");
  CHECK(info.not_after - info.not_before > std::chrono::minutes(59));
  CHECK(VerifyCertificate(cert, ca.cert_pem));
  CHECK(KeyMatchesCertificate(kr.key_pem, cert));
  // Another CA's certificate does not verify; another key does not match.
  CHECK_FALSE(VerifyCertificate(cert, CreateRootCA().cert_pem));
  CHECK_FALSE(KeyMatchesCertificate(CreateKeyAndRequest().key_pem, cert));
  // A renewal keeps the key.
  const std::string renewed = SignNodeCertificate(ca, CreateRequest(kr.key_pem), "node1",
                                                  kWorkerRole, "cluster1", std::chrono::hours(1));
  CHECK(ParseCertificate(renewed).role == "swarm-worker");
  CHECK(KeyMatchesCertificate(kr.key_pem, renewed));
}

TEST_CASE("garbage is refused with a PkiError", "[pki]") {
  const KeyPair ca = CreateRootCA();
  CHECK_THROWS_AS(ParseCertificate("not a certificate"), PkiError);
  CHECK_THROWS_AS(SignNodeCertificate(ca, "junk", "n", kWorkerRole, "c", std::chrono::hours(1)),
                  PkiError);
  std::string csr = CreateKeyAndRequest().csr_pem;
  csr[csr.size() / 2] = csr[csr.size() / 2] == 'A' ? 'B' : 'A';  // tampered
  CHECK_THROWS_AS(SignNodeCertificate(ca, csr, "n", kWorkerRole, "c", std::chrono::hours(1)),
                  PkiError);
}

TEST_CASE("join tokens carry the CA digest and a secret", "[pki]") {
  const KeyPair ca = CreateRootCA();
  const std::string digest = CertificateDigest(ca.cert_pem);
  CHECK(digest.size() == 50);
  CHECK(CertificateDigest(ca.cert_pem) == digest);
  const std::string token = NewJoinToken(digest);
  CHECK(token.rfind("SWMTKN-1-" + digest + "-", 0) == 0);
  const ParsedToken t = ParseJoinToken(token);
  CHECK(t.ca_digest == digest);
  CHECK(t.secret.size() == 25);
  CHECK(NewJoinToken(digest) != token);
  CHECK(RandomId().size() == 25);

  auto message = [](const std::string& tok) {
    try {
      ParseJoinToken(tok);
    } catch (const PkiError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(message("hello") == "invalid join token: it should look like SWMTKN-1-<digest>-<secret>");
  CHECK(message("SWMTKN-2-" + digest + "-" + t.secret) == "invalid join token: unknown version 2");
  CHECK(message("SWMTKN-1-abc-" + t.secret) == "invalid join token: the CA digest is malformed");
  CHECK(message("SWMTKN-1-" + digest + "-SECRET") == "invalid join token: the secret is malformed");
}
