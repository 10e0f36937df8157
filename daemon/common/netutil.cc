#include "daemon/common/netutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace skep::net {

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

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
  unsigned char buf[sizeof(struct in6_addr)];
  if (inet_pton(AF_INET, hp.host.c_str(), buf) != 1 &&
      inet_pton(AF_INET6, hp.host.c_str(), buf) != 1) {
    *error = "invalid address \"" + text + "\": \"" + hp.host + "\" is not an IP address";
    return std::nullopt;
  }
  if (port.empty()) {
    hp.port = default_port;
  } else {
    char* end = nullptr;
    const long p = std::strtol(port.c_str(), &end, 10);
    if (*end != '\0' || p < 1 || p > 65535) {
      *error = "invalid address \"" + text + "\": bad port \"" + port + "\"";
      return std::nullopt;
    }
    hp.port = static_cast<int>(p);
  }
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
