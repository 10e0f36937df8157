#include <catch2/catch.hpp>

#include "daemon/executor/errors.h"
#include "daemon/executor/image_ref.h"

using namespace skep::executor;

namespace {
const std::string kDigest =
    "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

std::string Normalized(const std::string& ref) {
  return ParseImageRef(ref).String();
}

std::string ErrorOf(const std::string& ref) {
  try {
    ParseImageRef(ref);
  } catch (const ExecutorError& e) {
    CHECK(e.kind() == ErrorKind::kInvalidArgument);
    return e.what();
  }
  return "(no error)";
}
}  // namespace

TEST_CASE("a bare name is a docker.io library image at tag latest", "[image_ref]") {
  ImageRef r = ParseImageRef("busybox");
  CHECK(r.domain == "docker.io");
  CHECK(r.path == "library/busybox");
  CHECK(r.tag == "latest");
  CHECK(r.digest.empty());
  CHECK(r.String() == "docker.io/library/busybox:latest");
  CHECK(r.Name() == "docker.io/library/busybox");
  CHECK(r.Reference() == "latest");
}

TEST_CASE("a user/repo name is on docker.io without the library prefix", "[image_ref]") {
  CHECK(Normalized("skep/web:1") == "docker.io/skep/web:1");
  CHECK(Normalized("docker.io/skep/web:1") == "docker.io/skep/web:1");
  CHECK(Normalized("index.docker.io/library/nginx") == "docker.io/library/nginx:latest");
  CHECK(Normalized("docker.io/nginx") == "docker.io/library/nginx:latest");
}

TEST_CASE("a first component with a dot or a port or named localhost is a registry host",
          "[image_ref]") {
  ImageRef r = ParseImageRef("10.88.0.1:5000/x/y:tag");
  CHECK(r.domain == "10.88.0.1:5000");
  CHECK(r.path == "x/y");
  CHECK(r.tag == "tag");
  CHECK(Normalized("localhost/app") == "localhost/app:latest");
  CHECK(Normalized("localhost:5000/app:2") == "localhost:5000/app:2");
  CHECK(Normalized("registry.example.com/team/app:v1.2-rc") ==
        "registry.example.com/team/app:v1.2-rc");
  CHECK(Normalized("[::1]:5000/app") == "[::1]:5000/app:latest");
  // A port-less name is not confused with a tag.
  CHECK(ParseImageRef("127.0.0.1:5000/app").tag == "latest");
}

TEST_CASE("digest references keep the digest and drop the default tag", "[image_ref]") {
  ImageRef r = ParseImageRef("busybox@" + kDigest);
  CHECK(r.tag.empty());
  CHECK(r.digest == kDigest);
  CHECK(r.String() == "docker.io/library/busybox@" + kDigest);
  CHECK(r.Reference() == kDigest);

  ImageRef both = ParseImageRef("10.88.0.1:5000/skep/web:1@" + kDigest);
  CHECK(both.tag == "1");
  CHECK(both.digest == kDigest);
  CHECK(both.Reference() == kDigest);  // the digest wins at the registry
  CHECK(both.String() == "10.88.0.1:5000/skep/web:1@" + kDigest);
  CHECK(both.WithDigest(kDigest).String() == "10.88.0.1:5000/skep/web@" + kDigest);
}

TEST_CASE("separators inside repository names follow Docker's grammar", "[image_ref]") {
  CHECK(Normalized("x/a.b_c__d-e---f") == "docker.io/x/a.b_c__d-e---f:latest");
  CHECK_THAT(ErrorOf("a..b"), Catch::Contains("invalid repository name component \"a..b\""));
  CHECK_THAT(ErrorOf("a___b"), Catch::Contains("invalid repository name component"));
  CHECK_THAT(ErrorOf("-a"), Catch::Contains("invalid repository name component"));
  CHECK_THAT(ErrorOf("a/"), Catch::Contains("invalid repository name component \"\""));
}

TEST_CASE("invalid references are refused with a reason", "[image_ref]") {
  CHECK_THAT(ErrorOf(""), Catch::Contains("empty reference"));
  CHECK_THAT(ErrorOf("Busybox"), Catch::Contains("repository name must be lowercase"));
  CHECK_THAT(ErrorOf("skep/Web"), Catch::Contains("repository name must be lowercase"));
  CHECK_THAT(ErrorOf("busybox:"), Catch::Contains("invalid tag \"\""));
  CHECK_THAT(ErrorOf("busybox:-x"), Catch::Contains("invalid tag \"-x\""));
  CHECK_THAT(ErrorOf("busybox:" + std::string(129, 'a')), Catch::Contains("invalid tag"));
  CHECK_THAT(ErrorOf("busybox@sha256:1234"), Catch::Contains("invalid digest \"sha256:1234\""));
  CHECK_THAT(ErrorOf("busybox@md5:" + std::string(32, 'a')),
             Catch::Contains("unsupported digest algorithm \"md5\""));
  CHECK_THAT(ErrorOf("busybox@sha256:" + std::string(64, 'A')), Catch::Contains("invalid digest"));
  CHECK_THAT(ErrorOf("https://docker.io/busybox"), Catch::Contains("no scheme"));
  CHECK_THAT(ErrorOf("bad_host:5000/app"),
             Catch::Contains("invalid registry host \"bad_host:5000\""));
  CHECK_THAT(ErrorOf("host:port/app"), Catch::Contains("invalid registry host"));
  CHECK_THAT(ErrorOf("busy box"), Catch::Contains("whitespace"));
  CHECK_THAT(ErrorOf(":tag"), Catch::Contains("missing repository name"));
  CHECK_THAT(ErrorOf("a/" + std::string(300, 'b')), Catch::Contains("more than 255 characters"));
  // The message names the reference.
  CHECK_THAT(ErrorOf("Busybox"), Catch::StartsWith("invalid reference \"Busybox\": "));
}
