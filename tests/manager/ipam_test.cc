#include <catch2/catch.hpp>

#include "daemon/manager/allocator/ipam.h"
#include "daemon/manager/allocator/networks.h"

using namespace skep::allocator;

namespace {

Prefix P(const std::string& s) {
  std::string err;
  auto p = ParsePrefix(s, &err);
  INFO(err);
  REQUIRE(p);
  return *p;
}

uint32_t A(const std::string& s) {
  auto a = ParseAddr(s);
  REQUIRE(a);
  return *a;
}

}  // namespace

TEST_CASE("prefixes parse, print and overlap; bad ones say what is wrong", "[ipam]") {
  CHECK(Format(P("10.0.9.0/24")) == "10.0.9.0/24");
  CHECK(Format(P("0.0.0.0/0")) == "0.0.0.0/0");
  CHECK(Overlaps(P("10.0.0.0/8"), P("10.1.2.0/24")));
  CHECK(Overlaps(P("10.1.2.0/24"), P("10.0.0.0/8")));
  CHECK_FALSE(Overlaps(P("10.0.9.0/24"), P("10.0.10.0/24")));
  std::string err;
  CHECK_FALSE(ParsePrefix("10.0.9.1/24", &err));
  CHECK(err == "\"10.0.9.1/24\": host bits are set (the network is 10.0.9.0/24)");
  for (const char* bad : {"10.0.9.0", "10.0.9.0/33", "10.0.300.0/24", "10.0.9/24", "x/24",
                          "10.0.9.0/24x", "010.0.9.0/24", ""}) {
    INFO(bad);
    CHECK_FALSE(ParsePrefix(bad, &err));
    CHECK(err.find("expected an IPv4 CIDR") != std::string::npos);
  }
  CHECK(FormatAddr(A("192.168.1.254")) == "192.168.1.254");
  CHECK_FALSE(ParseAddr("1.2.3"));
  CHECK_FALSE(ParseAddr("1.2.3.4.5"));
}

TEST_CASE("the default pool hands out the lowest free subnet, around used ones", "[ipam]") {
  SubnetPool pool(P("10.0.0.0/8"), 24);
  CHECK(Format(*pool.Next({})) == "10.0.0.0/24");
  CHECK(Format(*pool.Next({P("10.0.0.0/24"), P("10.0.1.0/24")})) == "10.0.2.0/24");
  // A user subnet larger than the pool's unit blocks everything it covers.
  CHECK(Format(*pool.Next({P("10.0.0.0/16")})) == "10.1.0.0/24");
  CHECK(Format(*pool.Next({P("10.0.0.0/24"), P("10.0.1.128/25")})) == "10.0.2.0/24");
  SubnetPool tiny(P("192.168.0.0/23"), 24);
  CHECK_FALSE(tiny.Next({P("192.168.0.0/24"), P("192.168.1.0/24")}));
  CHECK_FALSE(SubnetPool(P("10.0.0.0/16"), 8).Next({}));  // a unit larger than the pool
}

TEST_CASE("a network's addresses skip network, broadcast and gateway, and come back", "[ipam]") {
  AddressSpace space(P("10.0.9.0/29"), std::nullopt, A("10.0.9.1"));
  std::vector<std::string> got;
  while (auto a = space.Allocate())
    got.push_back(FormatAddr(*a));
  // .0 network, .1 gateway, .7 broadcast.
  CHECK(got ==
        std::vector<std::string>{"10.0.9.2", "10.0.9.3", "10.0.9.4", "10.0.9.5", "10.0.9.6"});
  space.Release(A("10.0.9.4"));
  CHECK(FormatAddr(*space.Allocate()) == "10.0.9.4");
  CHECK_FALSE(space.Allocate());

  // Released addresses are not reused at once while others are free.
  AddressSpace wide(P("10.0.10.0/24"), std::nullopt, A("10.0.10.1"));
  const uint32_t first = *wide.Allocate();
  wide.Release(first);
  CHECK(*wide.Allocate() != first);

  // --ip-range narrows what tasks get; Reserve rebuilds from the store.
  AddressSpace ranged(P("10.0.11.0/24"), P("10.0.11.128/30"), A("10.0.11.1"));
  CHECK(ranged.Reserve(A("10.0.11.129")));
  CHECK_FALSE(ranged.Reserve(A("10.0.11.129")));
  CHECK_FALSE(ranged.Reserve(A("10.0.12.5")));
  std::vector<std::string> in_range;
  while (auto a = ranged.Allocate())
    in_range.push_back(FormatAddr(*a));
  CHECK(in_range == std::vector<std::string>{"10.0.11.128", "10.0.11.130", "10.0.11.131"});
}

TEST_CASE("VNIs start at 4096 and are not handed out twice", "[ipam]") {
  VniPool vnis;
  CHECK(vnis.Reserve(4096));
  CHECK(*vnis.Allocate() == 4097);
  CHECK_FALSE(vnis.Reserve(4097));
  CHECK_FALSE(vnis.Reserve(100));
  vnis.Release(4096);
  CHECK(*vnis.Allocate() == 4098);
}

namespace {

skep::api::NetworkSpec Spec(const std::string& name, const std::string& subnet = "") {
  skep::api::NetworkSpec s;
  s.set_name(name);
  if (!subnet.empty()) s.add_ipam()->set_subnet(subnet);
  return s;
}

}  // namespace

TEST_CASE("networks get a free subnet, gateway and VNI; overlaps and bad specs are refused",
          "[ipam]") {
  using skep::api::Network;
  const skep::api::NetworkSettings defaults;
  Network ingress, mine, pooled;
  auto spec = Spec("ingress");
  spec.set_ingress(true);
  REQUIRE(AllocateNetwork(spec, {}, defaults, &ingress).ok());
  CHECK(ingress.ipam().subnet() == "10.0.0.0/24");
  CHECK(ingress.ipam().gateway() == "10.0.0.1");
  CHECK(ingress.vni() == 4096);
  CHECK(ingress.spec().driver() == "overlay");

  REQUIRE(AllocateNetwork(Spec("servicenet", "10.0.9.0/24"), {&ingress}, defaults, &mine).ok());
  CHECK(mine.vni() == 4097);
  REQUIRE(AllocateNetwork(Spec("apps"), {&ingress, &mine}, defaults, &pooled).ok());
  CHECK(pooled.ipam().subnet() == "10.0.1.0/24");
  CHECK(pooled.vni() == 4098);

  Network out;
  CHECK(AllocateNetwork(Spec("other", "10.0.9.128/25"), {&ingress, &mine}, defaults, &out).message() ==
        "subnet 10.0.9.128/25 overlaps with network servicenet (10.0.9.0/24)");
  CHECK(AllocateNetwork(Spec("servicenet"), {&ingress, &mine}, defaults, &out).code() ==
        skep::Code::kAlreadyExists);
  auto second_ingress = Spec("ing2");
  second_ingress.set_ingress(true);
  CHECK(AllocateNetwork(second_ingress, {&ingress}, defaults, &out).message() ==
        "an ingress network already exists: ingress");
  CHECK(AllocateNetwork(Spec("bad name"), {}, defaults, &out).message().find("invalid network name") == 0);
  auto bridge = Spec("b");
  bridge.set_driver("bridge");
  CHECK(AllocateNetwork(bridge, {}, defaults, &out).message().find("is not supported") !=
        std::string::npos);
  auto gw = Spec("g", "10.0.20.0/24");
  gw.mutable_ipam(0)->set_gateway("10.0.21.1");
  CHECK(AllocateNetwork(gw, {}, defaults, &out).message() ==
        "gateway 10.0.21.1 is not a host address of subnet 10.0.20.0/24");
  auto range = Spec("r", "10.0.20.0/24");
  range.mutable_ipam(0)->set_ip_range("10.0.20.128/25");
  range.mutable_ipam(0)->set_gateway("10.0.20.254");
  REQUIRE(AllocateNetwork(range, {}, defaults, &out).ok());
  CHECK(out.ipam().gateway() == "10.0.20.254");
  CHECK(out.ipam().ip_range() == "10.0.20.128/25");
  auto loose = Spec("l");
  loose.add_ipam()->set_gateway("10.0.0.1");
  CHECK(AllocateNetwork(loose, {}, defaults, &out).message() ==
        "a gateway or IP range needs a subnet (--subnet)");

  // Two networks that raced for one subnet: the store refuses the second.
  Network twin = pooled;
  twin.mutable_spec()->set_name("twin");
  twin.set_vni(5000);
  CHECK(AllocationConflict(twin, pooled) ==
        "subnet 10.0.1.0/24 overlaps with network apps (10.0.1.0/24)");
  CHECK(AllocationConflict(mine, pooled) == "");
}

TEST_CASE("the default address pool and its mask length come from swarm init", "[ipam]") {
  skep::api::NetworkSettings pools;
  pools.add_default_addr_pool("172.30.0.0/16");
  pools.set_subnet_size(26);
  skep::api::Network n;
  REQUIRE(AllocateNetwork(Spec("a"), {}, pools, &n).ok());
  CHECK(n.ipam().subnet() == "172.30.0.0/26");
  CHECK(CheckPools(pools) == "");
  pools.set_subnet_size(12);
  CHECK(CheckPools(pools) ==
        "default address pool 172.30.0.0/16 is smaller than its subnets (/12)");
  skep::api::NetworkSettings bad;
  bad.add_default_addr_pool("172.30.0.1/16");
  CHECK(CheckPools(bad).find("invalid default address pool") == 0);
  skep::api::NetworkSettings full;
  full.add_default_addr_pool("192.168.0.0/24");
  full.set_subnet_size(24);
  skep::api::Network first, second;
  REQUIRE(AllocateNetwork(Spec("x"), {}, full, &first).ok());
  CHECK(AllocateNetwork(Spec("y"), {&first}, full, &second).message() ==
        "no subnet left in the default address pools");
}
