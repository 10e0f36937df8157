#include <catch2/catch.hpp>

#include "overlay/gossip/awareness.h"

using namespace skep::gossip;

TEST_CASE("health score stays within 0 and max-1", "[awareness]") {
  Awareness a(8);
  CHECK(a.score() == 0);
  a.ApplyDelta(-1);
  CHECK(a.score() == 0);
  a.ApplyDelta(3);
  CHECK(a.score() == 3);
  a.ApplyDelta(100);
  CHECK(a.score() == 7);
  a.ApplyDelta(-2);
  CHECK(a.score() == 5);
}

TEST_CASE("timeouts scale with the health score", "[awareness]") {
  Awareness a(8);
  CHECK(a.ScaleTimeout(500) == 500);
  a.ApplyDelta(1);
  CHECK(a.ScaleTimeout(500) == 1000);
  a.ApplyDelta(10);
  CHECK(a.ScaleTimeout(1000) == 8000);  // capped at the max multiplier
}

TEST_CASE("a max multiplier of 1 disables awareness", "[awareness]") {
  Awareness a(1);
  a.ApplyDelta(5);
  CHECK(a.score() == 0);
  CHECK(a.ScaleTimeout(1000) == 1000);
}
