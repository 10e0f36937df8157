#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace skep {

// skep's version: the project's, and in a build from a git checkout the commits since it and
// the commit (0.1.0+git130.g6a04cdb, as dpkg sorts versions). Made at build time
// (cmake/version.cmake).
std::string_view Version();

// The Debian name of the architecture the binary was built for.
constexpr std::string_view Architecture() {
#if defined(__x86_64__)
  return "amd64";
#elif defined(__aarch64__)
  return "arm64";
#else
#error "skep is built for amd64 and arm64"
#endif
}

// The managers' store format this build reads and writes (raft entries and snapshots of the
// store, api::StoreBatch.format and api::StoreSnapshot.format). It goes up when a kind of
// object or a field appears that a manager of an older version would misapply; such a write
// waits for every manager to read the new format (manager::CheckStoreFormat), and a batch or
// snapshot of a newer format than this one is refused, never misread. Nodes report it
// (api::NodeDescription.store_format).
inline constexpr uint32_t kStoreFormat = 1;

// What `PROGRAM --version` prints: "skepd version 0.1.0+git130.g6a04cdb (linux/amd64)".
inline std::string VersionLine(std::string_view program) {
  return std::string(program) + " version " + std::string(Version()) + " (linux/" +
         std::string(Architecture()) + ")";
}

}  // namespace skep
