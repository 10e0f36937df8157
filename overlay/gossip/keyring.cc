#include "overlay/gossip/keyring.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <climits>
#include <memory>
#include <stdexcept>

namespace skep::gossip {
namespace {

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
unsigned char* Bytes(std::string& s, size_t offset) {
  return reinterpret_cast<unsigned char*>(s.data()) + offset;
}

const unsigned char kAad = kSealVersion;

// Decrypts `body` (ciphertext) under `key`; nullopt unless the tag authenticates.
std::optional<std::string> OpenWith(const std::string& key, std::string_view nonce,
                                    std::string_view body, std::string_view tag) {
  Ctx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return std::nullopt;
  std::string plain(body.size(), '\0');
  int len = 0;
  if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, Bytes(key), Bytes(nonce)) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, &kAad, 1) != 1 ||
      EVP_DecryptUpdate(ctx.get(), Bytes(plain, 0), &len, Bytes(body),
                        static_cast<int>(body.size())) != 1) {
    return std::nullopt;
  }
  size_t written = static_cast<size_t>(len);
  // The tag is only read, but OpenSSL's control interface takes a non-const pointer.
  std::string tag_copy(tag);
  int final_len = 0;
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag_copy.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), Bytes(plain, written), &final_len) != 1) {
    return std::nullopt;
  }
  plain.resize(written + static_cast<size_t>(final_len));
  return plain;
}

}  // namespace

Keyring::Keyring(std::vector<std::string> keys) : keys_(std::move(keys)) {
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i].size() != kKeyBytes) {
      throw std::invalid_argument("gossip key " + std::to_string(i + 1) + " is " +
                                  std::to_string(keys_[i].size()) + " bytes; AES-256 needs " +
                                  std::to_string(kKeyBytes));
    }
  }
}

std::string Keyring::Seal(std::string_view plain) const {
  if (keys_.empty()) throw std::logic_error("gossip: Seal on an empty keyring");
  if (plain.size() > static_cast<size_t>(INT_MAX) - kSealOverhead) {
    throw std::runtime_error("gossip: message too large to seal");
  }
  std::string out(kSealOverhead + plain.size(), '\0');
  out[0] = static_cast<char>(kSealVersion);
  unsigned char* nonce = Bytes(out, 1);
  unsigned char* body = Bytes(out, 1 + kNonceBytes);
  if (RAND_bytes(nonce, kNonceBytes) != 1) throw std::runtime_error("gossip: RAND_bytes failed");

  Ctx ctx(EVP_CIPHER_CTX_new());
  int len = 0, final_len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, Bytes(keys_[0]), nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, &kAad, 1) != 1 ||
      EVP_EncryptUpdate(ctx.get(), body, &len, Bytes(plain), static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), body + len, &final_len) != 1 ||
      static_cast<size_t>(len + final_len) != plain.size() ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, body + plain.size()) != 1) {
    throw std::runtime_error("gossip: AES-256-GCM encryption failed");
  }
  return out;
}

std::optional<std::string> Keyring::Open(std::string_view packet) const {
  if (packet.size() < kSealOverhead || packet.size() > static_cast<size_t>(INT_MAX)) {
    return std::nullopt;
  }
  if (static_cast<uint8_t>(packet[0]) != kSealVersion) return std::nullopt;
  std::string_view nonce = packet.substr(1, kNonceBytes);
  std::string_view body = packet.substr(1 + kNonceBytes, packet.size() - kSealOverhead);
  std::string_view tag = packet.substr(packet.size() - kTagBytes);
  for (const std::string& key : keys_) {
    if (auto plain = OpenWith(key, nonce, body, tag)) return plain;
  }
  return std::nullopt;
}

}  // namespace skep::gossip
