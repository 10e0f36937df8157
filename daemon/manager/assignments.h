// What one node's dispatcher session has been sent, and its next message: the first lists every
// task of the node (a full resync: a new session after every reconnection starts from a fresh
// Assignments), later ones only the tasks whose version changed in a way the node sees, and the
// IDs of those that are no longer the node's; with the node's own object, its networks, the
// swarm's gossip keys and the registry logins of the services it runs tasks of. Pure: a read of
// the store in, a message out.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "daemon/manager/store.h"
#include "dispatcher.pb.h"

namespace skep::manager {

class Assignments {
 public:
  explicit Assignments(std::string node_id) : node_id_(std::move(node_id)) {}

  // Adds the node's part to `msg` (whose session fields the caller filled in): its object and
  // tasks as `tx` has them. False when the node would learn nothing new from it.
  bool Next(const ReadTx& tx, api::SessionMessage* msg);

 private:
  struct Sent {
    uint64_t version = 0;  // of the store's task
    std::string bytes;     // the task as last sent
  };
  const std::string node_id_;
  bool first_ = true;                  // the next message is the full list
  std::map<std::string, Sent> sent_;   // by task ID
  std::string header_;                 // the rest of the last message, as sent
};

}  // namespace skep::manager
