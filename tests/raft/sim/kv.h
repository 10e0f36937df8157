// The simulator's replicated state machine: a key-value map with put, get and compare-and-set,
// and client sessions so that a command retried after a timeout takes effect once.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace skep::raft::sim {

enum class OpKind : uint8_t { kPut = 1, kGet = 2, kCas = 3 };

struct Command {
  uint64_t client = 0;
  uint64_t seq = 0;
  OpKind kind = OpKind::kPut;
  std::string key;
  std::string value;     // put: the value; cas: the new value
  std::string expected;  // cas only
};

std::string Encode(const Command& c);
std::optional<Command> Decode(const std::string& data);

struct Outcome {
  bool ok = true;  // cas: whether it swapped
};

class KvState {
 public:
  // Applies a command once per (client, seq); a duplicate returns the first outcome.
  Outcome Apply(const Command& c);
  std::string Get(const std::string& key) const;
  // The highest sequence number applied for a client (0 if none).
  uint64_t LastSeq(uint64_t client) const;

  std::string Serialize() const;
  bool Restore(const std::string& data);
  bool operator==(const KvState&) const = default;

 private:
  struct Session {
    uint64_t seq = 0;
    Outcome outcome;
    bool operator==(const Session& o) const { return seq == o.seq && outcome.ok == o.outcome.ok; }
  };
  std::map<std::string, std::string> data_;
  std::map<uint64_t, Session> sessions_;
};

}  // namespace skep::raft::sim
