#include "overlay/dataplane/netlink.h"

#include <fcntl.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace skep::dataplane::netlink {

void Fail(const std::string& what, int err) {
  throw std::runtime_error(what + ": " + nl_geterror(err));
}

Socket::Socket() {
  sk = nl_socket_alloc();
  if (sk == nullptr) throw std::runtime_error("cannot allocate a netlink socket");
  if (int err = nl_connect(sk, NETLINK_ROUTE); err < 0) {
    nl_socket_free(sk);
    Fail("cannot open a netlink socket", err);
  }
}

Socket::~Socket() {
  nl_socket_free(sk);
}

LinkPtr::~LinkPtr() {
  if (p) rtnl_link_put(p);
}

int IfIndex(Socket& s, const std::string& name) {
  LinkPtr link;
  if (rtnl_link_get_kernel(s.sk, 0, name.c_str(), &link.p) < 0) return 0;
  return rtnl_link_get_ifindex(link.p);
}

void SetUp(Socket& s, const std::string& name, int master, int mtu) {
  LinkPtr link, change;
  if (int err = rtnl_link_get_kernel(s.sk, 0, name.c_str(), &link.p); err < 0) {
    Fail("no interface " + name, err);
  }
  change.p = rtnl_link_alloc();
  rtnl_link_set_flags(change.p, IFF_UP);
  if (master) rtnl_link_set_master(change.p, master);
  if (mtu) rtnl_link_set_mtu(change.p, static_cast<unsigned>(mtu));
  if (int err = rtnl_link_change(s.sk, link.p, change.p, 0); err < 0) {
    Fail("cannot bring " + name + " up", err);
  }
}

void AddAddress(Socket& s, const std::string& ifname, const std::string& cidr) {
  const int index = IfIndex(s, ifname);
  rtnl_addr* addr = rtnl_addr_alloc();
  nl_addr* local = nullptr;
  nl_addr_parse(cidr.c_str(), AF_INET, &local);
  rtnl_addr_set_ifindex(addr, index);
  rtnl_addr_set_local(addr, local);
  const int err = rtnl_addr_add(s.sk, addr, 0);
  nl_addr_put(local);
  rtnl_addr_put(addr);
  if (err < 0 && err != -NLE_EXIST) Fail("cannot give " + ifname + " the address " + cidr, err);
}

void AddDefaultRoute(Socket& s, const std::string& ifname, const std::string& gateway) {
  rtnl_route* route = rtnl_route_alloc();
  nl_addr* dst = nullptr;
  nl_addr* gw = nullptr;
  nl_addr_parse("0.0.0.0/0", AF_INET, &dst);
  nl_addr_parse(gateway.c_str(), AF_INET, &gw);
  rtnl_route_set_family(route, AF_INET);
  rtnl_route_set_dst(route, dst);
  rtnl_nexthop* nh = rtnl_route_nh_alloc();
  rtnl_route_nh_set_gateway(nh, gw);
  rtnl_route_nh_set_ifindex(nh, IfIndex(s, ifname));
  rtnl_route_add_nexthop(route, nh);
  const int err = rtnl_route_add(s.sk, route, 0);
  nl_addr_put(dst);
  nl_addr_put(gw);
  rtnl_route_put(route);
  if (err < 0 && err != -NLE_EXIST) Fail("cannot add the default route via " + gateway, err);
}

void DeleteLink(Socket& s, const std::string& name) {
  LinkPtr link;
  if (rtnl_link_get_kernel(s.sk, 0, name.c_str(), &link.p) < 0) return;
  if (int err = rtnl_link_delete(s.sk, link.p);
      err < 0 && err != -NLE_NODEV && err != -NLE_OBJ_NOTFOUND) {
    Fail("cannot delete " + name, err);
  }
}

namespace {

void OnThread(const std::function<void()>& f) {
  std::exception_ptr error;
  std::thread t([&] {
    try {
      f();
    } catch (...) {
      error = std::current_exception();
    }
  });
  t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace

void InNewNamespace(const std::string& path, const std::function<void()>& f) {
  OnThread([&] {
    { std::ofstream(path, std::ios::trunc); }  // the mount point
    if (unshare(CLONE_NEWNET) != 0) {
      throw std::runtime_error(std::string("cannot create a network namespace: ") +
                               strerror(errno));
    }
    const std::string self = "/proc/self/task/" + std::to_string(gettid()) + "/ns/net";
    if (mount(self.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      throw std::runtime_error("cannot bind the network namespace at " + path + ": " +
                               strerror(errno));
    }
    f();
  });
}

void InNamespace(const std::string& path, const std::function<void()>& f) {
  OnThread([&] {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("cannot open the network namespace " + path);
    const int rc = setns(fd, CLONE_NEWNET);
    close(fd);
    if (rc != 0) {
      throw std::runtime_error("cannot enter the network namespace " + path + ": " +
                               strerror(errno));
    }
    f();
  });
}

}  // namespace skep::dataplane::netlink
