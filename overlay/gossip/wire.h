// Little-endian field writer and reader shared by the gossip wire formats (message.h,
// table.h). Internal to overlay/gossip.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace skep::gossip::wire {

// No single field may claim more than this, whatever the input says.
inline constexpr size_t kMaxFieldBytes = 16 << 20;

class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) {
    for (int i = 0; i < 4; ++i)
      U8(static_cast<uint8_t>(v >> (8 * i)));
  }
  void U64(uint64_t v) {
    for (int i = 0; i < 8; ++i)
      U8(static_cast<uint8_t>(v >> (8 * i)));
  }
  void Bool(bool v) { U8(v ? 1 : 0); }
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

// Reads fields until the first error; after that every read returns a zero value and ok() is
// false, so decoders check once at the end instead of after every field.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool ok() const { return ok_; }
  bool AtEnd() const { return in_.empty(); }
  size_t remaining() const { return in_.size(); }
  void Fail() { ok_ = false; }

  uint8_t U8() {
    if (!Need(1)) return 0;
    uint8_t v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return v;
  }
  uint32_t U32() {
    if (!Need(4)) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
      v |= uint32_t{static_cast<uint8_t>(in_[i])} << (8 * i);
    in_.remove_prefix(4);
    return v;
  }
  uint64_t U64() {
    if (!Need(8)) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
      v |= uint64_t{static_cast<uint8_t>(in_[i])} << (8 * i);
    in_.remove_prefix(8);
    return v;
  }
  bool Bool() {
    uint8_t v = U8();
    if (v > 1) Fail();
    return v == 1;
  }
  std::string Str() {
    uint32_t n = U32();
    if (n > kMaxFieldBytes) Fail();
    if (!Need(n)) return {};
    std::string s(in_.substr(0, n));
    in_.remove_prefix(n);
    return s;
  }
  // A count of elements that each take at least `min_bytes`: a count that cannot fit in what
  // is left is rejected before anything is allocated for it.
  uint32_t Count(size_t min_bytes) {
    uint32_t n = U32();
    if (ok_ && n > in_.size() / min_bytes) Fail();
    return ok_ ? n : 0;
  }

 private:
  bool Need(size_t n) {
    if (!ok_ || in_.size() < n) ok_ = false;
    return ok_;
  }
  std::string_view in_;
  bool ok_ = true;
};

}  // namespace skep::gossip::wire
