#include "overlay/gossip/message.h"

#include <type_traits>

#include "overlay/gossip/wire.h"

namespace skep::gossip {
namespace {

using wire::Reader;
using wire::Writer;

void Put(Writer& w, const Ping& p) {
  w.U32(p.seq);
  w.Str(p.target);
}
void Put(Writer& w, const IndirectPing& p) {
  w.U32(p.seq);
  w.Str(p.target);
  w.Str(p.target_addr);
}
void Put(Writer& w, const Ack& a) {
  w.U32(a.seq);
}
void Put(Writer& w, const Nack& n) {
  w.U32(n.seq);
}
void Put(Writer& w, const Alive& a) {
  w.U64(a.incarnation);
  w.Str(a.node);
  w.Str(a.addr);
}
void Put(Writer& w, const Suspect& s) {
  w.U64(s.incarnation);
  w.Str(s.node);
  w.Str(s.from);
}
void Put(Writer& w, const Dead& d) {
  w.U64(d.incarnation);
  w.Str(d.node);
  w.Str(d.from);
}
void Put(Writer& w, const PushPull& p) {
  w.U32(static_cast<uint32_t>(p.members.size()));
  for (const MemberRecord& m : p.members) {
    w.Str(m.name);
    w.Str(m.addr);
    w.U64(m.incarnation);
    w.U8(static_cast<uint8_t>(m.state));
  }
  w.Bool(p.join);
  w.Bool(p.reply);
  w.Str(p.user_state);
}
void Put(Writer& w, const UserData& u) {
  w.Str(u.bytes);
}
void Put(Writer&, const Gossip&) {}
void Put(Writer& w, const UserBroadcast& u) {
  w.Str(u.key);
  w.Str(u.bytes);
}

void Get(Reader& r, Ping& p) {
  p.seq = r.U32();
  p.target = r.Str();
}
void Get(Reader& r, IndirectPing& p) {
  p.seq = r.U32();
  p.target = r.Str();
  p.target_addr = r.Str();
}
void Get(Reader& r, Ack& a) {
  a.seq = r.U32();
}
void Get(Reader& r, Nack& n) {
  n.seq = r.U32();
}
void Get(Reader& r, Alive& a) {
  a.incarnation = r.U64();
  a.node = r.Str();
  a.addr = r.Str();
}
void Get(Reader& r, Suspect& s) {
  s.incarnation = r.U64();
  s.node = r.Str();
  s.from = r.Str();
}
void Get(Reader& r, Dead& d) {
  d.incarnation = r.U64();
  d.node = r.Str();
  d.from = r.Str();
}
void Get(Reader& r, PushPull& p) {
  // A record is at least two empty strings, an incarnation and a state.
  uint32_t n = r.Count(4 + 4 + 8 + 1);
  p.members.reserve(n);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    MemberRecord m;
    m.name = r.Str();
    m.addr = r.Str();
    m.incarnation = r.U64();
    uint8_t state = r.U8();
    if (state > static_cast<uint8_t>(MemberState::kLeft)) r.Fail();
    m.state = static_cast<MemberState>(state);
    p.members.push_back(std::move(m));
  }
  p.join = r.Bool();
  p.reply = r.Bool();
  p.user_state = r.Str();
}
void Get(Reader& r, UserData& u) {
  u.bytes = r.Str();
}
void Get(Reader&, Gossip&) {}
void Get(Reader& r, UserBroadcast& u) {
  u.key = r.Str();
  u.bytes = r.Str();
}

template <typename Variant>
void PutTagged(Writer& w, const Variant& v) {
  w.U8(static_cast<uint8_t>(v.index()));
  std::visit([&](const auto& x) { Put(w, x); }, v);
}

// Builds the alternative numbered `tag`, or fails the reader for an unknown tag.
template <typename Variant, size_t I = 0>
Variant GetTagged(Reader& r, uint8_t tag) {
  if constexpr (I < std::variant_size_v<Variant>) {
    if (tag == I) {
      std::variant_alternative_t<I, Variant> x;
      Get(r, x);
      return Variant(std::in_place_index<I>, std::move(x));
    }
    return GetTagged<Variant, I + 1>(r, tag);
  } else {
    r.Fail();
    return Variant{};
  }
}

}  // namespace

const char* ToString(MemberState s) {
  switch (s) {
    case MemberState::kAlive:
      return "alive";
    case MemberState::kSuspect:
      return "suspect";
    case MemberState::kDead:
      return "dead";
    case MemberState::kLeft:
      return "left";
  }
  return "unknown";
}

std::string Encode(const Message& m) {
  Writer w;
  w.U8(kWireVersion);
  w.Str(m.from);
  w.Str(m.to);
  PutTagged(w, m.body);
  w.U32(static_cast<uint32_t>(m.broadcasts.size()));
  for (const Broadcast& b : m.broadcasts)
    PutTagged(w, b);
  return w.Take();
}

std::optional<Message> Decode(std::string_view bytes) {
  Reader r(bytes);
  if (r.U8() != kWireVersion) return std::nullopt;
  Message m;
  m.from = r.Str();
  m.to = r.Str();
  m.body = GetTagged<Body>(r, r.U8());
  // The smallest broadcast is a tag and two empty strings.
  uint32_t n = r.Count(1 + 4 + 4);
  m.broadcasts.reserve(n);
  for (uint32_t i = 0; i < n && r.ok(); ++i)
    m.broadcasts.push_back(GetTagged<Broadcast>(r, r.U8()));
  if (!r.ok() || !r.AtEnd()) return std::nullopt;
  return m;
}

size_t EncodedSize(const Broadcast& b) {
  // Counted rather than encoded: this runs for every queued broadcast on every gossip round.
  auto size = [](const auto& x) -> size_t {
    using T = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<T, UserBroadcast>) {
      return 4 + x.key.size() + 4 + x.bytes.size();
    } else if constexpr (std::is_same_v<T, Alive>) {
      return 8 + 4 + x.node.size() + 4 + x.addr.size();
    } else {
      return 8 + 4 + x.node.size() + 4 + x.from.size();
    }
  };
  return 1 + std::visit(size, b);
}

}  // namespace skep::gossip
