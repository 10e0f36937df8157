#include <catch2/catch.hpp>

#include "daemon/cli/command.h"
#include "daemon/cli/format.h"
#include "daemon/cli/specs.h"
#include "daemon/common/netutil.h"

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
  CHECK_FALSE(cli::ParseDuration("211111311m"));  // beyond int64 nanoseconds (~292 years)
  CHECK(cli::ParseDuration(".5s") == nanoseconds(500'000'000));
  CHECK(cli::ParseDuration("5.s") == nanoseconds(5'000'000'000));
  CHECK_FALSE(cli::ParseDuration("1.2.3s"));  // not 1.2 s
  CHECK_FALSE(cli::ParseDuration(".s"));
  CHECK_FALSE(cli::ParseDuration("1..5s"));
}

TEST_CASE("service flag values parse as Docker's do, or fail with a usage error", "[cli]") {
  const api::PortConfig udp = cli::ParsePort("8080:80/udp");
  CHECK(udp.published_port() == 8080);
  CHECK(udp.target_port() == 80);
  CHECK(udp.protocol() == "udp");
  const api::PortConfig host = cli::ParsePort("mode=host,published=8080,target=80");
  CHECK(host.publish_mode() == api::PortConfig::HOST);
  CHECK(host.target_port() == 80);
  CHECK_THROWS_AS(cli::ParsePort("8080:"), cli::UsageError);

  const api::Mount tmpfs = cli::ParseMount("type=tmpfs,target=/tmp,tmpfs-size=64m,tmpfs-mode=1777");
  CHECK(tmpfs.type() == api::Mount::TMPFS);
  CHECK(tmpfs.tmpfs_size_bytes() == 64 << 20);
  CHECK(tmpfs.tmpfs_mode() == 01777);
  // Once std::invalid_argument out of std::stoul, which ended the CLI with an abort.
  CHECK_THROWS_WITH(cli::ParseMount("type=tmpfs,target=/tmp,tmpfs-mode=rwx"),
                    "invalid mount \"type=tmpfs,target=/tmp,tmpfs-mode=rwx\": tmpfs-mode \"rwx\" "
                    "is not an octal file mode (e.g. 1777)");

  CHECK(cli::ParseBytes("limit-memory", "512M") == 512 << 20);
  CHECK(cli::ParseCpus("limit-cpu", "1.5") == 1'500'000'000);
  // Values no int64 holds were converted regardless (undefined behaviour).
  CHECK_THROWS_WITH(cli::ParseBytes("limit-memory", "1e30"),
                    "invalid argument \"1e30\" for \"--limit-memory\": not a size");
  CHECK_THROWS_AS(cli::ParseBytes("limit-memory", "nan"), cli::UsageError);
  CHECK_THROWS_AS(cli::ParseCpus("limit-cpu", "1e10"), cli::UsageError);
  CHECK_THROWS_AS(cli::ParseCpus("limit-cpu", "inf"), cli::UsageError);

  CHECK(cli::ParsePlacementPref("placement-pref", "spread=node.labels.zone") == "node.labels.zone");
  CHECK_THROWS_AS(cli::ParsePlacementPref("placement-pref", "pack=node.labels.zone"),
                  cli::UsageError);
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

TEST_CASE("an interface's name stands for its address, when it has one of a kind", "[net]") {
  std::string err;
  // lo has 127.0.0.1 and ::1: the IPv4 address is the one.
  CHECK(net::InterfaceAddress("lo", &err) == "127.0.0.1");
  CHECK(net::ResolveHostPort("lo", 2377, &err)->ToString() == "127.0.0.1:2377");
  CHECK(net::ResolveHostPort("lo:4000", 2377, &err)->ToString() == "127.0.0.1:4000");
  CHECK(net::ResolveHostPort("10.0.0.1:4000", 2377, &err)->ToString() == "10.0.0.1:4000");
  CHECK_FALSE(net::ResolveHostPort("nosuch0:4000", 2377, &err));
  CHECK(err ==
        "invalid address \"nosuch0:4000\": \"nosuch0\" is neither an IP address nor a network "
        "interface of this machine");
  CHECK_FALSE(net::ResolveHostPort("lo:0", 2377, &err));
  CHECK(err == "invalid address \"lo:0\": bad port \"0\"");
  CHECK_FALSE(net::InterfaceAddress("nosuch0", &err));
  CHECK(err == "no network interface \"nosuch0\" on this machine");
}
