#include "daemon/executor/manifest.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <boost/json.hpp>

#include "daemon/executor/errors.h"

namespace skep::executor {
namespace json = boost::json;
namespace {

[[noreturn]] void Malformed(std::string_view what, std::string_view why) {
  throw ExecutorError(ErrorKind::kFailed, fmt::format("invalid {}: {}", what, why));
}

json::object ParseObject(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) Malformed(what, ec.message());
  if (!v.is_object()) Malformed(what, "not a JSON object");
  return std::move(v.as_object());
}

std::string GetString(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return {};
  if (!v->is_string()) return {};
  return std::string(v->as_string());
}

std::vector<std::string> GetStrings(const json::object& o, std::string_view key,
                                    std::string_view what) {
  std::vector<std::string> out;
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return out;
  if (!v->is_array()) Malformed(what, fmt::format("\"{}\" is not an array", key));
  for (const json::value& e : v->as_array()) {
    if (!e.is_string()) Malformed(what, fmt::format("\"{}\" holds a non-string", key));
    out.emplace_back(e.as_string());
  }
  return out;
}

int64_t GetInt(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<int64_t>(v->as_uint64());
  // A fraction is cut off; a double no int64 holds (1e300, inf) reads as 0, like a string.
  if (v->is_double() && v->as_double() >= -0x1p63 && v->as_double() < 0x1p63)
    return static_cast<int64_t>(v->as_double());
  return 0;
}

Descriptor ParseDescriptor(const json::value& v, std::string_view what) {
  if (!v.is_object()) Malformed(what, "a descriptor is not an object");
  const json::object& o = v.as_object();
  Descriptor d;
  d.media_type = GetString(o, "mediaType");
  d.digest = GetString(o, "digest");
  d.size = GetInt(o, "size");
  if (d.digest.empty()) Malformed(what, "a descriptor has no digest");
  if (d.digest.rfind("sha256:", 0) != 0)
    Malformed(what, fmt::format("unsupported digest \"{}\" (only sha256)", d.digest));
  return d;
}

// How well an entry's variant serves the wanted one: higher is better, -1 = not at all.
int VariantScore(const Platform& have, const Platform& want) {
  if (have.variant == want.variant) return 100;
  if (have.variant.empty()) return 90;
  if (want.architecture == "arm" && have.variant.size() == 2 && want.variant.size() == 2 &&
      have.variant[0] == 'v' && want.variant[0] == 'v' && have.variant[1] < want.variant[1])
    return 50 + (have.variant[1] - '0');  // v6 on v7 beats v5 on v7
  return -1;
}

}  // namespace

bool IsIndexType(std::string_view t) {
  return t == media::kOciIndex || t == media::kDockerManifestList;
}
bool IsManifestType(std::string_view t) {
  return t == media::kOciManifest || t == media::kDockerManifest;
}

std::string Platform::String() const {
  std::string s = os + "/" + architecture;
  if (!variant.empty()) s += "/" + variant;
  return s;
}

Platform HostPlatform() {
#if defined(__x86_64__)
  return {"linux", "amd64", ""};
#elif defined(__aarch64__)
  return {"linux", "arm64", "v8"};
#elif defined(__arm__)
#if defined(__ARM_ARCH) && __ARM_ARCH >= 7
  return {"linux", "arm", "v7"};
#elif defined(__ARM_ARCH) && __ARM_ARCH == 6
  return {"linux", "arm", "v6"};
#else
  return {"linux", "arm", "v5"};
#endif
#elif defined(__i386__)
  return {"linux", "386", ""};
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return {"linux", "ppc64le", ""};
#elif defined(__s390x__)
  return {"linux", "s390x", ""};
#elif defined(__riscv) && __riscv_xlen == 64
  return {"linux", "riscv64", ""};
#else
#error "unknown architecture: add it to HostPlatform()"
#endif
}

std::vector<IndexEntry> ParseIndex(std::string_view text) {
  json::object o = ParseObject(text, "image index");
  const json::value* manifests = o.if_contains("manifests");
  if (manifests == nullptr || !manifests->is_array())
    Malformed("image index", "no \"manifests\" array");
  std::vector<IndexEntry> out;
  for (const json::value& m : manifests->as_array()) {
    IndexEntry e;
    e.descriptor = ParseDescriptor(m, "image index");
    if (const json::value* p = m.as_object().if_contains("platform"); p && p->is_object()) {
      e.platform.os = GetString(p->as_object(), "os");
      e.platform.architecture = GetString(p->as_object(), "architecture");
      e.platform.variant = GetString(p->as_object(), "variant");
    }
    out.push_back(std::move(e));
  }
  return out;
}

size_t SelectManifest(const std::vector<IndexEntry>& index, const Platform& want) {
  int best_score = -1;
  size_t best = 0;
  for (size_t i = 0; i < index.size(); ++i) {
    const IndexEntry& e = index[i];
    // Attestations and other non-image entries (docker buildx adds "unknown/unknown").
    if (!e.descriptor.media_type.empty() && !IsManifestType(e.descriptor.media_type)) continue;
    if (e.platform.os != want.os) continue;
    int score = -1;
    if (e.platform.architecture == want.architecture) {
      score = VariantScore(e.platform, want);
    } else if (want.architecture == "arm64" && e.platform.architecture == "arm" &&
               (e.platform.variant == "v7" || e.platform.variant.empty())) {
      score = 10;
    }
    if (score > best_score) {
      best_score = score;
      best = i;
    }
  }
  if (best_score < 0) {
    std::string offered;
    for (const IndexEntry& e : index) {
      if (e.platform.os.empty()) continue;
      if (!offered.empty()) offered += ", ";
      offered += e.platform.String();
    }
    throw ExecutorError(ErrorKind::kNotFound,
                        fmt::format("no image for platform {} (the image has: {})", want.String(),
                                    offered.empty() ? "none" : offered));
  }
  return best;
}

Manifest ParseManifest(std::string_view text) {
  json::object o = ParseObject(text, "image manifest");
  Manifest m;
  const json::value* config = o.if_contains("config");
  if (config == nullptr) Malformed("image manifest", "no \"config\"");
  m.config = ParseDescriptor(*config, "image manifest");
  const json::value* layers = o.if_contains("layers");
  if (layers != nullptr && !layers->is_array())
    Malformed("image manifest", "\"layers\" is not an array");
  if (layers != nullptr)
    for (const json::value& l : layers->as_array())
      m.layers.push_back(ParseDescriptor(l, "image manifest"));
  return m;
}

std::string ManifestMediaType(std::string_view text, std::string_view content_type) {
  json::object o = ParseObject(text, "manifest");
  std::string t = GetString(o, "mediaType");
  if (t.empty() && (IsIndexType(content_type) || IsManifestType(content_type)))
    t = std::string(content_type);
  if (t.empty()) {
    if (o.contains("manifests"))
      t = std::string(media::kOciIndex);
    else if (o.contains("config") && o.contains("layers"))
      t = std::string(media::kOciManifest);
  }
  if (t == media::kDockerSchema1 || GetInt(o, "schemaVersion") == 1)
    Malformed("manifest",
              "Docker schema 1 manifests are not supported; push the image again "
              "with a current client");
  if (!IsIndexType(t) && !IsManifestType(t))
    Malformed("manifest", fmt::format("unsupported media type \"{}\"", t));
  return t;
}

Platform ParseConfigPlatform(std::string_view text) {
  json::object o = ParseObject(text, "image config");
  return {GetString(o, "os"), GetString(o, "architecture"), GetString(o, "variant")};
}

std::vector<Platform> IndexPlatforms(const std::vector<IndexEntry>& index) {
  std::vector<Platform> out;
  for (const IndexEntry& e : index) {
    if (!e.descriptor.media_type.empty() && !IsManifestType(e.descriptor.media_type)) continue;
    if (e.platform.os.empty() || e.platform.os == "unknown") continue;
    const bool seen = std::any_of(out.begin(), out.end(), [&](const Platform& p) {
      return p.os == e.platform.os && p.architecture == e.platform.architecture &&
             p.variant == e.platform.variant;
    });
    if (!seen) out.push_back(e.platform);
  }
  return out;
}

std::vector<std::string> ParseImageConfig(std::string_view text, ImageInfo& info) {
  json::object o = ParseObject(text, "image config");
  std::vector<std::string> diff_ids;
  if (const json::value* rootfs = o.if_contains("rootfs"); rootfs && rootfs->is_object())
    diff_ids = GetStrings(rootfs->as_object(), "diff_ids", "image config");
  const json::value* cv = o.if_contains("config");
  if (cv == nullptr || !cv->is_object()) return diff_ids;  // a config with no runtime settings
  const json::object& c = cv->as_object();
  info.entrypoint = GetStrings(c, "Entrypoint", "image config");
  info.cmd = GetStrings(c, "Cmd", "image config");
  info.env = GetStrings(c, "Env", "image config");
  info.working_dir = GetString(c, "WorkingDir");
  info.user = GetString(c, "User");
  info.stop_signal = GetString(c, "StopSignal");
  info.exposed_ports.clear();
  if (const json::value* p = c.if_contains("ExposedPorts"); p && p->is_object())
    for (const auto& kv : p->as_object())
      info.exposed_ports.emplace_back(kv.key());
  std::sort(info.exposed_ports.begin(), info.exposed_ports.end());
  info.labels.clear();
  if (const json::value* l = c.if_contains("Labels"); l && l->is_object())
    for (const auto& kv : l->as_object())
      if (kv.value().is_string()) info.labels[std::string(kv.key())] = kv.value().as_string();
  info.healthcheck.reset();
  if (const json::value* h = c.if_contains("Healthcheck"); h && h->is_object()) {
    const json::object& ho = h->as_object();
    Healthcheck hc;
    hc.test = GetStrings(ho, "Test", "image config");
    hc.interval_ns = GetInt(ho, "Interval");
    hc.timeout_ns = GetInt(ho, "Timeout");
    hc.start_period_ns = GetInt(ho, "StartPeriod");
    hc.retries = static_cast<int>(GetInt(ho, "Retries"));
    info.healthcheck = std::move(hc);
  }
  return diff_ids;
}

std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids) {
  std::vector<std::string> chain;
  chain.reserve(diff_ids.size());
  for (const std::string& d : diff_ids)
    chain.push_back(chain.empty() ? d : Sha256Digest(chain.back() + " " + d));
  return chain;
}

std::string Sha256Digest(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  std::string out = "sha256:";
  out.reserve(7 + 2 * len);
  for (unsigned int i = 0; i < len; ++i)
    out += fmt::format("{:02x}", md[i]);
  return out;
}

}  // namespace skep::executor
