// What skepd is on one machine: the local control socket for `skep`, the node (node/node.h)
// and, on managers, the manager (manager/manager.h), composed here and nowhere else. It
// creates a swarm (init, with the manager's bootstrap), joins one (join), leaves, switches
// between worker and manager when the swarm promotes or demotes the node, and resumes all of
// that after a restart.
//
// Where it runs: the host's state (the swarm it belongs to, the node, the manager) is owned by
// its strand; the control socket's services are on gRPC's callback API and post there. What
// blocks (opening the raft log, making the swarm's CA, stopping the worker, a registry login,
// writing the state) runs on the host's blocking pool and posts its outcome back. One swarm
// operation (init, join, leave, a role change) at a time: another one meanwhile is refused.
#pragma once

#include <memory>

#include "daemon/node/node.h"

namespace skep::host {

class Host {
 public:
  explicit Host(node::NodeOptions options);
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  // Resumes the node's role from its data directory and opens the control socket. Throws
  // std::runtime_error with a message for the operator.
  void Start();
  void Stop();

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace skep::host
