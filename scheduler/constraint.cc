#include "scheduler/constraint.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>

namespace skep::scheduler {
namespace {

constexpr std::string_view kNodeLabelPrefix = "node.labels.";
constexpr std::string_view kEngineLabelPrefix = "engine.labels.";
constexpr std::string_view kFixedKeys[] = {"node.id", "node.hostname",    "node.role",
                                           "node.ip", "node.platform.os", "node.platform.arch"};

char LowerAscii(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = LowerAscii(c);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (LowerAscii(a[i]) != LowerAscii(b[i])) return false;
  }
  return true;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back()))
    s.remove_suffix(1);
  return s;
}

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// The characters swarm mode accepts in a value. Keeping the same set means a spec written for
// Docker is accepted here, and that a value can never contain an operator ("==", "!=", "<").
bool IsValueChar(char c) {
  return IsAlnum(c) || IsSpace(c) || std::strchr(":-_.*()?+[]\\^$|/", c) != nullptr;
}

bool IsLabelNameChar(char c) {
  return IsAlnum(c) || c == '-' || c == '_' || c == '.';
}

// An IP address in network byte order; IPv4 (also when written as ::ffff:a.b.c.d) uses the
// first 4 bytes, so that the two spellings of one IPv4 address compare equal.
struct IpAddress {
  bool v6 = false;
  std::array<unsigned char, 16> bytes{};
  int bits() const { return v6 ? 128 : 32; }
};

std::optional<IpAddress> ParseIp(std::string_view text) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  std::string s(text);  // inet_pton needs a NUL-terminated string
  IpAddress ip;
  if (inet_pton(AF_INET, s.c_str(), ip.bytes.data()) == 1) return ip;
  if (inet_pton(AF_INET6, s.c_str(), ip.bytes.data()) != 1) return std::nullopt;
  static constexpr unsigned char kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(ip.bytes.data(), kV4Mapped, sizeof kV4Mapped) == 0) {
    std::memmove(ip.bytes.data(), ip.bytes.data() + 12, 4);
    std::memset(ip.bytes.data() + 4, 0, 12);
    return ip;
  }
  ip.v6 = true;
  return ip;
}

struct IpNetwork {
  IpAddress base;
  int prefix_bits = 0;

  bool Contains(const IpAddress& ip) const {
    if (ip.v6 != base.v6) return false;
    int whole = prefix_bits / 8, rest = prefix_bits % 8;
    if (std::memcmp(ip.bytes.data(), base.bytes.data(), whole) != 0) return false;
    if (rest == 0) return true;
    unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
    return (ip.bytes[whole] & mask) == (base.bytes[whole] & mask);
  }
};

// "10.0.0.0/8", "fd00::/64"; host bits may be set ("10.1.2.3/8" is 10.0.0.0/8).
std::optional<IpNetwork> ParseCidr(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto base = ParseIp(text.substr(0, slash));
  std::string_view len = text.substr(slash + 1);
  if (!base || len.empty() || len.size() > 3) return std::nullopt;
  int bits = 0;
  for (char c : len) {
    if (c < '0' || c > '9') return std::nullopt;
    bits = bits * 10 + (c - '0');
  }
  if (bits > base->bits()) return std::nullopt;
  return IpNetwork{*base, bits};
}

std::string Quoted(std::string_view s) {
  std::string out = "\"";
  out += s;
  out += '"';
  return out;
}

// node.ip==ADDR holds for that address; node.ip==NET for every address inside it.
bool MatchesIp(const Constraint& c, const NodeInfo& node) {
  auto node_ip = ParseIp(node.addr);
  bool hit;
  if (auto ip = ParseIp(c.value)) {
    hit = node_ip && node_ip->v6 == ip->v6 && node_ip->bytes == ip->bytes;
  } else if (auto net = ParseCidr(c.value)) {
    hit = node_ip && net->Contains(*node_ip);
  } else {
    return false;  // malformed: matches nothing, whatever the operator
  }
  return c.op == Op::kEq ? hit : !hit;
}

const std::string* LabelValue(const std::map<std::string, std::string>& labels,
                              std::string_view name) {
  auto it = labels.find(std::string(name));
  return it == labels.end() ? nullptr : &it->second;
}

}  // namespace

ParsedConstraint ParseConstraint(std::string_view input) {
  const std::string_view text = Trim(input);
  auto invalid = [&](std::string_view why) {
    std::string msg = "invalid constraint " + Quoted(text) + ": ";
    msg += why;
    return ParsedConstraint(std::move(msg));
  };

  size_t eq = text.find("=="), ne = text.find("!=");
  if (eq == std::string_view::npos && ne == std::string_view::npos) {
    return invalid("expected KEY==VALUE or KEY!=VALUE");
  }
  Constraint c;
  size_t op_at = std::min(eq, ne);
  c.op = op_at == eq ? Op::kEq : Op::kNeq;
  std::string_view key = Trim(text.substr(0, op_at));
  std::string_view value = Trim(text.substr(op_at + 2));
  if (key.empty()) return invalid("empty key (expected KEY==VALUE or KEY!=VALUE)");
  if (value.empty()) return invalid("empty value");
  for (char ch : value) {
    if (!IsValueChar(ch)) {
      return invalid("value " + Quoted(value) + " contains " + Quoted(std::string(1, ch)) +
                     "; a value has letters, digits, spaces and :-_.*()?+[]\\^$|/");
    }
  }

  std::string lower = ToLower(key);
  bool fixed = false;
  for (std::string_view k : kFixedKeys)
    fixed = fixed || lower == k;
  if (fixed) {
    c.key = lower;
  } else if (lower.starts_with(kNodeLabelPrefix) || lower.starts_with(kEngineLabelPrefix)) {
    size_t prefix =
        lower.starts_with(kNodeLabelPrefix) ? kNodeLabelPrefix.size() : kEngineLabelPrefix.size();
    std::string_view name = key.substr(prefix);
    if (name.empty()) return invalid("empty label name");
    for (char ch : name) {
      if (!IsLabelNameChar(ch)) {
        return invalid("invalid label name " + Quoted(name) +
                       "; a label name has letters, digits and -_.");
      }
    }
    c.key = lower.substr(0, prefix);
    c.key += name;
  } else {
    return invalid("unknown key " + Quoted(key));
  }

  // Values that could never match are mistakes worth reporting now rather than as a task
  // that stays pending.
  if (c.key == "node.role" && !EqualsIgnoreCase(value, "manager") &&
      !EqualsIgnoreCase(value, "worker")) {
    return invalid("node.role is \"manager\" or \"worker\", not " + Quoted(value));
  }
  if (c.key == "node.ip" && !ParseIp(value) && !ParseCidr(value)) {
    return invalid(Quoted(value) + " is not an IP address or a CIDR network");
  }
  c.value = std::string(value);
  c.text = std::string(text);
  return c;
}

std::variant<std::vector<Constraint>, std::string> ParseConstraints(
    const std::vector<std::string>& texts) {
  std::vector<Constraint> out;
  out.reserve(texts.size());
  for (const std::string& t : texts) {
    ParsedConstraint parsed = ParseConstraint(t);
    if (auto* err = std::get_if<std::string>(&parsed)) return std::move(*err);
    out.push_back(std::move(std::get<Constraint>(parsed)));
  }
  return out;
}

bool Matches(const Constraint& c, const NodeInfo& node) {
  std::string_view key = c.key;
  std::string_view actual;
  if (EqualsIgnoreCase(key, "node.id")) {
    actual = node.id;
  } else if (EqualsIgnoreCase(key, "node.hostname")) {
    actual = node.hostname;
  } else if (EqualsIgnoreCase(key, "node.role")) {
    actual = node.role;
  } else if (EqualsIgnoreCase(key, "node.ip")) {
    return MatchesIp(c, node);
  } else if (EqualsIgnoreCase(key, "node.platform.os")) {
    actual = node.platform.os;
  } else if (EqualsIgnoreCase(key, "node.platform.arch")) {
    actual = node.platform.arch;
  } else if (key.size() > kNodeLabelPrefix.size() && StartsWithIgnoreCase(key, kNodeLabelPrefix)) {
    // A missing label reads as the empty value, which no valid constraint value equals.
    if (auto* v = LabelValue(node.labels, key.substr(kNodeLabelPrefix.size()))) actual = *v;
  } else if (key.size() > kEngineLabelPrefix.size() &&
             StartsWithIgnoreCase(key, kEngineLabelPrefix)) {
    if (auto* v = LabelValue(node.engine_labels, key.substr(kEngineLabelPrefix.size()))) {
      actual = *v;
    }
  } else {
    return false;
  }
  bool equal = EqualsIgnoreCase(actual, c.value);
  return c.op == Op::kEq ? equal : !equal;
}

}  // namespace skep::scheduler
