// Addresses as users type them (ip, ip:port, [v6]:port) and how a node picks its own.
#pragma once

#include <optional>
#include <string>

namespace skep::net {

struct HostPort {
  std::string host;
  int port = 0;
  std::string ToString() const;  // host:port, with brackets for IPv6
};

// Parses "ip", "ip:port" or "[v6]:port"; `default_port` fills a missing port. Returns nullopt
// with `error` set when the text is not an IP address with an optional port (1-65535).
std::optional<HostPort> ParseHostPort(const std::string& text, int default_port,
                                      std::string* error);

// The address of network interface `name` on this machine: its IPv4 address, or its IPv6
// address (not link-local) when it has no IPv4 one. nullopt with `error` set when there is
// no such interface, it has no usable address, or it has several of the kind to choose from.
std::optional<std::string> InterfaceAddress(const std::string& name, std::string* error);

// As ParseHostPort, and also an interface's name with an optional port ("eth0", "eth0:2377"),
// which stands for InterfaceAddress(name).
std::optional<HostPort> ResolveHostPort(const std::string& text, int default_port,
                                        std::string* error);

// The local address the kernel would use to reach `remote_ip` (no packet is sent).
std::optional<std::string> LocalAddressToward(const std::string& remote_ip);
// The address of the interface holding the default route, if any.
std::optional<std::string> DefaultRouteAddress();

}  // namespace skep::net
