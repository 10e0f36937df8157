// What a new swarm starts with (`swarm init`): its root CA and join tokens, the cluster object
// with the settings given, the first gossip key, the routing mesh's ingress network, the first
// manager's node object and its certificate. Pure but for the keys it generates; the node writes
// the certificate before it starts the manager with these objects.
#pragma once

#include <string>
#include <vector>

#include "control.pb.h"
#include "daemon/common/status.h"
#include "objects.pb.h"

namespace skep::manager {

struct NewSwarm {
  api::Cluster cluster;
  api::Node node;  // the first manager
  std::vector<api::Network> networks;
  std::string node_key_pem;
  std::string node_cert_pem;
  std::string ca_cert_pem;
  // The objects as the store's first batch.
  std::vector<api::StoreAction> Objects() const;
};

// Checks the init request's settings (address pools, data path port) and makes the swarm.
// kInvalidArgument names what is wrong; kInternal if the keys cannot be made.
Status Bootstrap(const api::InitRequest& req, const std::string& node_id, uint64_t raft_id,
                 const std::string& advertise_addr, const api::NodeDescription& description,
                 int64_t now_ns, NewSwarm* out);

}  // namespace skep::manager
