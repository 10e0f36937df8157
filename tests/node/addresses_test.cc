#include <catch2/catch.hpp>

#include "daemon/node/join.h"

using skep::node::Addresses;
using skep::node::ChooseAddresses;

TEST_CASE("swarm init/join addresses: interfaces, and a data path of its own", "[addresses]") {
  Addresses a;
  REQUIRE(ChooseAddresses("", "127.0.0.1", "", "", &a).ok());
  CHECK(a.listen == "0.0.0.0:2377");
  CHECK(a.advertise == "127.0.0.1:2377");
  CHECK(a.data_path == "127.0.0.1");

  // An interface's name, in each flag; the advertise port follows the listen port.
  REQUIRE(ChooseAddresses("lo:4000", "", "lo", "", &a).ok());
  CHECK(a.listen == "127.0.0.1:4000");
  CHECK(a.advertise == "127.0.0.1:4000");
  CHECK(a.data_path == "127.0.0.1");
  REQUIRE(ChooseAddresses("", "lo", "127.0.0.2", "", &a).ok());
  CHECK(a.advertise == "127.0.0.1:2377");
  CHECK(a.data_path == "127.0.0.2");

  // Refusals name the flag.
  auto refused = [&](const std::string& l, const std::string& ad, const std::string& d) {
    const auto st = ChooseAddresses(l, ad, d, "", &a);
    CHECK_FALSE(st.ok());
    return st.message();
  };
  CHECK(refused("", "127.0.0.1", "lo:4789") ==
        "--data-path-addr: \"lo:4789\" has a port; give an address or an interface only (the "
        "VXLAN port is the swarm's --data-path-port)");
  CHECK(refused("", "127.0.0.1", "0.0.0.0") ==
        "--data-path-addr: 0.0.0.0 is not an address others can reach");
  CHECK(refused("", "127.0.0.1", "::1") ==
        "--data-path-addr: ::1 is IPv6; overlay networks run over IPv4 only");
  CHECK(refused("", "nosuch0", "") ==
        "--advertise-addr: invalid address \"nosuch0\": \"nosuch0\" is neither an IP address nor "
        "a network interface of this machine");
  CHECK(refused("nosuch0:2377", "127.0.0.1", "").rfind("--listen-addr: invalid address", 0) == 0);
  CHECK(refused("", "127.0.0.1", "nosuch0").rfind("--data-path-addr: invalid address", 0) == 0);
}
