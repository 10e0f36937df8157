#include <catch2/catch.hpp>

#include "overlay/gossip/suspicion.h"

using namespace skep::gossip;

TEST_CASE("minimum suspicion timeout grows with log10 of the cluster size", "[suspicion]") {
  // memberlist LAN defaults: suspicion mult 4, probe interval 1s.
  CHECK(SuspicionMinTimeoutMs(4, 1, 1000) == 4000);  // node scale is at least 1
  CHECK(SuspicionMinTimeoutMs(4, 10, 1000) == 4000);
  CHECK(SuspicionMinTimeoutMs(4, 100, 1000) == 8000);
  CHECK(SuspicionMinTimeoutMs(4, 1000, 1000) == 12000);
  CHECK(SuspicionMinTimeoutMs(4, 50, 1000) == 6795);  // 4 * log10(50) s, floored
}

TEST_CASE("suspicion timeout shrinks logarithmically with confirmations", "[suspicion]") {
  const int64_t min = 8000, max = 48000;
  CHECK(SuspicionTimeoutMs(min, max, 0, 2) == max);
  // max - (max-min) * log(2)/log(3)
  CHECK(SuspicionTimeoutMs(min, max, 1, 2) == 22762);
  CHECK(SuspicionTimeoutMs(min, max, 2, 2) == min);
  CHECK(SuspicionTimeoutMs(min, max, 5, 2) == min);  // never below min
  CHECK(SuspicionTimeoutMs(min, max, 0, 0) == min);  // nobody to confirm: go straight to min
  for (int k = 0; k < 5; ++k) {
    CHECK(SuspicionTimeoutMs(min, max, k + 1, 5) < SuspicionTimeoutMs(min, max, k, 5));
  }
}

TEST_CASE("expected confirmations need enough other members", "[suspicion]") {
  CHECK(ExpectedConfirmations(4, 100) == 2);
  CHECK(ExpectedConfirmations(4, 4) == 2);
  CHECK(ExpectedConfirmations(4, 3) == 0);  // only one member besides accuser and accused
  CHECK(ExpectedConfirmations(4, 1) == 0);
}

TEST_CASE("suspicion counts distinct confirmers other than the accuser", "[suspicion]") {
  Suspicion s("a", 2, 8000, 48000, 1000);
  CHECK(s.DeadlineMs() == 49000);
  CHECK_FALSE(s.Confirm("a"));  // our own suspicion gossiped back
  CHECK(s.Confirm("b"));
  CHECK_FALSE(s.Confirm("b"));  // not independent
  CHECK(s.confirmations() == 1);
  CHECK(s.DeadlineMs() == 1000 + 22762);
  CHECK(s.Confirm("c"));
  CHECK(s.DeadlineMs() == 9000);
  CHECK_FALSE(s.Confirm("d"));  // already at the minimum
  CHECK(s.confirmations() == 2);
  CHECK_FALSE(s.Fired(8999));
  CHECK(s.Fired(9000));
}
