#include "daemon/common/netutil.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace skep::net {

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

namespace {

// `port` of the address `text` (empty: `default_port`) into *out.
bool ParsePort(const std::string& text, const std::string& port, int default_port, int* out,
               std::string* error) {
  if (port.empty()) {
    *out = default_port;
    return true;
  }
  char* end = nullptr;
  const long p = std::strtol(port.c_str(), &end, 10);
  if (*end != '\0' || p < 1 || p > 65535) {
    *error = "invalid address \"" + text + "\": bad port \"" + port + "\"";
    return false;
  }
  *out = static_cast<int>(p);
  return true;
}

bool IsIp(const std::string& host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

std::optional<HostPort> ParseHostPort(const std::string& text, int default_port,
                                      std::string* error) {
  HostPort hp;
  std::string port;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos) {
      *error = "invalid address \"" + text + "\": missing ']'";
      return std::nullopt;
    }
    hp.host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') {
        *error = "invalid address \"" + text + "\"";
        return std::nullopt;
      }
      port = text.substr(close + 2);
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    hp.host = text.substr(0, text.find(':'));
    port = text.substr(text.find(':') + 1);
  } else {
    hp.host = text;
  }
  if (!IsIp(hp.host)) {
    *error = "invalid address \"" + text + "\": \"" + hp.host + "\" is not an IP address";
    return std::nullopt;
  }
  if (!ParsePort(text, port, default_port, &hp.port, error)) return std::nullopt;
  return hp;
}

std::optional<std::string> InterfaceAddress(const std::string& name, std::string* error) {
  if (name.empty() || name.size() >= IF_NAMESIZE || if_nametoindex(name.c_str()) == 0) {
    *error = "no network interface \"" + name + "\" on this machine";
    return std::nullopt;
  }
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) {
    *error = std::string("cannot list the network interfaces: ") + std::strerror(errno);
    return std::nullopt;
  }
  std::vector<std::string> v4, v6;
  for (const ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || name != a->ifa_name) continue;
    char ip[INET6_ADDRSTRLEN];
    if (a->ifa_addr->sa_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
      if (inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip))) v4.push_back(ip);
    } else if (a->ifa_addr->sa_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a->ifa_addr);
      if (IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr)) continue;
      if (inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip))) v6.push_back(ip);
    }
  }
  freeifaddrs(list);
  const std::vector<std::string>& found = v4.empty() ? v6 : v4;
  if (found.empty()) {
    *error = "network interface \"" + name + "\" has no usable IPv4 or IPv6 address";
    return std::nullopt;
  }
  if (found.size() > 1) {
    *error = "network interface \"" + name + "\" has more than one " +
             (v4.empty() ? "IPv6" : "IPv4") + " address (" + found[0] + " and " + found[1] +
             "): give the address instead";
    return std::nullopt;
  }
  return found[0];
}

std::optional<HostPort> ResolveHostPort(const std::string& text, int default_port,
                                        std::string* error) {
  if (text.empty() || text[0] == '[' || std::count(text.begin(), text.end(), ':') > 1) {
    return ParseHostPort(text, default_port, error);
  }
  const size_t colon = text.find(':');
  const std::string host = text.substr(0, colon);
  if (IsIp(host)) return ParseHostPort(text, default_port, error);
  if (host.empty() || host.size() >= IF_NAMESIZE || if_nametoindex(host.c_str()) == 0) {
    *error = "invalid address \"" + text + "\": \"" + host +
             "\" is neither an IP address nor a network interface of this machine";
    return std::nullopt;
  }
  HostPort hp;
  const std::string port = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (!ParsePort(text, port, default_port, &hp.port, error)) return std::nullopt;
  const std::optional<std::string> ip = InterfaceAddress(host, error);
  if (!ip) return std::nullopt;
  hp.host = *ip;
  return hp;
}

std::optional<std::string> LocalAddressToward(const std::string& remote_ip) {
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(9);
  if (inet_pton(AF_INET, remote_ip.c_str(), &remote.sin_addr) != 1) return std::nullopt;
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return std::nullopt;
  std::optional<std::string> out;
  // Connecting a UDP socket only asks the kernel for a route: nothing is sent.
  if (connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof(remote)) == 0) {
    sockaddr_in local{};
    socklen_t len = sizeof(local);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
      char ip[INET_ADDRSTRLEN];
      if (inet_ntop(AF_INET, &local.sin_addr, ip, sizeof(ip))) out = ip;
    }
  }
  close(fd);
  return out;
}

std::optional<std::string> DefaultRouteAddress() {
  // Any address outside the local networks follows the default route.
  return LocalAddressToward("192.0.2.1");
}

}  // namespace skep::net
