// Registry logins given to services (`--with-registry-auth`), as the store keeps them: sealed
// with the cluster's registry auth key (AES-256-GCM, gossip's seal layout), so that the raft
// log, snapshots and service objects never hold a password in clear. The key is in the store
// too (Cluster.registry_auth_key, stripped from every answer), as the CA's key is: whoever
// holds a manager's raft data holds both, as with Docker's swarm when it is not locked.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "objects.pb.h"

namespace skep::manager {

// What is wrong with a login a client sent, or "" (a server and a user name are needed).
std::string CheckRegistryAuth(const api::RegistryAuth& auth);
// A new random key for Cluster.registry_auth_key.
std::string NewRegistryAuthKey();
// Throws std::invalid_argument for a key that is not 32 bytes.
std::string SealRegistryAuth(const std::string& key, const api::RegistryAuth& auth);
// The login, or nullopt when the key does not open it (another key, damaged).
std::optional<api::RegistryAuth> OpenRegistryAuth(const std::string& key, std::string_view sealed);
}  // namespace skep::manager
