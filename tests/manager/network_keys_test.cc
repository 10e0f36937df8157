#include <catch2/catch.hpp>

#include "daemon/manager/network_keys.h"

using namespace skep;
using namespace skep::manager;

TEST_CASE("the gossip keys rotate every interval, newest first, three kept", "[keys]") {
  int made = 0;
  auto fresh = [&] { return "key" + std::to_string(++made); };
  api::Cluster c;
  // None yet: one at once.
  auto next = RotateNetworkKeys(c, 1000, 100, fresh);
  REQUIRE(next);
  REQUIRE(next->network_keys_size() == 1);
  CHECK(next->network_keys(0).key() == "key1");
  CHECK(NextKeyRotation(*next, 100) == 1100);
  c = *next;
  CHECK_FALSE(RotateNetworkKeys(c, 1099, 100, fresh));  // not yet due
  for (int64_t t : {1100, 1200, 1300}) {
    next = RotateNetworkKeys(c, t, 100, fresh);
    REQUIRE(next);
    c = *next;
  }
  REQUIRE(c.network_keys_size() == 3);
  CHECK(c.network_keys(0).key() == "key4");
  CHECK(c.network_keys(1).key() == "key3");
  CHECK(c.network_keys(2).key() == "key2");
  CHECK(c.network_keys(0).created_ns() == 1300);
  CHECK(NextKeyRotation(c, 100) == 1400);
}
