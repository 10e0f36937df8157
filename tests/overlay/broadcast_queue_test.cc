#include <catch2/catch.hpp>

#include "overlay/gossip/broadcast_queue.h"

using namespace skep::gossip;

namespace {

std::string NodeOf(const Broadcast& b) {
  return std::visit(
      [](const auto& x) -> std::string {
        if constexpr (std::is_same_v<std::decay_t<decltype(x)>, UserBroadcast>) {
          return x.key;
        } else {
          return x.node;
        }
      },
      b);
}

}  // namespace

TEST_CASE("retransmit limit is mult * ceil(log10(n+1))", "[broadcast]") {
  CHECK(RetransmitLimit(4, 1) == 4);
  CHECK(RetransmitLimit(4, 9) == 4);
  CHECK(RetransmitLimit(4, 10) == 8);
  CHECK(RetransmitLimit(4, 99) == 8);
  CHECK(RetransmitLimit(4, 100) == 12);
  CHECK(RetransmitLimit(4, 1000) == 16);
}

TEST_CASE("newest broadcasts go first", "[broadcast]") {
  BroadcastQueue q;
  q.Push("a", Alive{1, "a", "x"});
  q.Push("b", Alive{1, "b", "x"});
  q.Push("c", Alive{1, "c", "x"});
  auto out = q.Take(1400, 10);
  REQUIRE(out.size() == 3);
  CHECK(NodeOf(out[0]) == "c");
  CHECK(NodeOf(out[1]) == "b");
  CHECK(NodeOf(out[2]) == "a");
}

TEST_CASE("a newer broadcast about the same key replaces the older", "[broadcast]") {
  BroadcastQueue q;
  q.Push("a", Alive{1, "a", "x"});
  q.Push("a", Suspect{1, "a", "b"});
  CHECK(q.size() == 1);
  auto out = q.Take(1400, 10);
  REQUIRE(out.size() == 1);
  CHECK(std::holds_alternative<Suspect>(out[0]));
}

TEST_CASE("broadcasts are dropped after the retransmit limit", "[broadcast]") {
  BroadcastQueue q;
  q.Push("a", Alive{1, "a", "x"});
  for (int i = 0; i < 3; ++i)
    CHECK(q.Take(1400, 3).size() == 1);
  CHECK(q.empty());
  CHECK(q.Take(1400, 3).empty());
}

TEST_CASE("fewest transmits go first and the budget is respected", "[broadcast]") {
  BroadcastQueue q;
  q.Push("old", Alive{1, "old", "x"});
  CHECK(q.Take(1400, 10).size() == 1);  // "old" now has one transmit
  q.Push("new", Alive{1, "new", "x"});
  size_t one = EncodedSize(Alive{1, "new", "x"});
  auto out = q.Take(one, 10);  // room for exactly one
  REQUIRE(out.size() == 1);
  CHECK(NodeOf(out[0]) == "new");
  // A broadcast too large for what is left is skipped, smaller ones still fit.
  q.Push("big", UserBroadcast{"big", std::string(2000, 'x')});
  out = q.Take(1400, 10);
  CHECK(out.size() == 2);
  CHECK(q.size() == 3);
}
