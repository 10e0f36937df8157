#include "overlay/dataplane/overlay_dataplane.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/route/neighbour.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

#include "overlay/dataplane/netlink.h"

namespace skep::dataplane {

namespace fs = std::filesystem;
using namespace netlink;

namespace {

constexpr char kBridge[] = "br0";
constexpr int kVxlanOverhead = 50;

std::string VxlanName(uint32_t vni) {
  return "vx" + std::to_string(vni);
}

// The sandbox's end of a task's veth, named after the task's address (unique on the network).
std::string SandboxEnd(const std::string& ip) {
  in_addr a{};
  if (inet_pton(AF_INET, ip.c_str(), &a) != 1)
    throw std::runtime_error("not an IPv4 address: " + ip);
  char buf[16];
  std::snprintf(buf, sizeof(buf), "vt%08x", ntohl(a.s_addr));
  return buf;
}

std::string IpOf(const std::string& cidr) {
  return cidr.substr(0, cidr.find('/'));
}

struct Addr {
  nl_addr* p = nullptr;
  Addr(const std::string& text, int family) {
    if (int err = nl_addr_parse(text.c_str(), family, &p); err < 0)
      Fail("bad address " + text, err);
  }
  ~Addr() { nl_addr_put(p); }
  Addr(const Addr&) = delete;
  Addr& operator=(const Addr&) = delete;
};

// A neighbour message, built by hand: libnl's neighbour objects do not carry a VXLAN FDB
// entry's remote (NDA_DST next to NDA_LLADDR on an AF_BRIDGE entry) faithfully.
// `state`: NUD_PERMANENT on the VXLAN device and for neighbours; NUD_NOARP (static) on the
// bridge, where NUD_PERMANENT would mean a MAC of the bridge itself.
int SendNeigh(Socket& s, bool add, uint8_t family, int ifindex, uint8_t flags, uint16_t state,
              const unsigned char mac[6], const in_addr* dst) {
  nl_msg* msg =
      nlmsg_alloc_simple(add ? RTM_NEWNEIGH : RTM_DELNEIGH, add ? NLM_F_CREATE | NLM_F_REPLACE : 0);
  if (msg == nullptr) return -NLE_NOMEM;
  ndmsg ndm{};
  ndm.ndm_family = family;
  ndm.ndm_ifindex = ifindex;
  ndm.ndm_state = state;
  ndm.ndm_flags = flags;
  int err = nlmsg_append(msg, &ndm, sizeof(ndm), NLMSG_ALIGNTO);
  if (err >= 0) err = nla_put(msg, NDA_LLADDR, 6, mac);
  if (err >= 0 && dst != nullptr) err = nla_put(msg, NDA_DST, sizeof(*dst), dst);
  if (err >= 0) err = nl_send_auto(s.sk, msg);
  nlmsg_free(msg);
  if (err < 0) return err;
  return nl_wait_for_ack(s.sk);
}

// Turns MAC learning off on a bridge port: the bridge forwards to remote tasks by the static
// entries ChangePeer adds, never by what it saw (which would outlive the peer).
void StopLearning(Socket& s, int port) {
  nl_msg* msg = nlmsg_alloc_simple(RTM_SETLINK, 0);
  if (msg == nullptr) Fail("cannot turn learning off on the VXLAN port", -NLE_NOMEM);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_BRIDGE;
  ifi.ifi_index = port;
  int err = nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO);
  if (err >= 0) {
    nlattr* info = nla_nest_start(msg, IFLA_PROTINFO | NLA_F_NESTED);
    err = info == nullptr ? -NLE_NOMEM : nla_put_u8(msg, IFLA_BRPORT_LEARNING, 0);
    if (err >= 0) err = nla_nest_end(msg, info);
  }
  if (err >= 0) err = nl_send_auto(s.sk, msg);
  nlmsg_free(msg);
  if (err >= 0) err = nl_wait_for_ack(s.sk);
  if (err < 0) Fail("cannot turn learning off on the VXLAN port", err);
}

// The entries of a remote task: on the VXLAN device, its MAC behind the peer's VTEP (FDB) and
// its IP at that MAC (neighbour, for the ARP proxy); on the bridge, its MAC behind the VXLAN
// port (a static entry, so nothing floods).
void ChangePeer(Socket& s, int vxlan, const OverlayPeer& p, bool add) {
  in_addr ip{}, vtep{};
  if (inet_pton(AF_INET, p.ip.c_str(), &ip) != 1 ||
      inet_pton(AF_INET, p.vtep.c_str(), &vtep) != 1) {
    throw std::runtime_error("bad peer " + p.ip + " at " + p.vtep);
  }
  const auto* b = reinterpret_cast<const unsigned char*>(&ip.s_addr);
  const unsigned char mac[6] = {0x02, 0x42, b[0], b[1], b[2], b[3]};
  int e1 = SendNeigh(s, add, AF_BRIDGE, vxlan, NTF_SELF, NUD_PERMANENT, mac, &vtep);
  int e2 = SendNeigh(s, add, AF_INET, vxlan, 0, NUD_PERMANENT, mac, &ip);
  int e3 = SendNeigh(s, add, AF_BRIDGE, vxlan, NTF_MASTER, NUD_NOARP, mac, nullptr);
  if (!add) {
    // Already gone is as good as removed.
    for (int* e : {&e1, &e2, &e3}) {
      if (*e == -NLE_OBJ_NOTFOUND || *e == -NLE_NOADDR || *e == -NLE_NODEV) *e = 0;
    }
  }
  const std::string what = std::string(add ? "cannot add" : "cannot remove") + " the entries of " +
                           p.ip + " at " + p.vtep;
  if (e1 < 0) Fail(what + " (forwarding entry)", e1);
  if (e2 < 0) Fail(what + " (neighbour entry)", e2);
  if (e3 < 0) Fail(what + " (bridge entry)", e3);
}

std::vector<OverlayPeer> ReadPeers(const std::string& path) {
  std::vector<OverlayPeer> out;
  std::ifstream in(path);
  OverlayPeer p;
  while (in >> p.ip >> p.vtep)
    out.push_back(p);
  return out;
}

}  // namespace

OverlayDataplane::OverlayDataplane(std::string data_dir, std::string vtep, int underlay_mtu,
                                   uint16_t port)
    : data_dir_(std::move(data_dir)),
      vtep_(std::move(vtep)),
      mtu_(underlay_mtu - kVxlanOverhead),
      port_(port) {}

std::string OverlayDataplane::MacFor(const std::string& ip) {
  in_addr a{};
  if (inet_pton(AF_INET, ip.c_str(), &a) != 1)
    throw std::runtime_error("not an IPv4 address: " + ip);
  const auto* b = reinterpret_cast<const unsigned char*>(&a.s_addr);
  char buf[18];
  std::snprintf(buf, sizeof(buf), "02:42:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3]);
  return buf;
}

std::string OverlayDataplane::SandboxPath(const std::string& network_id) const {
  return data_dir_ + "/netns/ov-" + network_id;
}

void OverlayDataplane::SetPort(uint16_t port) {
  MutexLock lock(mu_);
  port_ = port ? port : 4789;
}

void OverlayDataplane::EnsureNetwork(const OverlayNetworkInfo& n) {
  MutexLock lock(mu_);
  const std::string path = SandboxPath(n.id);
  fs::create_directories(data_dir_ + "/netns");
  const std::string prefix_len = n.subnet.substr(n.subnet.find('/'));
  const std::string vx = VxlanName(n.vni);
  bool exists = false;
  if (fs::exists(path)) {
    try {
      InNamespace(path, [&] {
        Socket s;
        exists = IfIndex(s, kBridge) != 0 && IfIndex(s, vx) != 0;
        if (exists) StopLearning(s, IfIndex(s, vx));  // a sandbox of an older skepd
      });
    } catch (const std::exception&) {
      exists = false;  // a mount point left without its namespace (after a reboot)
    }
  }
  if (exists) return;
  umount2(path.c_str(), MNT_DETACH);
  std::error_code ec;
  fs::remove(path, ec);
  {
    // A VXLAN device of a sandbox that is gone may be left in the node's namespace.
    Socket s;
    DeleteLink(s, vx);
  }
  InNewNamespace(path, [&] {
    Socket s;
    rtnl_link* br = rtnl_link_bridge_alloc();
    rtnl_link_set_name(br, kBridge);
    const int err = rtnl_link_add(s.sk, br, NLM_F_CREATE);
    rtnl_link_put(br);
    if (err < 0 && err != -NLE_EXIST) Fail("cannot create the overlay bridge", err);
    AddAddress(s, kBridge, n.gateway + prefix_len);
    SetUp(s, "lo");
    SetUp(s, kBridge, 0, mtu_);
  });
  // The VXLAN device: made here, so that its UDP socket is on the node's underlay, then moved.
  const int sandbox = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (sandbox < 0) throw std::runtime_error("cannot open the sandbox " + path);
  {
    Socket s;
    rtnl_link* link = rtnl_link_vxlan_alloc();
    rtnl_link_set_name(link, vx.c_str());
    rtnl_link_vxlan_set_id(link, n.vni);
    rtnl_link_vxlan_set_port(link, port_);
    rtnl_link_vxlan_set_learning(link, 0);
    rtnl_link_vxlan_set_proxy(link, 1);  // ARP answered from the neighbour entries
    Addr local(vtep_, AF_INET);
    rtnl_link_vxlan_set_local(link, local.p);
    rtnl_link_set_mtu(link, static_cast<unsigned>(mtu_));
    rtnl_link_set_ns_fd(link, sandbox);
    const int err = rtnl_link_add(s.sk, link, NLM_F_CREATE | NLM_F_EXCL);
    rtnl_link_put(link);
    close(sandbox);
    if (err < 0) Fail("cannot create the VXLAN device of VNI " + std::to_string(n.vni), err);
  }
  InNamespace(path, [&] {
    Socket s;
    SetUp(s, vx, IfIndex(s, kBridge), mtu_);
    StopLearning(s, IfIndex(s, vx));
  });
  fs::remove(path + ".peers", ec);  // a new sandbox holds no entries yet
}

void OverlayDataplane::RemoveNetwork(const std::string& network_id) {
  MutexLock lock(mu_);
  const std::string path = SandboxPath(network_id);
  // The devices go with the namespace once nothing holds it (the tasks' veths with them).
  umount2(path.c_str(), MNT_DETACH);
  std::error_code ec;
  fs::remove(path, ec);
  fs::remove(path + ".peers", ec);
}

void OverlayDataplane::AttachTask(const std::string& network_id, const std::string& task_netns,
                                  const std::string& ifname, const std::string& cidr) {
  MutexLock lock(mu_);
  const std::string ip = IpOf(cidr);
  const std::string end = SandboxEnd(ip);
  const int task_ns = open(task_netns.c_str(), O_RDONLY | O_CLOEXEC);
  if (task_ns < 0) throw std::runtime_error("cannot open the task's namespace " + task_netns);
  try {
    InNamespace(SandboxPath(network_id), [&] {
      Socket s;
      DeleteLink(s, end);  // a leftover of an earlier attempt
      rtnl_link* veth = rtnl_link_veth_alloc();
      rtnl_link_set_name(veth, end.c_str());
      rtnl_link_set_mtu(veth, static_cast<unsigned>(mtu_));
      rtnl_link* peer = rtnl_link_veth_get_peer(veth);
      rtnl_link_set_name(peer, ifname.c_str());
      rtnl_link_set_mtu(peer, static_cast<unsigned>(mtu_));
      Addr mac(MacFor(ip), AF_LLC);
      rtnl_link_set_addr(peer, mac.p);
      rtnl_link_set_ns_fd(peer, task_ns);
      rtnl_link_put(peer);
      const int err = rtnl_link_add(s.sk, veth, NLM_F_CREATE | NLM_F_EXCL);
      rtnl_link_veth_release(veth);
      if (err < 0) Fail("cannot create the task's overlay veth", err);
      SetUp(s, end, IfIndex(s, kBridge));
    });
    InNamespace(task_netns, [&] {
      Socket s;
      AddAddress(s, ifname, cidr);
      SetUp(s, ifname);
    });
  } catch (...) {
    close(task_ns);
    throw;
  }
  close(task_ns);
}

void OverlayDataplane::DetachTask(const std::string& network_id, const std::string& cidr) {
  MutexLock lock(mu_);
  const std::string path = SandboxPath(network_id);
  if (!fs::exists(path)) return;
  InNamespace(path, [&] {
    Socket s;
    DeleteLink(s, SandboxEnd(IpOf(cidr)));  // its peer in the task's namespace goes with it
  });
}

void OverlayDataplane::SetPeers(const std::string& network_id,
                                const std::vector<OverlayPeer>& peers) {
  MutexLock lock(mu_);
  const std::string path = SandboxPath(network_id);
  const std::vector<OverlayPeer> installed = ReadPeers(path + ".peers");
  auto has = [](const std::vector<OverlayPeer>& v, const OverlayPeer& p) {
    return std::find(v.begin(), v.end(), p) != v.end();
  };
  InNamespace(path, [&] {
    Socket s;
    int vxlan = 0;
    {
      // The sandbox has one VXLAN device.
      nl_cache* cache = nullptr;
      if (int err = rtnl_link_alloc_cache(s.sk, AF_UNSPEC, &cache); err < 0) {
        Fail("cannot list the sandbox's interfaces", err);
      }
      for (nl_object* o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
        auto* l = reinterpret_cast<rtnl_link*>(o);
        if (rtnl_link_is_vxlan(l)) vxlan = rtnl_link_get_ifindex(l);
      }
      nl_cache_free(cache);
    }
    if (vxlan == 0)
      throw std::runtime_error("the sandbox of network " + network_id + " has no VXLAN device");
    for (const auto& p : installed) {
      if (!has(peers, p)) ChangePeer(s, vxlan, p, false);
    }
    for (const auto& p : peers) {
      if (!has(installed, p)) ChangePeer(s, vxlan, p, true);
    }
  });
  std::ofstream out(path + ".peers", std::ios::trunc);
  for (const auto& p : peers)
    out << p.ip << " " << p.vtep << "\n";
}

}  // namespace skep::dataplane
