#include <catch2/catch.hpp>

#include "daemon/cli/format.h"
#include "daemon/node/netutil.h"

using namespace skep;

TEST_CASE("durations are read the way Go writes them", "[cli]") {
  using std::chrono::nanoseconds;
  CHECK(cli::ParseDuration("100ms") == nanoseconds(100'000'000));
  CHECK(cli::ParseDuration("1s") == nanoseconds(1'000'000'000));
  CHECK(cli::ParseDuration("1h30m") == nanoseconds(5400'000'000'000));
  CHECK(cli::ParseDuration("1.5s") == nanoseconds(1'500'000'000));
  CHECK(cli::ParseDuration("2160h") == std::chrono::hours(2160));
  CHECK_FALSE(cli::ParseDuration("10"));
  CHECK_FALSE(cli::ParseDuration("fast"));
  CHECK_FALSE(cli::ParseDuration("1x"));
  CHECK_FALSE(cli::ParseDuration(""));
}

TEST_CASE("tables pad columns with at least three spaces", "[cli]") {
  CHECK(
      cli::Table({"ID", "HOSTNAME", "STATUS"}, {{"abc *", "m1", "Ready"}, {"d", "worker01", ""}}) ==
      "ID      HOSTNAME   STATUS\n"
      "abc *   m1         Ready\n"
      "d       worker01\n");
  CHECK(cli::Rfc3339(1'700'000'000'123'000'000) == "2023-11-14T22:13:20.123Z");
}

TEST_CASE("addresses are ip[:port], refused with a reason otherwise", "[net]") {
  std::string err;
  auto hp = net::ParseHostPort("10.0.0.1", 2377, &err);
  REQUIRE(hp);
  CHECK(hp->ToString() == "10.0.0.1:2377");
  CHECK(net::ParseHostPort("10.0.0.1:4000", 2377, &err)->port == 4000);
  CHECK(net::ParseHostPort("[::1]:4000", 2377, &err)->ToString() == "[::1]:4000");
  CHECK_FALSE(net::ParseHostPort("example.com", 2377, &err));
  CHECK(err == "invalid address \"example.com\": \"example.com\" is not an IP address");
  CHECK_FALSE(net::ParseHostPort("10.0.0.1:99999", 2377, &err));
  CHECK(err == "invalid address \"10.0.0.1:99999\": bad port \"99999\"");
  CHECK(net::LocalAddressToward("127.0.0.1") == "127.0.0.1");
}
