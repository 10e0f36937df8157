// The gossip encryption keys: AES-256-GCM, as HashiCorp memberlist encrypts its traffic.
//
// A keyring holds one or more 32-byte keys. The first is the primary: it seals everything
// sent. Opening tries every key, so a rotation goes in three steps, each applied to every node
// before the next: add the new key (second), make it primary (first), remove the old one.
//
// Sealed packet layout:
//   u8 version (kSealVersion) | 12-byte random nonce | ciphertext | 16-byte GCM tag
// The version byte is authenticated too (it is the additional data). A GCM nonce must never
// repeat under one key; 96 random bits keep the chance of a repeat negligible for far more
// packets than a gossip key ever seals before it is rotated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace skep::gossip {

inline constexpr uint8_t kSealVersion = 1;
inline constexpr size_t kKeyBytes = 32;
inline constexpr size_t kNonceBytes = 12;
inline constexpr size_t kTagBytes = 16;
// What Seal adds to the plaintext.
inline constexpr size_t kSealOverhead = 1 + kNonceBytes + kTagBytes;

class Keyring {
 public:
  Keyring() = default;  // empty: Seal must not be called, Open refuses everything
  // Throws std::invalid_argument naming the offending key's position if one is not 32 bytes.
  explicit Keyring(std::vector<std::string> keys);

  bool empty() const { return keys_.empty(); }
  const std::vector<std::string>& keys() const { return keys_; }

  // Encrypts with the primary key. Throws std::logic_error on an empty keyring and
  // std::runtime_error if OpenSSL fails (it does not for valid input).
  std::string Seal(std::string_view plain) const;
  // The plaintext, or nullopt when no key authenticates the packet (wrong key, tampered,
  // truncated, unknown version, or an empty keyring).
  std::optional<std::string> Open(std::string_view packet) const;

 private:
  std::vector<std::string> keys_;  // Invariant: each is kKeyBytes long
};

}  // namespace skep::gossip
