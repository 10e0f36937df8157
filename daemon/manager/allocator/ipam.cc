#include "daemon/manager/allocator/ipam.h"

#include <charconv>

namespace skep::allocator {

bool Overlaps(const Prefix& a, const Prefix& b) {
  return a.Contains(b) || b.Contains(a);
}

std::optional<uint32_t> ParseAddr(std::string_view text) {
  uint32_t out = 0;
  int parts = 0;
  while (parts < 4) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    const size_t n = static_cast<size_t>(p - text.data());
    if (ec != std::errc() || n == 0 || n > 3 || v > 255 || (n > 1 && text[0] == '0')) {
      return std::nullopt;
    }
    out = out << 8 | v;
    ++parts;
    text.remove_prefix(n);
    if (parts < 4) {
      if (text.empty() || text[0] != '.') return std::nullopt;
      text.remove_prefix(1);
    }
  }
  if (!text.empty()) return std::nullopt;
  return out;
}

std::string FormatAddr(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
         std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
}

std::string Format(const Prefix& p) {
  return FormatAddr(p.addr) + "/" + std::to_string(p.len);
}

std::optional<Prefix> ParsePrefix(std::string_view text, std::string* err) {
  const std::string shown(text);
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    *err = "\"" + shown + "\": expected an IPv4 CIDR such as 10.0.9.0/24";
    return std::nullopt;
  }
  auto addr = ParseAddr(text.substr(0, slash));
  int len = -1;
  const std::string_view l = text.substr(slash + 1);
  auto [p, ec] = std::from_chars(l.data(), l.data() + l.size(), len);
  if (!addr || ec != std::errc() || p != l.data() + l.size() || len < 0 || len > 32) {
    *err = "\"" + shown + "\": expected an IPv4 CIDR such as 10.0.9.0/24";
    return std::nullopt;
  }
  Prefix out{*addr, len};
  if ((*addr & out.mask()) != *addr) {
    *err = "\"" + shown + "\": host bits are set (the network is " +
           Format({*addr & out.mask(), len}) + ")";
    return std::nullopt;
  }
  return out;
}

SubnetPool::SubnetPool(Prefix pool, int subnet_len) : pool_(pool), subnet_len_(subnet_len) {}

std::optional<Prefix> SubnetPool::Next(const std::vector<Prefix>& used) const {
  if (subnet_len_ < pool_.len || subnet_len_ > 30) return std::nullopt;
  const uint64_t step = uint64_t{1} << (32 - subnet_len_);
  for (uint64_t a = pool_.first(); a <= pool_.last(); a += step) {
    const Prefix candidate{static_cast<uint32_t>(a), subnet_len_};
    bool free = true;
    for (const auto& u : used) {
      if (Overlaps(candidate, u)) {
        free = false;
        // Skip past the used prefix when it is the larger one.
        if (u.len < subnet_len_) a = std::max<uint64_t>(a, u.last() + 1 - step);
        break;
      }
    }
    if (free) return candidate;
  }
  return std::nullopt;
}

AddressSpace::AddressSpace(Prefix subnet, std::optional<Prefix> range, uint32_t gateway)
    : subnet_(subnet), range_(range.value_or(subnet)), gateway_(gateway), next_(range_.first()) {}

bool AddressSpace::Usable(uint32_t a) const {
  if (!range_.Contains(a) || !subnet_.Contains(a) || a == gateway_) return false;
  // The network and broadcast addresses (a /31 or /32 has neither).
  if (subnet_.len <= 30 && (a == subnet_.first() || a == subnet_.last())) return false;
  return true;
}

std::optional<uint32_t> AddressSpace::Allocate() {
  // A full network stays full until an address is released: asking again costs nothing (a
  // swarm with more nodes than its ingress network has addresses asks at every pass).
  if (full_) return std::nullopt;
  const uint64_t size = uint64_t{range_.last()} - range_.first() + 1;
  uint32_t a = range_.Contains(next_) ? next_ : range_.first();
  for (uint64_t i = 0; i < size; ++i) {
    if (Usable(a) && !used_.count(a)) {
      used_.insert(a);
      next_ = a == range_.last() ? range_.first() : a + 1;
      return a;
    }
    a = a == range_.last() ? range_.first() : a + 1;
  }
  full_ = true;
  return std::nullopt;
}

bool AddressSpace::Reserve(uint32_t a) {
  if (!subnet_.Contains(a) || a == gateway_) return false;
  return used_.insert(a).second;
}

void AddressSpace::Release(uint32_t a) {
  if (used_.erase(a) > 0) full_ = false;
}

std::optional<uint32_t> VniPool::Allocate() {
  for (uint32_t i = 0; i <= kLast - kFirst; ++i) {
    const uint32_t v = next_;
    next_ = next_ == kLast ? kFirst : next_ + 1;
    if (used_.insert(v).second) return v;
  }
  return std::nullopt;
}

bool VniPool::Reserve(uint32_t vni) {
  if (vni < kFirst || vni > kLast) return false;
  return used_.insert(vni).second;
}

void VniPool::Release(uint32_t vni) {
  used_.erase(vni);
}

}  // namespace skep::allocator
