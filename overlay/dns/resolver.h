// What the embedded resolver does with a query: answer it from the names of the listener's
// network namespace, or forward it to the node's upstream resolvers. Pure.
//
// The rules, in order:
//   EDNS version other than 0            → BADVERS (RFC 6891 §6.1.3)
//   class other than IN                  → REFUSED
//   name not in Names                    → forward (the upstream says NXDOMAIN if it must)
//   name in Names, type A or ANY         → its addresses, authoritative, TTL kLocalTtl, in an
//                                          order drawn from `seed` so that clients spread
//   name in Names, any other type        → NOERROR with no answer (e.g. AAAA: the name exists)
// A name in Names with no addresses answers NOERROR with no answer too.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "overlay/dns/message.h"

namespace skep::dns {

struct Names {
  // Lowercase names without trailing dot ("web", "tasks.web", task names) → IPv4 addresses in
  // dotted-quad form. Text that is not an IPv4 address is skipped.
  std::map<std::string, std::vector<std::string>> a;
};

struct LocalReply {
  std::string bytes;
};
struct Forward {};
using Decision = std::variant<LocalReply, Forward>;

// `limit` bounds the reply (q.UdpLimit() over UDP, kMaxTcpMessage over TCP); `seed` orders
// the addresses of this answer (same seed, same order).
Decision Resolve(const Query& q, const Names& names, size_t limit, uint64_t seed);

}  // namespace skep::dns
