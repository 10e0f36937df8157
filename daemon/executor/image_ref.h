// Docker image references, normalized the way `docker pull` reads them:
//   busybox                      -> docker.io/library/busybox:latest
//   skep/web:1                   -> docker.io/skep/web:1
//   10.88.0.1:5000/x/y:tag       -> 10.88.0.1:5000/x/y:tag
//   name@sha256:<64 hex>         -> docker.io/library/name@sha256:...
//   name:tag@sha256:<64 hex>     -> docker.io/library/name:tag@sha256:... (the digest wins)
// The first path component is a registry host when it contains '.' or ':' or is "localhost".
#pragma once

#include <string>
#include <string_view>

namespace skep::executor {

struct ImageRef {
  std::string domain;  // "docker.io", "10.88.0.1:5000", "localhost"
  std::string path;    // "library/busybox", "x/y"
  std::string tag;     // empty only when a digest is given
  std::string digest;  // "sha256:<hex>" or empty

  // "docker.io/library/busybox"
  std::string Name() const { return domain + "/" + path; }
  // The fully normalized reference: name[:tag][@digest]. This is the image's name in containerd.
  std::string String() const;
  // Tag or digest as the registry's manifests/<reference> wants it (the digest when both).
  std::string Reference() const { return digest.empty() ? tag : digest; }
  // The same repository pinned to a digest: name@digest (tag dropped).
  ImageRef WithDigest(std::string d) const;
};

// Throws ExecutorError(kInvalidArgument) naming the reference and what is wrong with it.
ImageRef ParseImageRef(std::string_view ref);

// The registry a login names, as references name registries (ImageRef::domain): the scheme and
// any path dropped, "docker.io" for Docker Hub's names ("https://index.docker.io/v1/",
// "index.docker.io", "registry-1.docker.io"); "" for an empty name.
std::string RegistryDomain(std::string_view server);

}  // namespace skep::executor
