// IP address management for overlay networks, as pure values: IPv4 prefixes, the default pool
// that network subnets are carved from, the addresses of one network, and VNIs. No store, no
// I/O: the allocator rebuilds this state from the store whenever it starts to lead, so what is
// allocated is whatever raft says is.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace skep::allocator {

// An IPv4 prefix; `addr` is the network address (host bits zero).
struct Prefix {
  uint32_t addr = 0;
  int len = 0;
  uint32_t mask() const { return len == 0 ? 0 : ~uint32_t{0} << (32 - len); }
  uint32_t first() const { return addr; }
  uint32_t last() const { return addr | ~mask(); }
  bool Contains(uint32_t a) const { return (a & mask()) == addr; }
  bool Contains(const Prefix& p) const { return p.len >= len && Contains(p.addr); }
  bool operator==(const Prefix&) const = default;
  bool operator<(const Prefix& o) const { return addr != o.addr ? addr < o.addr : len < o.len; }
};

bool Overlaps(const Prefix& a, const Prefix& b);

// "10.0.9.0/24". Refuses host bits set ("10.0.9.1/24"), as Docker does, with the reason in *err
// (the text and what is wrong with it; the caller says what it was meant to be).
std::optional<Prefix> ParsePrefix(std::string_view text, std::string* err);
std::optional<uint32_t> ParseAddr(std::string_view text);
std::string FormatAddr(uint32_t addr);
std::string Format(const Prefix& p);

// The pool network subnets come from when none is given (10.0.0.0/8 in /24s by default).
class SubnetPool {
 public:
  SubnetPool(Prefix pool, int subnet_len);
  // The lowest subnet of the pool that overlaps none of `used`, or nullopt when it is full.
  std::optional<Prefix> Next(const std::vector<Prefix>& used) const;

 private:
  Prefix pool_;
  int subnet_len_;
};

// The addresses of one network: the subnet (or its --ip-range) minus the network and broadcast
// addresses and the gateway. Allocation takes the lowest free address after the last one
// handed out, wrapping around, so that a released address is not reused at once.
class AddressSpace {
 public:
  // `range` must lie within `subnet`; `gateway` within it too (the caller checks).
  AddressSpace(Prefix subnet, std::optional<Prefix> range, uint32_t gateway);
  std::optional<uint32_t> Allocate();
  // Marks an address taken (rebuilding from the store); false if it was taken or is outside.
  bool Reserve(uint32_t addr);
  void Release(uint32_t addr);
  size_t used() const { return used_.size(); }
  const Prefix& subnet() const { return subnet_; }

 private:
  bool Usable(uint32_t a) const;
  Prefix subnet_;
  Prefix range_;
  uint32_t gateway_;
  std::set<uint32_t> used_;
  uint32_t next_;
  bool full_ = false;  // an Allocate found nothing, and nothing was released since
};

// VXLAN network identifiers: 4096 and up (lower ones are left to other uses, as Docker does).
class VniPool {
 public:
  static constexpr uint32_t kFirst = 4096;
  static constexpr uint32_t kLast = (1u << 24) - 1;
  std::optional<uint32_t> Allocate();
  bool Reserve(uint32_t vni);
  void Release(uint32_t vni);

 private:
  std::set<uint32_t> used_;
  uint32_t next_ = kFirst;
};

}  // namespace skep::allocator
