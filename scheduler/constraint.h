// Placement constraints, as `docker service create --constraint` takes them:
//   node.id==ID  node.hostname!=NAME  node.role==manager  node.ip==10.0.0.0/8
//   node.platform.os==linux  node.platform.arch==aarch64
//   node.labels.NAME==VALUE  engine.labels.NAME!=VALUE
// Semantics follow swarm mode: key prefixes and values compare case-insensitively, label
// names are case-sensitive, a node without the label has the empty value (so `==` fails and
// `!=` holds), and node.ip takes an IPv4/IPv6 address or a CIDR network.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "scheduler/types.h"

namespace skep::scheduler {

enum class Op { kEq, kNeq };

struct Constraint {
  // Lower-case except for a label's name: "node.role", "node.labels.Zone".
  std::string key;
  Op op = Op::kEq;
  std::string value;  // trimmed; for node.ip an address or a CIDR network
  std::string text;   // as written, without surrounding spaces: shown in messages
  friend bool operator==(const Constraint&, const Constraint&) = default;
};

// Either the constraint or an error the user can act on, e.g.
//   invalid constraint "node.rol==manager": unknown key "node.rol"
using ParsedConstraint = std::variant<Constraint, std::string>;
ParsedConstraint ParseConstraint(std::string_view text);

// All of `texts`, or the error of the first one that is invalid.
std::variant<std::vector<Constraint>, std::string> ParseConstraints(
    const std::vector<std::string>& texts);

// Whether `node` satisfies `c`. A constraint that ParseConstraint would reject never matches.
bool Matches(const Constraint& c, const NodeInfo& node);

}  // namespace skep::scheduler
