// Names for the tasks on overlay networks: the embedded DNS server at 127.0.0.11 in each such
// task's namespace (overlay/dns/server.h), answering the names the service mesh computes for
// it and forwarding the rest to this node's resolvers, and the resolv.conf that points the
// task there.
//
// Threads: OnNames is called by the service mesh's Apply, one call at a time (on the worker's
// pool), and owns the set of listeners; WriteResolvConf may run on any thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <set>
#include <string>

#include "overlay/dataplane/service_mesh.h"
#include "overlay/dns/server.h"

namespace skep::node {

class TaskDns {
 public:
  // `io` runs the server's sockets and outlives it.
  explicit TaskDns(boost::asio::io_context& io);

  // The mesh's report for task `id`: its names (the listener in `netns` starts with the first),
  // or with `gone`, that its namespace went.
  void OnNames(const std::string& id, const std::string& netns,
               const dataplane::ServiceMesh::Names& names, bool gone);

  // Writes <dir>/resolv.conf for a task: the embedded server, with the host's search domains.
  // Returns its path.
  static std::string WriteResolvConf(const std::string& dir);

 private:
  dns::DnsServer server_;
  std::set<std::string> listening_;  // tasks with a listener; owned by the calls to OnNames
};

}  // namespace skep::node
