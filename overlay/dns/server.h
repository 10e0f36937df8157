// The embedded DNS server tasks reach at 127.0.0.11:53 (as with Docker): one per skepd,
// listening inside each task's network namespace, answering service and task names from the
// Names it is given (overlay/dns/resolver.h) and forwarding everything else to the node's
// upstream resolvers.
//
// Listening: AddListener enters the namespace on a short-lived thread (setns), creates and
// binds a UDP and a TCP socket to 127.0.0.11:53 there, and hands the descriptors back; a
// socket stays in the namespace it was created in, so they are then served by the caller's
// io_context like any other. The namespace's loopback must be up.
//
// Forwarding: from sockets in skepd's own namespace (the host's, where the upstreams in the
// host's resolv.conf are reachable, 127.0.0.53 included). The client's message is sent as it
// came except for a fresh random id, over the transport the client used: UDP for UDP clients,
// a new TCP connection for TCP clients (so a large answer that a UDP client got truncated
// arrives whole when it retries over TCP). Upstreams are tried in order, each for
// `upstream_timeout`; a SERVFAIL or REFUSED moves on to the next one and is relayed only when
// no later upstream answers. The reply goes back with the client's id; a UDP reply longer than
// the client takes is replaced by an empty one with TC set. No upstream, every upstream timed
// out, or more than `max_in_flight` forwarded queries pending → SERVFAIL.
//
// TCP: a connection carries any number of queries, answered one after the other (a query is
// read only after the previous reply is written). A connection idle for `tcp_idle_timeout`,
// or whose reply is not taken within it, is closed; connections beyond
// `max_tcp_per_listener` are closed as soon as they are accepted.
//
// Threads: every public method may be called from any thread. The server's state lives on one
// strand of the io_context; SetNames and RemoveListener post to it and return at once, so
// the sockets of a removed listener close shortly after RemoveListener returns (until then a
// new listener in the same namespace cannot bind). Destroying the server closes everything;
// the io_context must outlive it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "overlay/dns/resolver.h"

namespace skep::dns {

struct DnsServerOptions {
  std::chrono::milliseconds upstream_timeout{2000};
  size_t max_in_flight = 1024;
  size_t max_tcp_per_listener = 16;
  std::chrono::milliseconds tcp_idle_timeout{10000};
};

class DnsServer {
 public:
  // `upstreams`: "ip", "ip:port" or "[v6]:port" (port 53 when none). Throws
  // std::invalid_argument naming an entry that is none of these.
  DnsServer(boost::asio::io_context& io, std::vector<std::string> upstreams,
            DnsServerOptions options = {});
  ~DnsServer();
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // The nameservers of a resolv.conf, in order, without 127.0.0.11 (ourselves, as a task sees
  // it). A file that cannot be read gives none.
  static std::vector<std::string> UpstreamsFromResolvConf(const std::string& path);

  // Starts answering in the network namespace bound at `netns_path` (e.g. /run/netns/x), for
  // the names SetNames gives `id` (none yet: everything is forwarded). A listener already
  // under `id` is replaced. Blocks while the sockets are made; throws std::runtime_error
  // naming the namespace and the system's reason when it cannot enter it or bind there.
  void AddListener(const std::string& id, const std::string& netns_path);
  // The names listener `id` answers for, from now on; may come before AddListener.
  void SetNames(const std::string& id, std::shared_ptr<const Names> names);
  // Closes the listener's sockets and its TCP connections, and forgets its names.
  void RemoveListener(const std::string& id);

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace skep::dns
