// A Docker/OCI distribution (registry v2) client: resolve a reference to a descriptor, fetch
// manifests and stream blobs, with token (Bearer) and Basic auth, docker.io mirrors and
// insecure (plain HTTP) registries. Thread-safe; every call blocks.
//
// Errors carry the registry's own answer ("manifest unknown: manifest unknown",
// "unauthorized: authentication required") and the request, or name the host that could not be
// reached ("cannot reach registry 10.88.0.1:5000: connection refused"); see ExecutorError's
// kinds: kNotFound (404), kUnauthorized (401/403), kUnavailable (transport, 429, 5xx).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/executor/image.h"
#include "daemon/executor/image_ref.h"
#include "daemon/executor/manifest.h"

namespace skep::executor {

struct RegistryCredentials {
  std::string username;
  std::string password;
};

struct RegistryConfig {
  // host[:port] of registries spoken to over plain HTTP (every other one gets verified HTTPS).
  std::vector<std::string> insecure;
  // Mirrors of docker.io as URLs ("http://10.88.0.1:5000"), tried in order before docker.io.
  std::vector<std::string> mirrors;
  // By host[:port] as written in references ("docker.io" for Docker Hub) or a mirror's host.
  std::map<std::string, RegistryCredentials> credentials;
  std::string ca_file;  // PEM bundle trusted besides the system's CAs (private registries)
  std::chrono::seconds timeout{30};
};

// One challenge of a WWW-Authenticate header: scheme in lower case ("bearer", "basic"),
// parameter names in lower case, values unquoted.
struct AuthChallenge {
  std::string scheme;
  std::map<std::string, std::string> params;
};
std::vector<AuthChallenge> ParseWwwAuthenticate(std::string_view header);

class Registry {
 public:
  explicit Registry(RegistryConfig config);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // What the tag or digest names now (HEAD manifests/<ref>, a GET when the answer lacks the
  // digest, size or type).
  Descriptor Resolve(const ImageRef& ref);
  // The manifest or index `desc` names, checked against its digest.
  std::string FetchManifest(const ImageRef& ref, const Descriptor& desc);
  // The platforms the image `desc` (as Resolve answered) runs on: an index's manifests', or a
  // single manifest's config's.
  std::vector<Platform> Platforms(const ImageRef& ref, const Descriptor& desc);
  // Streams blob `desc` from byte `offset` (to resume a partial download) to `on_chunk`, with
  // each chunk's position in the blob: a registry that ignores the range starts again at 0.
  // The data is not verified here (containerd checks the digest on commit).
  void FetchBlob(const ImageRef& ref, const Descriptor& desc, int64_t offset,
                 const std::function<void(int64_t at, std::string_view chunk)>& on_chunk);
  // Checks the credentials configured for registry `domain` (host[:port], "docker.io"), as
  // `docker login` does: GET /v2/ of the registry itself (never a mirror), its challenge
  // answered with them. Throws ExecutorError, kUnauthorized with the registry's answer when it
  // refuses them; a registry that asks for nothing accepts any.
  void Login(const std::string& domain);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace skep::executor
