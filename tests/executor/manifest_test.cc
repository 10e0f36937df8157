#include <catch2/catch.hpp>

#include "daemon/executor/errors.h"
#include "daemon/executor/manifest.h"

using namespace skep::executor;

namespace {

std::string Digest(char c) {
  return "sha256:" + std::string(64, c);
}

std::string Entry(char digest, const std::string& arch, const std::string& variant = "",
                  const std::string& os = "linux",
                  const std::string& media = "application/vnd.oci.image.manifest.v1+json") {
  std::string platform = "{\"os\":\"" + os + "\",\"architecture\":\"" + arch + "\"" +
                         (variant.empty() ? "" : ",\"variant\":\"" + variant + "\"") + "}";
  return "{\"mediaType\":\"" + media + "\",\"digest\":\"" + Digest(digest) +
         "\",\"size\":500,\"platform\":" + platform + "}";
}

std::string Index(const std::vector<std::string>& entries) {
  std::string s =
      "{\"schemaVersion\":2,\"mediaType\":\"application/"
      "vnd.oci.image.index.v1+json\",\"manifests\":[";
  for (size_t i = 0; i < entries.size(); ++i)
    s += (i ? "," : "") + entries[i];
  return s + "]}";
}

std::string Chosen(const std::string& index, const Platform& want) {
  std::vector<IndexEntry> entries = ParseIndex(index);
  return entries[SelectManifest(entries, want)].descriptor.digest;
}

}  // namespace

TEST_CASE("the manifest for this platform is chosen from an index", "[manifest]") {
  std::string index =
      Index({Entry('a', "arm", "v6"), Entry('b', "arm", "v7"), Entry('c', "arm64", "v8"),
             Entry('d', "amd64"), Entry('e', "amd64", "", "windows")});
  CHECK(Chosen(index, {"linux", "amd64", ""}) == Digest('d'));
  CHECK(Chosen(index, {"linux", "arm64", "v8"}) == Digest('c'));
  CHECK(Chosen(index, {"linux", "arm", "v7"}) == Digest('b'));
  CHECK(Chosen(index, {"linux", "arm", "v6"}) == Digest('a'));
  CHECK(Chosen(index, {"windows", "amd64", ""}) == Digest('e'));
  // This host's own platform is in the list above.
  Platform host = HostPlatform();
  CHECK(host.os == "linux");
  CHECK_FALSE(host.architecture.empty());
}

TEST_CASE("platform selection falls back to compatible variants", "[manifest]") {
  // arm/v7 runs arm/v6 (the newer v6 beats v5); arm64 without a variant matches v8.
  CHECK(Chosen(Index({Entry('a', "arm", "v5"), Entry('b', "arm", "v6")}), {"linux", "arm", "v7"}) ==
        Digest('b'));
  CHECK(Chosen(Index({Entry('a', "arm64")}), {"linux", "arm64", "v8"}) == Digest('a'));
  CHECK(Chosen(Index({Entry('a', "arm", "v7")}), {"linux", "arm64", "v8"}) == Digest('a'));
  // An exact variant beats an unspecified one, which beats an older one.
  CHECK(Chosen(Index({Entry('a', "arm", "v6"), Entry('b', "arm"), Entry('c', "arm", "v7")}),
               {"linux", "arm", "v7"}) == Digest('c'));
  CHECK(Chosen(Index({Entry('a', "arm", "v6"), Entry('b', "arm")}), {"linux", "arm", "v7"}) ==
        Digest('b'));
}

TEST_CASE("attestation entries and foreign platforms are never chosen", "[manifest]") {
  std::string index = Index(
      {Entry('a', "unknown", "", "unknown", "application/vnd.in-toto+json"), Entry('b', "amd64")});
  CHECK(Chosen(index, {"linux", "amd64", ""}) == Digest('b'));
  try {
    Chosen(Index({Entry('a', "arm64", "v8"), Entry('b', "s390x")}), {"linux", "amd64", ""});
    FAIL("expected no match");
  } catch (const ExecutorError& e) {
    CHECK(e.kind() == ErrorKind::kNotFound);
    CHECK_THAT(e.what(), Catch::Contains("no image for platform linux/amd64"));
    CHECK_THAT(e.what(), Catch::Contains("linux/arm64/v8, linux/s390x"));
  }
}

TEST_CASE("a Docker manifest list is an index", "[manifest]") {
  std::string list =
      "{\"schemaVersion\":2,\"mediaType\":\"application/"
      "vnd.docker.distribution.manifest.list.v2+json\","
      "\"manifests\":[" +
      Entry('f', "amd64", "", "linux", "application/vnd.docker.distribution.manifest.v2+json") +
      "]}";
  CHECK(ManifestMediaType(list, "") == "application/vnd.docker.distribution.manifest.list.v2+json");
  CHECK(IsIndexType(ManifestMediaType(list, "")));
  CHECK(ParseIndex(list).at(0).descriptor.media_type ==
        "application/vnd.docker.distribution.manifest.v2+json");
}

TEST_CASE("manifest media types come from the document or the header or its shape", "[manifest]") {
  std::string oci_no_type = "{\"schemaVersion\":2,\"config\":{\"digest\":\"" + Digest('1') +
                            "\",\"size\":10},\"layers\":[]}";
  CHECK(ManifestMediaType(oci_no_type, "application/vnd.oci.image.manifest.v1+json") ==
        "application/vnd.oci.image.manifest.v1+json");
  CHECK(ManifestMediaType(oci_no_type, "application/octet-stream") ==
        "application/vnd.oci.image.manifest.v1+json");
  CHECK(ManifestMediaType("{\"schemaVersion\":2,\"manifests\":[]}", "") ==
        "application/vnd.oci.image.index.v1+json");
  CHECK_THROWS_WITH(ManifestMediaType("{\"schemaVersion\":1,\"fsLayers\":[]}", ""),
                    Catch::Contains("schema 1 manifests are not supported"));
  CHECK_THROWS_WITH(ManifestMediaType("not json", ""), Catch::Contains("invalid manifest"));
}

TEST_CASE("a manifest lists its config and layers in order", "[manifest]") {
  std::string m =
      "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
      "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" +
      Digest('c') +
      "\",\"size\":837},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
      "\"digest\":\"" +
      Digest('1') +
      "\",\"size\":1085744},{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
      "\"digest\":\"" +
      Digest('2') + "\",\"size\":124}]}";
  Manifest parsed = ParseManifest(m);
  CHECK(parsed.config.digest == Digest('c'));
  CHECK(parsed.config.size == 837);
  REQUIRE(parsed.layers.size() == 2);
  CHECK(parsed.layers[0].digest == Digest('1'));
  CHECK(parsed.layers[0].size == 1085744);
  CHECK(parsed.layers[1].media_type == "application/vnd.oci.image.layer.v1.tar+gzip");
  CHECK_THROWS_WITH(ParseManifest("{\"layers\":[]}"), Catch::Contains("no \"config\""));
  CHECK_THROWS_WITH(ParseManifest("{\"config\":{\"digest\":\"md5:00\"}}"),
                    Catch::Contains("only sha256"));
  // A size no int64 holds reads as none (it once was an out-of-range conversion).
  CHECK(ParseManifest("{\"config\":{\"digest\":\"" + Digest('c') + "\",\"size\":5e300}}")
            .config.size == 0);
  CHECK(ParseManifest("{\"config\":{\"digest\":\"" + Digest('c') + "\",\"size\":12.7}}")
            .config.size == 12);
}

TEST_CASE("chain IDs hash each parent chain with the next diff ID", "[manifest]") {
  // Expected values computed independently (python hashlib) from the rule
  // chain[i] = sha256(chain[i-1] + " " + diff_id[i]).
  std::string a = "sha256:86c7db6abd7af2fbf96119ded0370dfea02b5b4102ed99244a232d18dbefa36c";
  std::string b = "sha256:5e1994cc71d88eec70ef217cc86c526a9eae5fa41833c069d152e84ae79a1467";
  std::vector<std::string> chain = ChainIds({a, b, a});
  REQUIRE(chain.size() == 3);
  CHECK(chain[0] == a);
  CHECK(chain[1] == "sha256:dbf564ed7a38d407fa52204da4c23036023663c23326dd40fa274570415a59f7");
  CHECK(chain[2] == "sha256:e401819c88fd39ececb2f2ca652a07a4dbb0a1c855151aec8992f1e06baf3f00");
  CHECK(ChainIds({}).empty());
  CHECK(Sha256Digest("hello") ==
        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
}

TEST_CASE("the image config gives the run settings and the diff IDs", "[manifest]") {
  std::string config = R"({"architecture":"amd64","os":"linux",
    "config":{"Entrypoint":["/entry"],"Cmd":["serve","--port","80"],"Env":["PATH=/bin","A=1"],
      "WorkingDir":"/srv","User":"www:staff","StopSignal":"SIGQUIT",
      "ExposedPorts":{"80/tcp":{},"53/udp":{}},"Labels":{"org.skep.x":"y"},
      "Healthcheck":{"Test":["CMD-SHELL","wget -q localhost"],"Interval":30000000000,
        "Timeout":5000000000,"StartPeriod":1000000000,"Retries":3}},
    "rootfs":{"type":"layers","diff_ids":["sha256:aa","sha256:bb"]}})";
  ImageInfo info;
  std::vector<std::string> diff_ids = ParseImageConfig(config, info);
  CHECK(diff_ids == std::vector<std::string>{"sha256:aa", "sha256:bb"});
  CHECK(info.entrypoint == std::vector<std::string>{"/entry"});
  CHECK(info.cmd == std::vector<std::string>{"serve", "--port", "80"});
  CHECK(info.env == std::vector<std::string>{"PATH=/bin", "A=1"});
  CHECK(info.working_dir == "/srv");
  CHECK(info.user == "www:staff");
  CHECK(info.stop_signal == "SIGQUIT");
  CHECK(info.exposed_ports == std::vector<std::string>{"53/udp", "80/tcp"});
  CHECK(info.labels == std::map<std::string, std::string>{{"org.skep.x", "y"}});
  REQUIRE(info.healthcheck.has_value());
  CHECK(info.healthcheck->test == std::vector<std::string>{"CMD-SHELL", "wget -q localhost"});
  CHECK(info.healthcheck->interval_ns == 30000000000);
  CHECK(info.healthcheck->timeout_ns == 5000000000);
  CHECK(info.healthcheck->start_period_ns == 1000000000);
  CHECK(info.healthcheck->retries == 3);

  ImageInfo bare;
  CHECK(ParseImageConfig(R"({"rootfs":{"diff_ids":["sha256:cc"]},"config":{"Cmd":null}})", bare) ==
        std::vector<std::string>{"sha256:cc"});
  CHECK(bare.cmd.empty());
  CHECK_FALSE(bare.healthcheck.has_value());
}

TEST_CASE("an image's platforms: an index's manifests, or its config's", "[manifest]") {
  std::vector<Platform> p = IndexPlatforms(ParseIndex(Index(
      {Entry('a', "amd64"), Entry('b', "arm64", "v8"), Entry('c', "arm64", "v8"),
       // buildx's attestations: neither an image nor a platform
       Entry('d', "unknown", "", "unknown"),
       Entry('e', "amd64", "", "linux", "application/vnd.in-toto+json")})));
  REQUIRE(p.size() == 2);
  CHECK(p[0].String() == "linux/amd64");
  CHECK(p[1].String() == "linux/arm64/v8");

  const Platform c = ParseConfigPlatform(
      R"({"architecture":"arm","variant":"v7","os":"linux","rootfs":{"type":"layers"}})");
  CHECK(c.String() == "linux/arm/v7");
  CHECK_THROWS_WITH(ParseConfigPlatform("[]"), Catch::Contains("image config"));
}
