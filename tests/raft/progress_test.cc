#include <catch2/catch.hpp>

#include "raft/progress.h"

using namespace skep::raft;

TEST_CASE("inflights fill up and free in order", "[progress]") {
  Inflights in(3);
  in.Add(5);
  in.Add(7);
  in.Add(9);
  CHECK(in.Full());
  CHECK_THROWS_AS(in.Add(11), std::logic_error);
  in.FreeLE(7);
  CHECK(in.Count() == 1);
  in.Add(11);
  in.Add(12);
  CHECK(in.Full());
  in.FreeLE(100);
  CHECK(in.Count() == 0);
  in.Add(13);
  in.FreeFirst();
  CHECK(in.Count() == 0);
}

TEST_CASE("probing sends one append at a time", "[progress]") {
  Progress pr(10, 4);
  CHECK_FALSE(pr.IsPaused());
  pr.OnEntriesSent(1, 10);
  CHECK(pr.IsPaused());
  // An answer to an older probe is stale.
  CHECK_FALSE(pr.MaybeDecrTo(5, 3));
  // The rejection of the latest probe moves next to the hint and unpauses.
  CHECK(pr.MaybeDecrTo(9, 3));
  CHECK(pr.next == 4);
  CHECK_FALSE(pr.IsPaused());
}

TEST_CASE("replicate pipelines up to the window and ignores stale rejections", "[progress]") {
  Progress pr(1, 2);
  pr.MaybeUpdate(4);
  pr.BecomeReplicate();
  CHECK(pr.next == 5);
  pr.OnEntriesSent(3, 7);
  pr.OnEntriesSent(2, 9);
  CHECK(pr.next == 10);
  CHECK(pr.IsPaused());
  CHECK(pr.MaybeUpdate(7));
  pr.inflights.FreeLE(7);
  CHECK_FALSE(pr.IsPaused());
  CHECK_FALSE(pr.MaybeDecrTo(6, 6));  // already matched beyond it
  CHECK(pr.MaybeDecrTo(8, 6));        // a real rejection: back to match + 1
  CHECK(pr.next == 8);
}

TEST_CASE("a follower waiting for a snapshot is paused", "[progress]") {
  Progress pr(1, 4);
  pr.BecomeSnapshot(50);
  CHECK(pr.IsPaused());
  CHECK(pr.MaybeUpdate(50));
  pr.BecomeProbe();
  CHECK(pr.next == 51);
  CHECK_FALSE(pr.IsPaused());
}
