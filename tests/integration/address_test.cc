// Addresses as on EC2: a node's interfaces carry only private addresses, the public one is a
// NAT in front of it, and the overlay's traffic may take an interface of its own.
#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "tests/integration/lab.h"

using namespace skep::testing;

namespace {

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  return s;
}

// A public address that the host translates to `private_ip` (DNAT, and masquerade for the
// lab's nodes, which share the private address's subnet), as an internet gateway does for an
// EC2 instance's public IP. Undone at the end.
class PublicAddress {
 public:
  static constexpr const char* kTable = "skep_test_public";
  PublicAddress(const std::string& public_ip, const std::string& private_ip) {
    std::ifstream("/proc/sys/net/ipv4/ip_forward") >> forward_;
    std::ofstream("/proc/sys/net/ipv4/ip_forward") << "1\n";
    Run({"nft", "delete", "table", "ip", kTable});
    for (const std::string& rule :
         {std::string("add table ip ") + kTable,
          std::string("add chain ip ") + kTable + " pre { type nat hook prerouting priority -100; }",
          std::string("add chain ip ") + kTable + " post { type nat hook postrouting priority 100; }",
          std::string("add rule ip ") + kTable + " pre ip daddr " + public_ip + " dnat to " +
              private_ip,
          std::string("add rule ip ") + kTable + " post ip daddr " + private_ip +
              " ct status dnat masquerade"}) {
      const Output o = Run({"nft", rule});
      INFO(rule << ": " << o.text());
      REQUIRE(o.code == 0);
    }
  }
  ~PublicAddress() {
    Run({"nft", "delete", "table", "ip", kTable});
    std::ofstream("/proc/sys/net/ipv4/ip_forward") << forward_ << "\n";
  }
  PublicAddress(const PublicAddress&) = delete;
  PublicAddress& operator=(const PublicAddress&) = delete;

 private:
  std::string forward_ = "0";
};

}  // namespace

TEST_CASE("a worker joins through a manager's public address, and overlay traffic takes "
          "--data-path-addr's interface",
          "[integration]") {
  // Every node has eth0 on 10.89.35.0/24 and eth1 on 10.90.35.0/24; the lab makes them carry
  // their VXLAN traffic on eth1 (--data-path-addr eth1).
  Lab lab("itaddr", 35, 1, 2, {}, "10.90.35");
  const std::string public_ip = "198.51.100.11";
  PublicAddress nat(public_ip, lab.Ip("m1"));

  // w2 leaves, and joins again through m1's public address, naming its interfaces.
  REQUIRE(lab.Skep("w2", {"swarm", "leave"}).code == 0);
  REQUIRE(Eventually([&] { return lab.Nodes("m1").at("w2").status == "Down"; }));
  REQUIRE(lab.Skep("m1", {"node", "rm", "w2"}).code == 0);
  const std::string token = Trimmed(lab.Skep("m1", {"swarm", "join-token", "-q", "worker"}).out);
  const Output joined = lab.Skep("w2", {"swarm", "join", "--token", token, "--advertise-addr",
                                        "eth0", "--data-path-addr", "eth1", public_ip + ":2377"});
  INFO(joined.text() << lab.Logs(10));
  REQUIRE(joined.code == 0);
  CHECK(Eventually([&] {
    const auto nodes = lab.Nodes("m1");
    return nodes.count("w2") && nodes.at("w2").status == "Ready";
  }));
  // Once joined it speaks to the manager at the private address the manager advertises: the
  // manager sees w2's own address, not the NAT's.
  CHECK(Eventually([&] {
    return Trimmed(lab.Skep("m1", {"node", "inspect", "w2", "--format", "{{.Status.Addr}}"}).out) ==
           lab.Ip("w2");
  }));
  // Bad addresses are refused before anything changes.
  Output bad = lab.Skep("w1", {"swarm", "leave"});
  REQUIRE(bad.code == 0);
  bad = lab.Skep("w1", {"swarm", "join", "--token", token, "--data-path-addr", "eth9",
                        lab.Ip("m1") + ":2377"});
  CHECK(bad.code != 0);
  CHECK(bad.text().find("--data-path-addr: invalid address \"eth9\": \"eth9\" is neither an IP "
                        "address nor a network interface of this machine") != std::string::npos);
  bad = lab.Skep("w1", {"swarm", "join", "--token", token, "--advertise-addr", "eth1:99999",
                        lab.Ip("m1") + ":2377"});
  CHECK(bad.code != 0);
  CHECK(bad.text().find("--advertise-addr: invalid address \"eth1:99999\": bad port \"99999\"") !=
        std::string::npos);
  REQUIRE(Eventually([&] { return lab.Nodes("m1").at("w1").status == "Down"; }));
  REQUIRE(lab.Skep("m1", {"node", "rm", "w1"}).code == 0);
  const Output rejoined = lab.Skep("w1", {"swarm", "join", "--token", token, "--data-path-addr",
                                          "eth1", lab.Ip("m1") + ":2377"});
  INFO(rejoined.text());
  REQUIRE(rejoined.code == 0);

  // A client on w1 fetches a page from a web task on w2 over the overlay.
  REQUIRE(lab.Skep("m1", {"network", "create", "--subnet", "10.0.9.0/24", "servicenet"}).code == 0);
  REQUIRE(
      lab.Skep("m1", {"service", "create", "--name", "client", "--constraint", "node.hostname==w1",
                      "--network", "servicenet", "skep/busybox:1", "sleep", "600"})
          .code == 0);
  REQUIRE(lab.Skep("m1", {"service", "create", "--name", "web", "--constraint", "node.hostname==w2",
                          "--network", "servicenet", "skep/web:1"})
              .code == 0);
  const std::string client = lab.RunningTask("client");
  std::string web_ip =
      lab.Skep("m1", {"service", "ps", "--filter", "desired-state=running", "--format",
                      "{{.Networks}}", "web"})
          .out;
  web_ip = web_ip.substr(0, web_ip.find('/'));
  REQUIRE(web_ip.rfind("10.0.9.", 0) == 0);
  const std::string netns = lab.Root() + "/w1/data/netns/" + client;
  auto page = [&] {
    return Run({"nsenter", "--net=" + netns, "curl", "-s", "-m", "2", "http://" + web_ip + "/"})
        .out;
  };
  CHECK(Eventually([&] { return page().rfind("web v1 on ", 0) == 0; }));

  // With w2's eth1 down the overlay cannot reach it, although the swarm still can (eth0): the
  // VXLAN traffic goes by the data path's interface and nothing else.
  REQUIRE(Run({"ip", "link", "set", "itaddr-w2d", "down"}).code == 0);
  CHECK(Eventually([&] { return page().empty(); }));
  CHECK(Throughout([&] { return lab.Nodes("m1").at("w2").status == "Ready"; },
                   std::chrono::seconds(3)));
  REQUIRE(Run({"ip", "link", "set", "itaddr-w2d", "up"}).code == 0);
  CHECK(Eventually([&] { return page().rfind("web v1 on ", 0) == 0; }));
}
