#include <catch2/catch.hpp>

#include "daemon/executor/errors.h"
#include "daemon/executor/http_client.h"
#include "daemon/executor/registry.h"

using namespace skep::executor;

TEST_CASE("a Docker Hub bearer challenge yields its realm and service and scope", "[registry]") {
  auto c = ParseWwwAuthenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull")");
  REQUIRE(c.size() == 1);
  CHECK(c[0].scheme == "bearer");
  CHECK(c[0].params.at("realm") == "https://auth.docker.io/token");
  CHECK(c[0].params.at("service") == "registry.docker.io");
  CHECK(c[0].params.at("scope") == "repository:library/busybox:pull");
}

TEST_CASE("several challenges in one header are told apart", "[registry]") {
  auto c = ParseWwwAuthenticate(
      R"(Basic realm="Registry Realm", Bearer realm="https://a/t", service=svc,error="invalid_token")");
  REQUIRE(c.size() == 2);
  CHECK(c[0].scheme == "basic");
  CHECK(c[0].params.at("realm") == "Registry Realm");
  CHECK(c[1].scheme == "bearer");
  CHECK(c[1].params.at("realm") == "https://a/t");
  CHECK(c[1].params.at("service") == "svc");  // unquoted values are allowed
  CHECK(c[1].params.at("error") == "invalid_token");
}

TEST_CASE("challenge parsing is case-insensitive in names and keeps quoted commas", "[registry]") {
  auto c = ParseWwwAuthenticate(
      R"(BEARER Realm="https://x/token?a=1,b=2" ,  Scope = "repository:a/b:pull,push")");
  REQUIRE(c.size() == 1);
  CHECK(c[0].scheme == "bearer");
  CHECK(c[0].params.at("realm") == "https://x/token?a=1,b=2");
  CHECK(c[0].params.at("scope") == "repository:a/b:pull,push");
  auto escaped = ParseWwwAuthenticate(R"(Basic realm="say \"hi\"")");
  REQUIRE(escaped.size() == 1);
  CHECK(escaped[0].params.at("realm") == "say \"hi\"");
  auto bare = ParseWwwAuthenticate("Basic");
  REQUIRE(bare.size() == 1);
  CHECK(bare[0].scheme == "basic");
  CHECK(bare[0].params.empty());
  CHECK(ParseWwwAuthenticate("").empty());
}

TEST_CASE("URLs split into scheme and host and port and target", "[registry]") {
  Url u = Url::Parse("http://10.88.0.1:5000");
  CHECK(u.scheme == "http");
  CHECK(u.host == "10.88.0.1");
  CHECK(u.port == "5000");
  CHECK(u.target == "/");
  CHECK(u.HostPort() == "10.88.0.1:5000");
  Url h = Url::Parse("https://auth.docker.io/token?service=x");
  CHECK(h.port == "443");
  CHECK(h.target == "/token?service=x");
  CHECK(h.HostPort() == "auth.docker.io");
  Url v6 = Url::Parse("https://[::1]:5443/v2/");
  CHECK(v6.host == "::1");
  CHECK(v6.HostPort() == "[::1]:5443");
  CHECK_THROWS_WITH(Url::Parse("ftp://x"), Catch::Contains("scheme must be http or https"));
  CHECK_THROWS_WITH(Url::Parse("10.0.0.1:5000"), Catch::Contains("invalid URL"));
}

TEST_CASE("redirect locations resolve against the request URL", "[registry]") {
  Url base = Url::Parse("https://registry-1.docker.io/v2/library/busybox/blobs/sha256:ab");
  CHECK(base.Resolve("https://cdn.example.com/blob?sig=1").String() ==
        "https://cdn.example.com/blob?sig=1");
  CHECK(base.Resolve("/other/path").String() == "https://registry-1.docker.io/other/path");
  CHECK(base.Resolve("sibling").String() ==
        "https://registry-1.docker.io/v2/library/busybox/blobs/sibling");
  CHECK(base.Resolve("//cdn.example.com/x").String() == "https://cdn.example.com/x");
}

TEST_CASE("a registry that cannot be reached is named in the error", "[registry]") {
  // Port 1 on loopback: nothing listens there, so the connection is refused at once.
  Registry registry(RegistryConfig{{"127.0.0.1:1"}, {}, {}, {}, std::chrono::seconds(5)});
  try {
    registry.Resolve(ParseImageRef("127.0.0.1:1/skep/web:1"));
    FAIL("expected an error");
  } catch (const ExecutorError& e) {
    CHECK(e.kind() == ErrorKind::kUnavailable);
    CHECK(std::string(e.what()) == "cannot reach registry 127.0.0.1:1: connection refused");
  }
}
