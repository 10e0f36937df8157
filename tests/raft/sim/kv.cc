#include "tests/raft/sim/kv.h"

#include <sstream>

namespace skep::raft::sim {
namespace {

void PutString(std::string& out, const std::string& s) {
  out += std::to_string(s.size());
  out += ':';
  out += s;
}

bool GetString(const std::string& in, size_t& pos, std::string* s) {
  const size_t colon = in.find(':', pos);
  if (colon == std::string::npos) return false;
  size_t len = 0;
  try {
    len = std::stoull(in.substr(pos, colon - pos));
  } catch (...) {
    return false;
  }
  if (colon + 1 + len > in.size()) return false;
  *s = in.substr(colon + 1, len);
  pos = colon + 1 + len;
  return true;
}

bool GetNumber(const std::string& in, size_t& pos, uint64_t* n) {
  std::string s;
  if (!GetString(in, pos, &s)) return false;
  try {
    *n = std::stoull(s);
  } catch (...) {
    return false;
  }
  return true;
}

}  // namespace

std::string Encode(const Command& c) {
  std::string out;
  PutString(out, std::to_string(c.client));
  PutString(out, std::to_string(c.seq));
  PutString(out, std::to_string(static_cast<int>(c.kind)));
  PutString(out, c.key);
  PutString(out, c.value);
  PutString(out, c.expected);
  return out;
}

std::optional<Command> Decode(const std::string& data) {
  Command c;
  size_t pos = 0;
  uint64_t kind = 0;
  if (!GetNumber(data, pos, &c.client) || !GetNumber(data, pos, &c.seq) ||
      !GetNumber(data, pos, &kind) || !GetString(data, pos, &c.key) ||
      !GetString(data, pos, &c.value) || !GetString(data, pos, &c.expected) || pos != data.size()) {
    return std::nullopt;
  }
  c.kind = static_cast<OpKind>(kind);
  return c;
}

Outcome KvState::Apply(const Command& c) {
  Session& s = sessions_[c.client];
  if (c.seq <= s.seq) return s.outcome;  // a retry of something already applied
  Outcome out;
  switch (c.kind) {
    case OpKind::kPut:
      data_[c.key] = c.value;
      break;
    case OpKind::kCas:
      out.ok = Get(c.key) == c.expected;
      if (out.ok) data_[c.key] = c.value;
      break;
    case OpKind::kGet:
      break;
  }
  s.seq = c.seq;
  s.outcome = out;
  return out;
}

std::string KvState::Get(const std::string& key) const {
  auto it = data_.find(key);
  return it == data_.end() ? std::string() : it->second;
}

uint64_t KvState::LastSeq(uint64_t client) const {
  auto it = sessions_.find(client);
  return it == sessions_.end() ? 0 : it->second.seq;
}

std::string KvState::Serialize() const {
  std::string out;
  PutString(out, std::to_string(data_.size()));
  for (const auto& [k, v] : data_) {
    PutString(out, k);
    PutString(out, v);
  }
  PutString(out, std::to_string(sessions_.size()));
  for (const auto& [client, s] : sessions_) {
    PutString(out, std::to_string(client));
    PutString(out, std::to_string(s.seq));
    PutString(out, s.outcome.ok ? "1" : "0");
  }
  return out;
}

bool KvState::Restore(const std::string& data) {
  KvState fresh;
  size_t pos = 0;
  uint64_t n = 0;
  if (!data.empty()) {
    if (!GetNumber(data, pos, &n)) return false;
    for (uint64_t i = 0; i < n; ++i) {
      std::string k, v;
      if (!GetString(data, pos, &k) || !GetString(data, pos, &v)) return false;
      fresh.data_[k] = v;
    }
    if (!GetNumber(data, pos, &n)) return false;
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t client = 0, seq = 0;
      std::string ok;
      if (!GetNumber(data, pos, &client) || !GetNumber(data, pos, &seq) ||
          !GetString(data, pos, &ok)) {
        return false;
      }
      fresh.sessions_[client] = Session{seq, Outcome{ok == "1"}};
    }
    if (pos != data.size()) return false;
  }
  *this = std::move(fresh);
  return true;
}

}  // namespace skep::raft::sim
