#include "overlay/dataplane/task_network.h"

#include <fcntl.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "daemon/common/log.h"
#include "overlay/dataplane/netlink.h"
#include "overlay/dataplane/nft.h"

namespace skep::dataplane {

namespace fs = std::filesystem;
using namespace netlink;

namespace {

constexpr char kBridge[] = "skep_gwbridge";
constexpr char kSubnetPrefix[] = "172.18.";  // 172.18.0.0/16; the node is 172.18.0.1
constexpr char kGateway[] = "172.18.0.1";
constexpr char kNatTable[] = "skep_gw";

void WriteProc(const std::string& path, const std::string& value) {
  std::ofstream f(path);
  f << value;
  if (!f) throw std::runtime_error("cannot write " + path);
}

std::string InterfaceName(const std::string& task_id) {
  return "vsk" + task_id.substr(0, 12);  // at most 15 characters
}

}  // namespace

TaskNetwork::TaskNetwork(std::string data_dir) : data_dir_(std::move(data_dir)) {}

void TaskNetwork::EnsureBridge() {
  if (bridge_ready_) return;
  Socket s;
  if (IfIndex(s, kBridge) == 0) {
    rtnl_link* br = rtnl_link_bridge_alloc();
    rtnl_link_set_name(br, kBridge);
    const int err = rtnl_link_add(s.sk, br, NLM_F_CREATE);
    rtnl_link_put(br);
    if (err < 0 && err != -NLE_EXIST) Fail(std::string("cannot create the bridge ") + kBridge, err);
  }
  AddAddress(s, kBridge, std::string(kGateway) + "/16");
  SetUp(s, kBridge);
  WriteProc("/proc/sys/net/ipv4/ip_forward", "1");
  bridge_ready_ = true;
  WriteNat();
}

// The NAT table, whole, from the <task>.net files: masquerading for the tasks' traffic out,
// and a DNAT per host-mode published port.
void TaskNetwork::WriteNat() {
  std::ostringstream dnat;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(Dir(), ec)) {
    if (e.path().extension() != ".net") continue;
    std::ifstream in(e.path());
    std::string addr, proto;
    uint32_t published = 0, target = 0;
    in >> addr;
    while (in >> proto >> published >> target) {
      dnat << "    fib daddr type local " << proto << " dport " << published << " dnat to " << addr
           << ":" << target << "\n";
    }
  }
  std::ostringstream cmd;
  cmd << "table ip " << kNatTable << "\n"
      << "delete table ip " << kNatTable << "\n"
      << "table ip " << kNatTable << " {\n"
      << "  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n"
      << "    ip saddr " << kSubnetPrefix << "0.0/16 oifname != \"" << kBridge
      << "\" masquerade\n  }\n"
      << "  chain prerouting {\n    type nat hook prerouting priority -100; policy accept;\n"
      << dnat.str() << "  }\n"
      << "  chain output {\n    type nat hook output priority -100; policy accept;\n"
      << dnat.str() << "  }\n"
      << "}\n";
  RunNft(cmd.str(), "write the tasks' NAT rules");
}

TaskNetwork::Attachment TaskNetwork::Attach(const std::string& task_id,
                                            const std::vector<PublishedPort>& ports) {
  MutexLock lock(mu_);
  fs::create_directories(Dir());
  EnsureBridge();
  const std::string path = Dir() + "/" + task_id;
  // A leftover of an earlier attempt (or of a reboot) goes first.
  umount2(path.c_str(), MNT_DETACH);
  fs::remove(path);
  {
    // The kernel may be removing it meanwhile (with the namespace just unmounted): gone is
    // as good as deleted.
    Socket s;
    DeleteLink(s, InterfaceName(task_id));
  }

  // The lowest address no other task holds.
  std::set<std::string> used;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(Dir(), ec)) {
    if (e.path().extension() != ".net") continue;
    std::ifstream in(e.path());
    std::string a;
    in >> a;
    used.insert(a);
  }
  std::string addr;
  for (int i = 2; i < 65534 && addr.empty(); ++i) {
    const std::string a = kSubnetPrefix + std::to_string(i / 256) + "." + std::to_string(i % 256);
    if (i % 256 != 0 && i % 256 != 255 && !used.count(a)) addr = a;
  }
  if (addr.empty()) throw std::runtime_error("no address left on skep_gwbridge");

  const int host_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (host_ns < 0) throw std::runtime_error("cannot open this node's network namespace");
  const std::string host_if = InterfaceName(task_id);
  try {
    InNewNamespace(path, [&] {
      Socket s;
      // Both ends are made here; the host's end moves to the node's namespace at once.
      rtnl_link* veth = rtnl_link_veth_alloc();
      rtnl_link_set_name(veth, "eth0");
      rtnl_link* peer = rtnl_link_veth_get_peer(veth);
      rtnl_link_set_name(peer, host_if.c_str());
      rtnl_link_set_ns_fd(peer, host_ns);
      rtnl_link_put(peer);
      const int err = rtnl_link_add(s.sk, veth, NLM_F_CREATE | NLM_F_EXCL);
      rtnl_link_veth_release(veth);
      if (err < 0) Fail("cannot create the task's veth pair", err);
      SetUp(s, "lo");
      AddAddress(s, "eth0", addr + "/16");
      SetUp(s, "eth0");
      AddDefaultRoute(s, "eth0", kGateway);
    });
    Socket s;
    SetUp(s, host_if, IfIndex(s, kBridge));
  } catch (...) {
    close(host_ns);
    umount2(path.c_str(), MNT_DETACH);
    fs::remove(path, ec);
    throw;
  }
  close(host_ns);
  {
    std::ofstream out(path + ".net", std::ios::trunc);
    out << addr << "\n";
    for (const auto& p : ports)
      out << p.protocol << " " << p.published << " " << p.target << "\n";
  }
  if (!ports.empty()) WriteNat();
  return {path, addr};
}

void TaskNetwork::SetPorts(const std::string& task_id, const std::vector<PublishedPort>& ports) {
  MutexLock lock(mu_);
  const std::string path = Dir() + "/" + task_id;
  std::string addr;
  {
    std::ifstream in(path + ".net");
    if (!(in >> addr)) throw std::runtime_error("no network namespace for " + task_id);
  }
  {
    std::ofstream out(path + ".net", std::ios::trunc);
    out << addr << "\n";
    for (const auto& p : ports)
      out << p.protocol << " " << p.published << " " << p.target << "\n";
  }
  EnsureBridge();
  WriteNat();
}

void TaskNetwork::Detach(const std::string& task_id) {
  MutexLock lock(mu_);
  const std::string path = Dir() + "/" + task_id;
  std::error_code ec;
  const bool had_ports = [&] {
    std::ifstream in(path + ".net");
    std::string addr, proto;
    in >> addr;
    return static_cast<bool>(in >> proto);
  }();
  // The veth goes with the namespace once nothing holds it.
  umount2(path.c_str(), MNT_DETACH);
  fs::remove(path, ec);
  fs::remove(path + ".net", ec);
  if (had_ports) {
    try {
      if (!bridge_ready_) EnsureBridge();
      WriteNat();
    } catch (const std::exception& e) {
      SKEP_LOG(warn, "network", "cannot rewrite the NAT rules: {}", e.what());
    }
  }
}

}  // namespace skep::dataplane
