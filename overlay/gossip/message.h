// The messages members exchange, and their binary encoding.
//
// Wire format (all integers little endian):
//   u8 version (kWireVersion)
//   str from, str to                      str = u32 length + bytes
//   u8 body tag, body fields              tags follow the order of Body's alternatives
//   u32 count, then count broadcasts      each: u8 tag (order of Broadcast's alternatives),
//                                         then its fields
// Decode accepts exactly one message that fills the whole input; anything else (truncation,
// trailing bytes, unknown tag or version, a length longer than what is left or than
// 16 MiB, a bool that is neither 0 nor 1) is rejected. Encryption and framing belong
// to the transport, not here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace skep::gossip {

inline constexpr uint8_t kWireVersion = 1;

enum class MemberState : uint8_t { kAlive = 0, kSuspect = 1, kDead = 2, kLeft = 3 };

const char* ToString(MemberState s);

// A direct probe. `target` is the node name, so a ping that reaches a restarted process on a
// reused address is not acked on behalf of someone else.
struct Ping {
  uint32_t seq = 0;
  std::string target;
  bool operator==(const Ping&) const = default;
};
// Asks the receiver to probe `target` for us and relay the ack, or a nack if none came.
struct IndirectPing {
  uint32_t seq = 0;
  std::string target;
  std::string target_addr;
  bool operator==(const IndirectPing&) const = default;
};
struct Ack {
  uint32_t seq = 0;
  bool operator==(const Ack&) const = default;
};
// Lifeguard: the relay got no ack from the target, but it is alive and so are we.
struct Nack {
  uint32_t seq = 0;
  bool operator==(const Nack&) const = default;
};
struct Alive {
  uint64_t incarnation = 0;
  std::string node;
  std::string addr;
  bool operator==(const Alive&) const = default;
};
struct Suspect {
  uint64_t incarnation = 0;
  std::string node;
  std::string from;  // the accuser's name
  bool operator==(const Suspect&) const = default;
};
// node == from means the node left on purpose rather than failed (as in memberlist).
struct Dead {
  uint64_t incarnation = 0;
  std::string node;
  std::string from;
  bool operator==(const Dead&) const = default;
};
struct MemberRecord {
  std::string name;
  std::string addr;
  uint64_t incarnation = 0;
  MemberState state = MemberState::kAlive;
  bool operator==(const MemberRecord&) const = default;
};
// Full state sync. `user_state` carries the delegate's state (the endpoint tables).
struct PushPull {
  std::vector<MemberRecord> members;
  bool join = false;
  bool reply = false;
  std::string user_state;
  bool operator==(const PushPull&) const = default;
};
struct UserData {
  std::string bytes;
  bool operator==(const UserData&) const = default;
};
// A message that carries nothing but piggybacked broadcasts.
struct Gossip {
  bool operator==(const Gossip&) const = default;
};

// A user broadcast; a newer one with the same key replaces a queued older one.
struct UserBroadcast {
  std::string key;
  std::string bytes;
  bool operator==(const UserBroadcast&) const = default;
};

using Broadcast = std::variant<Alive, Suspect, Dead, UserBroadcast>;
using Body =
    std::variant<Ping, IndirectPing, Ack, Nack, Alive, Suspect, Dead, PushPull, UserData, Gossip>;

struct Message {
  std::string from;  // addresses, ip:port
  std::string to;
  Body body;
  std::vector<Broadcast> broadcasts;  // piggybacked gossip
  bool operator==(const Message&) const = default;
};

std::string Encode(const Message& m);
std::optional<Message> Decode(std::string_view bytes);

// The bytes `b` adds to an encoded message, for packing broadcasts into a packet budget.
size_t EncodedSize(const Broadcast& b);

}  // namespace skep::gossip
