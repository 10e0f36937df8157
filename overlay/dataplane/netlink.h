// Small helpers over libnl for the node's networking (task namespaces, overlay sandboxes):
// a route socket, links by name, addresses, routes, neighbours, and running code inside a
// network namespace. Every call acts in the network namespace of the calling thread and
// throws std::runtime_error naming the step that failed.
#pragma once

#include <functional>
#include <string>

struct nl_sock;
struct rtnl_link;

namespace skep::dataplane::netlink {

[[noreturn]] void Fail(const std::string& what, int err);

// A netlink route socket in the network namespace of the calling thread.
struct Socket {
  nl_sock* sk = nullptr;
  Socket();
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
};

struct LinkPtr {
  rtnl_link* p = nullptr;
  LinkPtr() = default;
  LinkPtr(const LinkPtr&) = delete;
  LinkPtr& operator=(const LinkPtr&) = delete;
  ~LinkPtr();
};

// 0 when there is no such interface.
int IfIndex(Socket& s, const std::string& name);
// Brings the interface up, optionally enslaved to `master` and with an MTU (0: unchanged).
void SetUp(Socket& s, const std::string& name, int master = 0, int mtu = 0);
void AddAddress(Socket& s, const std::string& ifname, const std::string& cidr);
void AddDefaultRoute(Socket& s, const std::string& ifname, const std::string& gateway);
// Deletes the interface if it exists.
void DeleteLink(Socket& s, const std::string& name);

// Runs `f` on a thread of its own that has entered a new network namespace, bound at `path`
// (a bind mount keeps it alive). The rest of skepd stays where it is.
void InNewNamespace(const std::string& path, const std::function<void()>& f);
// Runs `f` on a thread of its own inside the network namespace at `path`.
void InNamespace(const std::string& path, const std::function<void()>& f);

}  // namespace skep::dataplane::netlink
