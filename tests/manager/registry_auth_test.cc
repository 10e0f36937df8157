#include <catch2/catch.hpp>

#include "daemon/executor/image_ref.h"
#include "daemon/manager/registry_auth.h"

using namespace skep;
using namespace skep::manager;

TEST_CASE("a service's registry login is sealed, opens only with its key, and is checked",
          "[registry-auth]") {
  api::RegistryAuth auth;
  auth.set_server("10.0.0.5:5443");
  auth.set_username("skep");
  auth.set_password("secret");
  const std::string key = NewRegistryAuthKey();
  REQUIRE(key.size() == 32);
  const std::string sealed = SealRegistryAuth(key, auth);
  CHECK(sealed.find("secret") == std::string::npos);
  CHECK(sealed.find("skep") == std::string::npos);
  auto opened = OpenRegistryAuth(key, sealed);
  REQUIRE(opened);
  CHECK(opened->SerializeAsString() == auth.SerializeAsString());
  // Two seals of one login differ (a fresh nonce each).
  CHECK(SealRegistryAuth(key, auth) != sealed);

  CHECK_FALSE(OpenRegistryAuth(NewRegistryAuthKey(), sealed));  // another key
  std::string damaged = sealed;
  damaged[damaged.size() / 2] ^= 1;
  CHECK_FALSE(OpenRegistryAuth(key, damaged));
  CHECK_FALSE(OpenRegistryAuth(key, sealed.substr(0, 10)));
  CHECK_FALSE(OpenRegistryAuth("", sealed));  // a cluster without a key opens nothing
  CHECK_THROWS_AS(SealRegistryAuth("short", auth), std::invalid_argument);

  CHECK(CheckRegistryAuth(auth).empty());
  api::RegistryAuth no_user = auth;
  no_user.clear_username();
  CHECK(CheckRegistryAuth(no_user) == "the registry login for 10.0.0.5:5443 has no user name");
  api::RegistryAuth no_server = auth;
  no_server.clear_server();
  CHECK(CheckRegistryAuth(no_server) == "the registry login names no registry");
}

TEST_CASE("logins name registries as image references do", "[registry-auth]") {
  using executor::RegistryDomain;
  CHECK(RegistryDomain("https://index.docker.io/v1/") == "docker.io");
  CHECK(RegistryDomain("index.docker.io") == "docker.io");
  CHECK(RegistryDomain("registry-1.docker.io") == "docker.io");
  CHECK(RegistryDomain("docker.io") == "docker.io");
  CHECK(RegistryDomain("10.0.0.5:5443") == "10.0.0.5:5443");
  CHECK(RegistryDomain("https://10.0.0.5:5443/") == "10.0.0.5:5443");
  CHECK(RegistryDomain("http://registry.example.com/v2/") == "registry.example.com");
  CHECK(RegistryDomain("").empty());
  CHECK(RegistryDomain(executor::ParseImageRef("skep/web:1").domain) == "docker.io");
}
