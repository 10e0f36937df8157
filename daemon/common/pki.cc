#include "daemon/common/pki.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <vector>

namespace skep::pki {
namespace {

template <auto Fn>
struct Deleter {
  template <class T>
  void operator()(T* p) const {
    Fn(p);
  }
};
using Bio = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509_free>>;
using Req = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using Big = std::unique_ptr<BIGNUM, Deleter<BN_free>>;

[[noreturn]] void Fail(const std::string& what) {
  std::string detail;
  if (unsigned long e = ERR_get_error(); e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    detail = std::string(": ") + buf;
  }
  ERR_clear_error();
  throw PkiError(what + detail);
}

Bio MemBio(const std::string& s) {
  Bio b(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
  if (!b) Fail("out of memory");
  return b;
}

std::string BioString(BIO* b) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<size_t>(n));
}

Key NewKey() {
  Key k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!k) Fail("cannot generate an ECDSA P-256 key");
  return k;
}

std::string KeyPem(EVP_PKEY* k) {
  Bio b(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr)) {
    Fail("cannot encode a private key");
  }
  return BioString(b.get());
}

Key ReadKey(const std::string& pem) {
  Bio b = MemBio(pem);
  Key k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  if (!k) Fail("not a PEM private key");
  return k;
}

std::string CertPem(X509* c) {
  Bio b(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_X509(b.get(), c)) Fail("cannot encode a certificate");
  return BioString(b.get());
}

Cert ReadCert(const std::string& pem) {
  Bio b = MemBio(pem);
  Cert c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!c) Fail("not a PEM certificate");
  return c;
}

// Base 36 of a big-endian number, left-padded with zeros to `width`.
std::string Base36(const unsigned char* bytes, size_t n, size_t width) {
  Big bn(BN_bin2bn(bytes, static_cast<int>(n), nullptr));
  if (!bn) Fail("out of memory");
  std::string out;
  while (!BN_is_zero(bn.get())) {
    const BN_ULONG r = BN_div_word(bn.get(), 36);
    out.insert(out.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[r]);
  }
  if (out.size() < width) out.insert(out.begin(), width - out.size(), '0');
  return out;
}

std::string RandomBase36(size_t width) {
  unsigned char buf[16];
  if (RAND_bytes(buf, sizeof(buf)) != 1) Fail("no randomness");
  return Base36(buf, sizeof(buf), width);
}

void SetRandomSerial(X509* c) {
  unsigned char buf[16];
  if (RAND_bytes(buf, sizeof(buf)) != 1) Fail("no randomness");
  buf[0] &= 0x7f;  // positive
  Big bn(BN_bin2bn(buf, sizeof(buf), nullptr));
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(c))) Fail("cannot set a serial");
}

void AddName(X509_NAME* name, const char* field, const std::string& value) {
  if (value.empty()) return;
  if (!X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                  reinterpret_cast<const unsigned char*>(value.data()),
                                  static_cast<int>(value.size()), -1, 0)) {
    Fail(std::string("cannot set ") + field);
  }
}

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) Fail(std::string("cannot build extension ") + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

void SetValidity(X509* c, std::chrono::seconds validity) {
  // A minute of slack for clocks that disagree a little.
  if (!X509_gmtime_adj(X509_getm_notBefore(c), -60) ||
      !X509_gmtime_adj(X509_getm_notAfter(c), static_cast<long>(validity.count()))) {
    Fail("cannot set the validity period");
  }
}

std::string NameField(X509_NAME* name, int nid) {
  const int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0) return "";
  ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, s);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

std::chrono::system_clock::time_point ToTime(const ASN1_TIME* t) {
  struct tm tm {};
  if (!ASN1_TIME_to_tm(t, &tm)) Fail("bad certificate time");
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

bool IsBase36(const std::string& s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) return false;
  }
  return true;
}

}  // namespace

std::string RandomId() {
  return RandomBase36(25);
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw PkiError("no random bytes from OpenSSL");
  }
  return out;
}

KeyPair CreateRootCA(std::chrono::seconds validity) {
  Key key = NewKey();
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  SetRandomSerial(cert.get());
  SetValidity(cert.get(), validity);
  X509_NAME* name = X509_get_subject_name(cert.get());
  AddName(name, "CN", "swarm-ca");
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());
  AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  if (!X509_sign(cert.get(), key.get(), EVP_sha256())) Fail("cannot sign the root CA");
  return {KeyPem(key.get()), CertPem(cert.get())};
}

namespace {

std::string RequestFor(EVP_PKEY* key) {
  Req req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  AddName(X509_REQ_get_subject_name(req.get()), "CN", "pending");
  X509_REQ_set_pubkey(req.get(), key);
  if (!X509_REQ_sign(req.get(), key, EVP_sha256())) Fail("cannot sign the request");
  Bio b(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_X509_REQ(b.get(), req.get())) Fail("cannot encode the request");
  return BioString(b.get());
}

}  // namespace

KeyAndRequest CreateKeyAndRequest() {
  Key key = NewKey();
  return {KeyPem(key.get()), RequestFor(key.get())};
}

std::string CreateRequest(const std::string& key_pem) {
  Key key = ReadKey(key_pem);
  return RequestFor(key.get());
}

std::string SignNodeCertificate(const KeyPair& ca, const std::string& csr_pem,
                                const std::string& node_id, const std::string& role,
                                const std::string& cluster_id, std::chrono::seconds validity) {
  Bio rb = MemBio(csr_pem);
  Req req(PEM_read_bio_X509_REQ(rb.get(), nullptr, nullptr, nullptr));
  if (!req) Fail("the certificate request is not PEM");
  Key pub(X509_REQ_get_pubkey(req.get()));
  if (!pub || X509_REQ_verify(req.get(), pub.get()) != 1) {
    Fail("the certificate request's signature does not verify");
  }
  Cert ca_cert = ReadCert(ca.cert_pem);
  Key ca_key = ReadKey(ca.key_pem);
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  SetRandomSerial(cert.get());
  SetValidity(cert.get(), validity);
  X509_NAME* name = X509_get_subject_name(cert.get());
  AddName(name, "O", cluster_id);
  AddName(name, "OU", role);
  AddName(name, "CN", node_id);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
  X509_set_pubkey(cert.get(), pub.get());
  AddExtension(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  AddExtension(cert.get(), ca_cert.get(), NID_key_usage,
               "critical,digitalSignature,keyEncipherment");
  AddExtension(cert.get(), ca_cert.get(), NID_ext_key_usage, "serverAuth,clientAuth");
  AddExtension(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always");
  if (!X509_sign(cert.get(), ca_key.get(), EVP_sha256())) Fail("cannot sign the certificate");
  return CertPem(cert.get());
}

CertInfo ParseCertificate(const std::string& cert_pem) {
  Cert c = ReadCert(cert_pem);
  CertInfo info;
  X509_NAME* name = X509_get_subject_name(c.get());
  info.node_id = NameField(name, NID_commonName);
  info.role = NameField(name, NID_organizationalUnitName);
  info.cluster_id = NameField(name, NID_organizationName);
  info.not_before = ToTime(X509_get0_notBefore(c.get()));
  info.not_after = ToTime(X509_get0_notAfter(c.get()));
  return info;
}

bool VerifyCertificate(const std::string& cert_pem, const std::string& ca_cert_pem) {
  Cert c = ReadCert(cert_pem);
  Cert ca = ReadCert(ca_cert_pem);
  std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), ca.get());
  std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>> ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), c.get(), nullptr);
  const bool ok = X509_verify_cert(ctx.get()) == 1;
  ERR_clear_error();
  return ok;
}

bool KeyMatchesCertificate(const std::string& key_pem, const std::string& cert_pem) {
  Key k = ReadKey(key_pem);
  Cert c = ReadCert(cert_pem);
  const bool ok = X509_check_private_key(c.get(), k.get()) == 1;
  ERR_clear_error();
  return ok;
}

std::string CertificateDigest(const std::string& cert_pem) {
  Cert c = ReadCert(cert_pem);
  unsigned char* der = nullptr;
  const int n = i2d_X509(c.get(), &der);
  if (n <= 0) Fail("cannot encode a certificate");
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int hlen = 0;
  const bool ok = EVP_Digest(der, static_cast<size_t>(n), hash, &hlen, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  if (!ok) Fail("cannot hash a certificate");
  return Base36(hash, hlen, 50);
}

std::string NewJoinToken(const std::string& ca_digest) {
  return "SWMTKN-1-" + ca_digest + "-" + RandomBase36(25);
}

ParsedToken ParseJoinToken(const std::string& token) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    const size_t dash = token.find('-', start);
    parts.push_back(token.substr(start, dash - start));
    if (dash == std::string::npos) break;
    start = dash + 1;
  }
  if (parts.size() != 4 || parts[0] != "SWMTKN") {
    throw PkiError("invalid join token: it should look like SWMTKN-1-<digest>-<secret>");
  }
  if (parts[1] != "1") throw PkiError("invalid join token: unknown version " + parts[1]);
  if (parts[2].size() != 50 || !IsBase36(parts[2])) {
    throw PkiError("invalid join token: the CA digest is malformed");
  }
  if (parts[3].size() != 25 || !IsBase36(parts[3])) {
    throw PkiError("invalid join token: the secret is malformed");
  }
  return {parts[2], parts[3]};
}

}  // namespace skep::pki
