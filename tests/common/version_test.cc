// The version every binary reports, in the form dpkg sorts (the packages carry it).
#include <catch2/catch.hpp>
#include <filesystem>
#include <regex>
#include <string>

#include "daemon/common/version.h"

TEST_CASE("the version is the project's, with the commits since it in a form dpkg sorts",
          "[version]") {
  const std::string v(skep::Version());
  const std::string base = SKEP_PROJECT_VERSION;
  REQUIRE(v.rfind(base, 0) == 0);
  if (std::filesystem::exists(std::string(SKEP_SOURCE_DIR) + "/.git")) {
    // A checkout with history: 0.1.0+git130.g6a04cdb.
    CHECK(std::regex_match(v.substr(base.size()), std::regex(R"(\+git[1-9][0-9]*\.g[0-9a-f]{7})")));
    if (std::system("command -v dpkg >/dev/null") == 0) {
      CHECK(std::system(("dpkg --compare-versions '" + v + "' gt '" + base + "'").c_str()) == 0);
      CHECK(std::system(("dpkg --compare-versions '" + v + "' lt '" + base + ".1'").c_str()) == 0);
    }
  } else {
    CHECK(v == base);
  }
}

TEST_CASE("the architecture is Debian's name for the build's target", "[version]") {
#if defined(__x86_64__)
  CHECK(skep::Architecture() == "amd64");
#elif defined(__aarch64__)
  CHECK(skep::Architecture() == "arm64");
#endif
}
