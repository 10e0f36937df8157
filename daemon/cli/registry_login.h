// Registry logins in Docker's client config ($DOCKER_CONFIG/config.json, else
// ~/.docker/config.json), so that `skep login` and `docker login` share them: the "auths" map,
// each entry's "auth" being base64("user:password"). Docker Hub's entry is
// "https://index.docker.io/v1/", any other registry's its host[:port]. Credential helpers
// ("credsStore", "credHelpers") are not run.
#pragma once

#include <optional>
#include <string>

#include "objects.pb.h"

namespace skep::cli {

std::string DockerConfigPath();
// The key of `server`'s entry ("" or a Docker Hub name: Docker Hub's).
std::string LoginKey(const std::string& server);
// The stored login for the registry of `image` (a reference as `service create` takes it), or
// nullopt. Throws UsageError for a config file that cannot be read or parsed.
std::optional<api::RegistryAuth> StoredLoginForImage(const std::string& image);

}  // namespace skep::cli
