// Joining a swarm through one of its managers, as `skep swarm join` asks: the manager's root CA
// is fetched and checked against the digest the token carries (it cannot be verified before),
// then the join itself (a new key, a certificate request, this node's description) is sent
// with the token, again when an answer was lost (the manager recognises a retried join by its
// raft id) until a deadline. Asynchronous: the calls are on gRPC's callback API and the pause
// between attempts a timer; `done` runs on the given executor.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <functional>
#include <string>

#include "ca.pb.h"
#include "control.pb.h"
#include "daemon/common/pki.h"
#include "daemon/common/status.h"

namespace skep::node {

inline constexpr int kDefaultManagerPort = 2377;

// Where a node listens and how others reach it.
struct Addresses {
  std::string listen;     // ip:port, a manager's raft and API listener
  std::string advertise;  // ip:port, what managers and nodes connect to
  std::string data_path;  // ip, the local address of its VXLAN traffic (default: advertise's)
};

// The addresses from the flags of swarm init/join (each may be an interface's name, resolved
// here). The advertise address defaults to the listen IP, or the address toward `toward` (a
// manager being joined), or the default route's. kInvalidArgument names the flag at fault.
Status ChooseAddresses(const std::string& listen_text, const std::string& advertise_text,
                       const std::string& data_path_text, const std::string& toward,
                       Addresses* out);

// A raft ID for a new member: random, never 0.
uint64_t NewRaftId();

struct Joined {
  api::JoinNodeResponse answer;  // the node's ID, role, certificate, the managers
  std::string ca_pem;            // the root CA, checked against the token
  pki::KeyAndRequest key;        // the node's new key
  uint64_t raft_id = 0;
  Addresses addresses;
};

void JoinSwarm(boost::asio::any_io_executor executor, const api::JoinRequest& req,
               const api::NodeDescription& description,
               std::function<void(const Status&, Joined)> done);

}  // namespace skep::node
