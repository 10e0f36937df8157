#include <catch2/catch.hpp>

#include <random>

#include "overlay/gossip/message.h"

using namespace skep::gossip;

namespace {

std::vector<Message> Samples() {
  std::vector<Broadcast> gossip = {Alive{7, "n1", "10.0.0.1:7946"}, Suspect{3, "n2", "n1"},
                                   Dead{4, "n3", "n3"}, UserBroadcast{"k", std::string("\0v", 2)}};
  PushPull pp;
  pp.members = {{"n1", "10.0.0.1:7946", 7, MemberState::kAlive},
                {"n2", "10.0.0.2:7946", 3, MemberState::kSuspect},
                {"n3", "10.0.0.3:7946", 4, MemberState::kLeft},
                {"n4", "10.0.0.4:7946", 1, MemberState::kDead}};
  pp.join = true;
  pp.user_state = "state";
  std::vector<Body> bodies = {Ping{1, "n2"},
                              IndirectPing{2, "n3", "10.0.0.3:7946"},
                              Ack{0xffffffff},
                              Nack{5},
                              Alive{1ull << 40, "n1", "a"},
                              Suspect{2, "n2", "n1"},
                              Dead{3, "n3", "n1"},
                              pp,
                              UserData{"hello"},
                              Gossip{}};
  std::vector<Message> out;
  for (const Body& b : bodies) {
    out.push_back(Message{"10.0.0.1:7946", "10.0.0.2:7946", b, {}});
    out.push_back(Message{"10.0.0.1:7946", "10.0.0.2:7946", b, gossip});
  }
  return out;
}

}  // namespace

TEST_CASE("every message kind survives encode and decode", "[message]") {
  for (const Message& m : Samples()) {
    std::string bytes = Encode(m);
    auto back = Decode(bytes);
    REQUIRE(back.has_value());
    CHECK(*back == m);
  }
}

TEST_CASE("encoded size of a broadcast is what it adds to a message", "[message]") {
  Message m{"a", "b", Gossip{}, {}};
  size_t base = Encode(m).size();
  const auto samples = Samples();
  for (const Broadcast& b : samples[1].broadcasts) {
    Message with = m;
    with.broadcasts.push_back(b);
    CHECK(Encode(with).size() == base + EncodedSize(b));
  }
}

TEST_CASE("every truncation of a valid encoding is rejected", "[message]") {
  for (const Message& m : Samples()) {
    std::string bytes = Encode(m);
    for (size_t n = 0; n < bytes.size(); ++n) {
      INFO("length " << n << " of " << bytes.size());
      CHECK_FALSE(Decode(std::string_view(bytes).substr(0, n)).has_value());
    }
    CHECK_FALSE(Decode(bytes + "x").has_value());  // trailing bytes
  }
}

TEST_CASE("bad version, tags, lengths and bools are rejected", "[message]") {
  PushPull pp;
  pp.members = {{"n", "x", 1, MemberState::kAlive}};
  std::string ok = Encode(Message{"a", "b", pp, {}});
  REQUIRE(Decode(ok).has_value());

  std::string bad = ok;
  bad[0] = 2;  // version
  CHECK_FALSE(Decode(bad).has_value());

  bad = ok;
  bad[1 + 5 + 5] = 42;  // body tag after version and two one-byte strings
  CHECK_FALSE(Decode(bad).has_value());

  bad = ok;
  bad[1] = '\xff';  // from's length far beyond the input
  bad[2] = '\xff';
  bad[3] = '\xff';
  bad[4] = '\x7f';
  CHECK_FALSE(Decode(bad).has_value());

  // The member state byte sits right before join, reply and the empty user state.
  bad = ok;
  size_t state_at = ok.size() - 4 - 4 - 1 - 1 - 1;
  REQUIRE(bad[state_at] == 0);
  bad[state_at] = 9;
  CHECK_FALSE(Decode(bad).has_value());

  bad = ok;
  bad[ok.size() - 4 - 4 - 2] = 2;  // join is neither 0 nor 1
  CHECK_FALSE(Decode(bad).has_value());

  // A field longer than the 16 MiB cap is rejected even when the input holds that much.
  std::string big = Encode(Message{"a", "b", UserData{std::string((16 << 20) + 1, 'x')}, {}});
  CHECK_FALSE(Decode(big).has_value());
  std::string max = Encode(Message{"a", "b", UserData{std::string(16 << 20, 'x')}, {}});
  CHECK(Decode(max).has_value());

  // A member count that cannot fit in the input is rejected before allocating.
  std::string huge = Encode(Message{"a", "b", PushPull{}, {}});
  size_t count_at = 1 + 5 + 5 + 1;
  huge[count_at] = '\xff';
  huge[count_at + 1] = '\xff';
  huge[count_at + 2] = '\xff';
  huge[count_at + 3] = '\xff';
  CHECK_FALSE(Decode(huge).has_value());
}

TEST_CASE("random garbage and random corruption never crash the decoder", "[message]") {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int> byte(0, 255);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string g(rng() % 64, '\0');
    for (char& c : g)
      c = static_cast<char>(byte(rng));
    accepted += Decode(g).has_value() ? 1 : 0;
  }
  CHECK(accepted < 20);  // it takes luck to be well formed
  // Flipped bytes in valid encodings: whatever decodes must re-encode to the same bytes.
  auto samples = Samples();
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = Encode(samples[rng() % samples.size()]);
    bytes[rng() % bytes.size()] = static_cast<char>(byte(rng));
    if (auto m = Decode(bytes)) CHECK(Encode(*m) == bytes);
  }
}
