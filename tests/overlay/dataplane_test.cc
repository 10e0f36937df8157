// The overlay data plane on real namespaces: two "nodes" joined by a veth (the underlay), a task
// namespace on each, and the VXLAN between them. The fixture itself uses `ip`; the code under
// test only netlink.
#include "overlay/dataplane/overlay_dataplane.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

#include "overlay/dataplane/netlink.h"

using namespace skep::dataplane;
namespace fs = std::filesystem;

namespace {

int Sh(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str());
}

std::string Out(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[512];
  while (p && fgets(buf, sizeof(buf), p))
    out += buf;
  if (p) pclose(p);
  return out;
}

struct Underlay {
  Underlay() {
    Clean();
    for (const char* ns : {"skdpA", "skdpB", "skdpTA", "skdpTB"})
      REQUIRE(Sh(std::string("ip netns add ") + ns) == 0);
    REQUIRE(Sh("ip link add skdpa netns skdpA type veth peer name skdpb netns skdpB") == 0);
    REQUIRE(Sh("ip -n skdpA addr add 10.231.0.1/24 dev skdpa") == 0);
    REQUIRE(Sh("ip -n skdpB addr add 10.231.0.2/24 dev skdpb") == 0);
    for (const char* ns : {"skdpA", "skdpB", "skdpTA", "skdpTB"})
      REQUIRE(Sh(std::string("ip -n ") + ns + " link set lo up") == 0);
    REQUIRE(Sh("ip -n skdpA link set skdpa up") == 0);
    REQUIRE(Sh("ip -n skdpB link set skdpb up") == 0);
    dirA = "/tmp/skdp-a";
    dirB = "/tmp/skdp-b";
    fs::create_directories(dirA);
    fs::create_directories(dirB);
  }
  ~Underlay() { Clean(); }
  void Clean() {
    for (const char* d : {"/tmp/skdp-a", "/tmp/skdp-b"}) {
      Sh(std::string("umount -l ") + d + "/netns/ov-net1");
      std::error_code ec;
      fs::remove_all(d, ec);
    }
    for (const char* ns : {"skdpA", "skdpB", "skdpTA", "skdpTB"})
      Sh(std::string("ip netns del ") + ns);
  }
  std::string dirA, dirB;
};

const OverlayNetworkInfo kNet{"net1", 4242, "10.0.9.0/24", "10.0.9.1"};

void OnNode(const std::string& ns, const std::function<void()>& f) {
  netlink::InNamespace("/run/netns/" + ns, f);
}

bool Ping(const std::string& from, const std::string& ip) {
  // busybox's ping: busybox-static is installed with the test images' tools.
  return Sh("ip netns exec " + from + " busybox ping -c 1 -W 2 " + ip) == 0;
}

}  // namespace

TEST_CASE("a task's MAC is made from its address", "[dataplane]") {
  CHECK(OverlayDataplane::MacFor("10.0.9.5") == "02:42:0a:00:09:05");
  CHECK_THROWS(OverlayDataplane::MacFor("nope"));
}

TEST_CASE("tasks on two nodes reach each other over VXLAN, only through the entries given",
          "[dataplane]") {
  Underlay u;
  OnNode("skdpA", [&] {
    OverlayDataplane dp(u.dirA, "10.231.0.1");
    dp.EnsureNetwork(kNet);
    dp.AttachTask("net1", "/run/netns/skdpTA", "eth1", "10.0.9.5/24");
    dp.SetPeers("net1", {{"10.0.9.6", "10.231.0.2"}});
  });
  OnNode("skdpB", [&] {
    OverlayDataplane dp(u.dirB, "10.231.0.2");
    dp.EnsureNetwork(kNet);
    dp.AttachTask("net1", "/run/netns/skdpTB", "eth1", "10.0.9.6/24");
    dp.SetPeers("net1", {{"10.0.9.5", "10.231.0.1"}});
  });
  const std::string sandbox = u.dirA + "/netns/ov-net1";
  CHECK(Ping("skdpTA", "10.0.9.1"));  // the network's gateway, in the sandbox
  CHECK(Ping("skdpTA", "10.0.9.6"));
  CHECK(Ping("skdpTB", "10.0.9.5"));
  const std::string fdb = Out("nsenter --net=" + sandbox + " bridge fdb show dev vx4242");
  INFO(fdb);
  CHECK(fdb.find("02:42:0a:00:09:06 dst 10.231.0.2") != std::string::npos);
  CHECK(fdb.find("00:00:00:00:00:00") == std::string::npos);  // no flooding entry
  // The bridge forwards to it by a static entry and learns nothing on the VXLAN port.
  CHECK(fdb.find("02:42:0a:00:09:06 master br0 static") != std::string::npos);
  CHECK(Out("nsenter --net=" + sandbox + " bridge -d link show dev vx4242").find("learning off") !=
        std::string::npos);
  // The interface's MTU leaves room for the VXLAN header.
  CHECK(Out("ip -n skdpTA -o link show eth1").find("mtu 1450") != std::string::npos);

  // A restarted skepd finds the sandbox and keeps it; the task keeps its connectivity.
  OnNode("skdpA", [&] {
    OverlayDataplane dp(u.dirA, "10.231.0.1");
    dp.EnsureNetwork(kNet);
    dp.SetPeers("net1", {{"10.0.9.6", "10.231.0.2"}});
  });
  CHECK(Ping("skdpTA", "10.0.9.6"));

  // A peer that is gone leaves no entry behind, and is not reachable any more.
  OnNode("skdpA", [&] {
    OverlayDataplane dp(u.dirA, "10.231.0.1");
    dp.SetPeers("net1", {});
  });
  const std::string after = Out("nsenter --net=" + sandbox + " bridge fdb show dev vx4242") +
                            Out("nsenter --net=" + sandbox + " ip neigh show dev vx4242");
  INFO(after);
  CHECK(after.find("02:42:0a:00:09:06") == std::string::npos);
  CHECK_FALSE(Ping("skdpTA", "10.0.9.6"));

  // Detached, the task has no overlay interface; removed, the sandbox is gone.
  OnNode("skdpA", [&] {
    OverlayDataplane dp(u.dirA, "10.231.0.1");
    dp.DetachTask("net1", "10.0.9.5/24");
    dp.RemoveNetwork("net1");
  });
  CHECK(Sh("ip -n skdpTA link show eth1") != 0);
  CHECK_FALSE(fs::exists(sandbox));
}
