// OCI / Docker v2 image formats: manifests, indexes (manifest lists), image configs, platform
// selection and layer chain IDs. Pure functions over bytes; malformed input throws
// ExecutorError(kFailed) saying which document and field is wrong.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "daemon/executor/image.h"

namespace skep::executor {

namespace media {
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kDockerSchema1 =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
}  // namespace media

bool IsIndexType(std::string_view media_type);
bool IsManifestType(std::string_view media_type);

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
  std::string String() const;  // "linux/arm/v7"
};

// The platform this binary was built for (linux/amd64, linux/arm64/v8, linux/arm/v7, ...).
Platform HostPlatform();

struct IndexEntry {
  Descriptor descriptor;
  Platform platform;  // empty os/architecture when the entry has none
};

std::vector<IndexEntry> ParseIndex(std::string_view json);

// The position of the best manifest for `want` in the index: same os and architecture, the
// variant that matches best (exact, then unspecified, then an older compatible one: arm/v6 on
// arm/v7), and for arm64 hosts arm/v7 images as a last resort. Throws ExecutorError(kNotFound)
// listing the platforms the index offers when none fits.
size_t SelectManifest(const std::vector<IndexEntry>& index, const Platform& want);

struct Manifest {
  Descriptor config;
  std::vector<Descriptor> layers;
};

Manifest ParseManifest(std::string_view json);

// The media type of a manifest document: its own "mediaType" field, else the registry's
// Content-Type if it names a manifest type, else guessed from its shape. Schema 1 manifests are
// refused with a message saying so.
std::string ManifestMediaType(std::string_view json, std::string_view content_type);

// Fills the config-derived fields of `info` (entrypoint, cmd, env, ...) and returns the layers'
// diff IDs (rootfs.diff_ids). Works for OCI and Docker image configs.
std::vector<std::string> ParseImageConfig(std::string_view json, ImageInfo& info);

// The platform an image config says its binaries are for ("os", "architecture", "variant").
Platform ParseConfigPlatform(std::string_view json);

// The platforms of an index's image manifests, in its order and without repeats; entries that
// are no image (attestations, "unknown/unknown") are left out.
std::vector<Platform> IndexPlatforms(const std::vector<IndexEntry>& index);

// chain[0] = diff_ids[0]; chain[i] = sha256(chain[i-1] + " " + diff_ids[i]) as "sha256:<hex>".
std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids);

// "sha256:<hex>" of `data`.
std::string Sha256Digest(std::string_view data);

}  // namespace skep::executor
