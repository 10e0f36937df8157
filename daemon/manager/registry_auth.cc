#include "daemon/manager/registry_auth.h"

#include "daemon/executor/image_ref.h"
#include "daemon/common/pki.h"
#include "overlay/gossip/keyring.h"

namespace skep::manager {

std::string CheckRegistryAuth(const api::RegistryAuth& auth) {
  if (executor::RegistryDomain(auth.server()).empty()) return "the registry login names no registry";
  if (auth.username().empty()) return "the registry login for " + auth.server() + " has no user name";
  return "";
}

std::string NewRegistryAuthKey() { return pki::RandomBytes(gossip::kKeyBytes); }

std::string SealRegistryAuth(const std::string& key, const api::RegistryAuth& auth) {
  return gossip::Keyring({key}).Seal(auth.SerializeAsString());
}

std::optional<api::RegistryAuth> OpenRegistryAuth(const std::string& key, std::string_view sealed) {
  if (key.size() != gossip::kKeyBytes) return std::nullopt;
  std::optional<std::string> plain = gossip::Keyring({key}).Open(sealed);
  api::RegistryAuth auth;
  if (!plain || !auth.ParseFromString(*plain)) return std::nullopt;
  return auth;
}

}  // namespace skep::manager
