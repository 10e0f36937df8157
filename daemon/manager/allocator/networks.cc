#include "daemon/manager/allocator/networks.h"

#include <set>

#include "daemon/manager/allocator/ipam.h"

namespace skep::allocator {

namespace {

bool ValidName(const std::string& n) {
  if (n.empty() || !std::isalnum(static_cast<unsigned char>(n[0]))) return false;
  for (unsigned char c : n) {
    if (!std::isalnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

std::optional<Prefix> SubnetOf(const api::Network& n) {
  std::string err;
  return ParsePrefix(n.ipam().subnet(), &err);
}

struct Pools {
  std::vector<Prefix> prefixes;
  int size = kDefaultSubnetSize;
};

std::string ParsePools(const api::NetworkSettings& s, Pools* out) {
  std::vector<std::string> texts(s.default_addr_pool().begin(), s.default_addr_pool().end());
  if (texts.empty()) texts.push_back(kDefaultPool);
  out->size = s.subnet_size() ? static_cast<int>(s.subnet_size()) : kDefaultSubnetSize;
  if (out->size < 8 || out->size > 29) {
    return "invalid default address pool mask length " + std::to_string(out->size) +
           ": it must be between 8 and 29";
  }
  for (const auto& t : texts) {
    std::string err;
    auto p = ParsePrefix(t, &err);
    if (!p) return "invalid default address pool " + err;
    if (p->len > out->size) {
      return "default address pool " + t + " is smaller than its subnets (/" +
             std::to_string(out->size) + ")";
    }
    for (const auto& other : out->prefixes) {
      if (Overlaps(*p, other))
        return "default address pools " + t + " and " + Format(other) + " overlap";
    }
    out->prefixes.push_back(*p);
  }
  return "";
}

}  // namespace

std::string CheckPools(const api::NetworkSettings& pools) {
  Pools p;
  return ParsePools(pools, &p);
}

Status AllocateNetwork(const api::NetworkSpec& spec,
                       const std::vector<const api::Network*>& existing,
                       const api::NetworkSettings& pools, api::Network* out) {
  if (spec.name().empty()) return InvalidArgument("a network name is required");
  if (!ValidName(spec.name())) {
    return InvalidArgument("invalid network name \"" + spec.name() +
           "\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
  }
  const std::string driver = spec.driver().empty() ? "overlay" : spec.driver();
  if (driver != "overlay") {
    return InvalidArgument("network driver \"" + driver + "\" is not supported: swarm networks are overlay");
  }
  if (spec.ipam_size() > 1) return InvalidArgument("only one IPAM configuration (IPv4) is supported");
  for (const auto* n : existing) {
    if (n->spec().name() == spec.name()) {
      return AlreadyExists("network with name " + spec.name() + " already exists");
    }
    if (spec.ingress() && n->spec().ingress()) {
      return AlreadyExists("an ingress network already exists: " + n->spec().name());
    }
  }
  api::IPAMConfig want = spec.ipam_size() ? spec.ipam(0) : api::IPAMConfig();
  std::optional<Prefix> subnet;
  std::string err;
  if (!want.subnet().empty()) {
    subnet = ParsePrefix(want.subnet(), &err);
    if (!subnet) return InvalidArgument("invalid subnet " + err);
    if (subnet->len > 29) return InvalidArgument("subnet " + want.subnet() + " is too small (at most /29)");
    for (const auto* n : existing) {
      auto theirs = SubnetOf(*n);
      if (theirs && Overlaps(*subnet, *theirs)) {
        return InvalidArgument("subnet " + want.subnet() + " overlaps with network " + n->spec().name() + " (" +
               Format(*theirs) + ")");
      }
    }
  } else {
    if (!want.gateway().empty() || !want.ip_range().empty()) {
      return InvalidArgument("a gateway or IP range needs a subnet (--subnet)");
    }
    Pools p;
    if (std::string e = ParsePools(pools, &p); !e.empty()) return InvalidArgument(e);
    std::vector<Prefix> used;
    for (const auto* n : existing) {
      if (auto s = SubnetOf(*n)) used.push_back(*s);
    }
    for (const auto& pool : p.prefixes) {
      if ((subnet = SubnetPool(pool, p.size).Next(used))) break;
    }
    if (!subnet) return InvalidArgument("no subnet left in the default address pools");
  }
  uint32_t gateway = subnet->addr + 1;
  if (!want.gateway().empty()) {
    auto g = ParseAddr(want.gateway());
    if (!g) return InvalidArgument("invalid gateway \"" + want.gateway() + "\": expected an IPv4 address");
    if (!subnet->Contains(*g) || *g == subnet->first() || *g == subnet->last()) {
      return InvalidArgument("gateway " + want.gateway() + " is not a host address of subnet " + Format(*subnet));
    }
    gateway = *g;
  }
  if (!want.ip_range().empty()) {
    auto r = ParsePrefix(want.ip_range(), &err);
    if (!r) return InvalidArgument("invalid IP range " + err);
    if (!subnet->Contains(*r)) {
      return InvalidArgument("IP range " + want.ip_range() + " is not within subnet " + Format(*subnet));
    }
  }
  std::set<uint32_t> vnis;
  for (const auto* n : existing)
    vnis.insert(n->vni());
  uint32_t vni = VniPool::kFirst;
  while (vnis.count(vni))
    ++vni;

  *out->mutable_spec() = spec;
  out->mutable_spec()->set_driver(driver);
  out->set_vni(vni);
  out->mutable_ipam()->set_subnet(Format(*subnet));
  out->mutable_ipam()->set_gateway(FormatAddr(gateway));
  out->mutable_ipam()->set_ip_range(want.ip_range());
  return Status::Ok();
}

std::string AllocationConflict(const api::Network& a, const api::Network& b) {
  if (a.vni() != 0 && a.vni() == b.vni()) {
    return "VNI " + std::to_string(a.vni()) + " is taken by network " + b.spec().name();
  }
  auto sa = SubnetOf(a), sb = SubnetOf(b);
  if (sa && sb && Overlaps(*sa, *sb)) {
    return "subnet " + Format(*sa) + " overlaps with network " + b.spec().name() + " (" +
           Format(*sb) + ")";
  }
  if (a.spec().ingress() && b.spec().ingress()) {
    return "an ingress network already exists: " + b.spec().name();
  }
  return "";
}

}  // namespace skep::allocator
