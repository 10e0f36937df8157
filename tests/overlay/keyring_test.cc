#include <catch2/catch.hpp>

#include <stdexcept>

#include "overlay/gossip/keyring.h"

using namespace skep::gossip;

namespace {

std::string Key(char fill) {
  return std::string(kKeyBytes, fill);
}

}  // namespace

TEST_CASE("a sealed packet opens to its plaintext", "[keyring]") {
  Keyring ring({Key('a')});
  for (std::string plain : {std::string(), std::string("ping"), std::string(5000, 'x')}) {
    std::string packet = ring.Seal(plain);
    CHECK(packet.size() == plain.size() + kSealOverhead);
    CHECK(static_cast<uint8_t>(packet[0]) == kSealVersion);
    auto opened = ring.Open(packet);
    REQUIRE(opened.has_value());
    CHECK(*opened == plain);
  }
}

TEST_CASE("sealing twice gives different packets (a fresh nonce each time)", "[keyring]") {
  Keyring ring({Key('a')});
  CHECK(ring.Seal("same") != ring.Seal("same"));
}

TEST_CASE("a packet sealed with another key is refused", "[keyring]") {
  Keyring a({Key('a')}), b({Key('b')});
  CHECK_FALSE(b.Open(a.Seal("secret")).has_value());
  CHECK_FALSE(Keyring().Open(a.Seal("secret")).has_value());  // no keys: refuses everything
}

TEST_CASE("a tampered byte anywhere is refused", "[keyring]") {
  Keyring ring({Key('a')});
  std::string packet = ring.Seal("the endpoint table");
  for (size_t i = 0; i < packet.size(); ++i) {
    std::string bad = packet;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    INFO("byte " << i);
    CHECK_FALSE(ring.Open(bad).has_value());
  }
}

TEST_CASE("truncated or short packets are refused", "[keyring]") {
  Keyring ring({Key('a')});
  std::string packet = ring.Seal("hello");
  for (size_t n = 0; n < packet.size(); ++n) {
    INFO("length " << n);
    CHECK_FALSE(ring.Open(packet.substr(0, n)).has_value());
  }
  CHECK_FALSE(ring.Open(packet + "x").has_value());  // trailing byte breaks the tag too
}

TEST_CASE("keys of the wrong size are rejected", "[keyring]") {
  CHECK_THROWS_AS(Keyring({Key('a'), "short"}), std::invalid_argument);
  CHECK_THROWS_AS(Keyring().Seal("x"), std::logic_error);
}

TEST_CASE("rotation: the old primary's packets open while the old key is in the ring",
          "[keyring]") {
  Keyring old_ring({Key('o')});
  std::string from_old = old_ring.Seal("before rotation");

  Keyring both({Key('n'), Key('o')});  // new primary, old still accepted
  REQUIRE(both.Open(from_old).has_value());
  CHECK(*both.Open(from_old) == "before rotation");
  std::string from_new = both.Seal("after rotation");
  CHECK_FALSE(old_ring.Open(from_new).has_value());  // sealed with the new primary
  CHECK(Keyring({Key('o'), Key('n')}).Open(from_new).has_value());

  Keyring new_only({Key('n')});
  CHECK(new_only.Open(from_new).has_value());
  CHECK_FALSE(new_only.Open(from_old).has_value());  // the old key was removed
}
