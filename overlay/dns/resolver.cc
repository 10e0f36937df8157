#include "overlay/dns/resolver.h"

#include <arpa/inet.h>

#include <utility>

namespace skep::dns {
namespace {

// SplitMix64 (Steele, Lea, Flood 2014): a small, well-mixed generator, so the order depends
// only on the seed and not on the standard library's distributions.
uint64_t Next(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Fisher-Yates. The modulo bias is irrelevant for a few hundred addresses.
void Shuffle(std::vector<std::array<uint8_t, 4>>& v, uint64_t seed) {
  for (size_t i = v.size(); i > 1; --i)
    std::swap(v[i - 1], v[Next(seed) % i]);
}

std::vector<std::array<uint8_t, 4>> Addresses(const std::vector<std::string>& ips) {
  std::vector<std::array<uint8_t, 4>> out;
  out.reserve(ips.size());
  for (const std::string& ip : ips) {
    std::array<uint8_t, 4> a{};
    if (inet_pton(AF_INET, ip.c_str(), a.data()) == 1) out.push_back(a);
  }
  return out;
}

}  // namespace

Decision Resolve(const Query& q, const Names& names, size_t limit, uint64_t seed) {
  Response r;
  if (q.edns && q.edns->version != 0) {
    r.rcode = Rcode::kBadVers;
    return LocalReply{EncodeResponse(q, r, limit)};
  }
  if (q.qclass != kClassIn) {
    r.rcode = Rcode::kRefused;
    return LocalReply{EncodeResponse(q, r, limit)};
  }
  const auto it = names.a.find(q.name);
  if (it == names.a.end()) return Forward{};
  r.authoritative = true;
  if (q.qtype == kTypeA || q.qtype == kTypeAny) {
    r.a = Addresses(it->second);
    Shuffle(r.a, seed);
  }
  return LocalReply{EncodeResponse(q, r, limit)};
}

}  // namespace skep::dns
