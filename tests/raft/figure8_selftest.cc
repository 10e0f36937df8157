// Built against a core that commits entries of earlier terms by counting replicas: the
// figure-8 scenario must make the safety checker report it.
#include <catch2/catch.hpp>
#include <iostream>

#include "tests/raft/figure8.h"

using namespace skep::raft::testing;

TEST_CASE("the safety checker catches a core that commits old-term entries by counting",
          "[figure8][selftest]") {
  const Figure8Outcome out = RunFigure8();
  CHECK(out.commit_in_c > out.commit_before_x);  // the broken rule did fire
  REQUIRE_FALSE(out.violations.empty());
  std::cout << "caught: " << out.violations.front() << std::endl;
}
