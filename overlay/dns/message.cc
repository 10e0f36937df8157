#include "overlay/dns/message.h"

#include <algorithm>
#include <stdexcept>

namespace skep::dns {
namespace {

// Header flag bits (RFC 1035 §4.1.1, RFC 2535 §6.1 for AD and CD).
constexpr uint16_t kFlagQr = 0x8000;
constexpr int kOpcodeShift = 11;
constexpr uint16_t kOpcodeMask = 0xF;
constexpr uint16_t kFlagAa = 0x0400;
constexpr uint16_t kFlagTc = 0x0200;
constexpr uint16_t kFlagRd = 0x0100;
constexpr uint16_t kFlagRa = 0x0080;
constexpr uint16_t kFlagCd = 0x0010;
constexpr uint16_t kRcodeMask = 0x000F;
// The DO bit in the OPT record's TTL field (RFC 3225).
constexpr uint32_t kEdnsDo = 0x8000;

constexpr size_t kMaxNameWire = 255;
constexpr size_t kMaxLabel = 63;
// A record's fixed part after its name: type, class, TTL, RDLENGTH.
constexpr size_t kRecordFixed = 10;
// An A record that names the question by pointer: pointer + fixed part + address.
constexpr size_t kARecordSize = 2 + kRecordFixed + 4;
// An OPT record with no options: root name + fixed part.
constexpr size_t kOptRecordSize = 1 + kRecordFixed;
constexpr uint16_t kPointerToQuestion = 0xC000 | kHeaderSize;

uint16_t Get16(std::string_view w, size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(w[at]) << 8 | static_cast<uint8_t>(w[at + 1]));
}
uint32_t Get32(std::string_view w, size_t at) {
  return static_cast<uint32_t>(Get16(w, at)) << 16 | Get16(w, at + 2);
}
void Put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}
void Put32(std::string& out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v >> 16));
  Put16(out, static_cast<uint16_t>(v & 0xFFFF));
}

char Lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

void AppendLabelText(std::string* text, std::string_view label) {
  if (!text->empty()) text->push_back('.');
  for (const char c : label) {
    const auto b = static_cast<uint8_t>(c);
    if (c == '.' || c == '\\') {
      text->push_back('\\');
      text->push_back(c);
    } else if (b < 0x21 || b > 0x7E) {
      text->push_back('\\');
      text->push_back(static_cast<char>('0' + b / 100));
      text->push_back(static_cast<char>('0' + b / 10 % 10));
      text->push_back(static_cast<char>('0' + b % 10));
    } else {
      text->push_back(Lower(c));
    }
  }
}

// Reads the name at *pos. On success *pos is just past the name where it started (past the
// first pointer if it has one), `text` holds its presentation form and `raw` its uncompressed
// wire form. Termination: every step either adds at least two bytes to the wire length, which
// is capped at 255, or follows a pointer, of which there are at most kMaxPointerJumps; each
// pointer must point before itself, and every read is bounds-checked.
bool ReadName(std::string_view w, size_t* pos, std::string* text, std::string* raw) {
  text->clear();
  raw->clear();
  size_t p = *pos;
  std::optional<size_t> after;
  int jumps = 0;
  for (;;) {
    if (p >= w.size()) return false;
    const auto len = static_cast<uint8_t>(w[p]);
    if ((len & 0xC0) == 0xC0) {
      if (p + 1 >= w.size()) return false;
      const size_t target = static_cast<size_t>(len & 0x3F) << 8 | static_cast<uint8_t>(w[p + 1]);
      if (target >= p || ++jumps > kMaxPointerJumps) return false;
      if (!after) after = p + 2;
      p = target;
      continue;
    }
    if (len > kMaxLabel) return false;  // 0x40 and 0x80: obsolete extended label types
    if (raw->size() + 1 + len > kMaxNameWire) return false;
    if (len == 0) {
      raw->push_back('\0');
      if (!after) after = p + 1;
      break;
    }
    if (p + 1 + len > w.size()) return false;
    const std::string_view label = w.substr(p + 1, len);
    raw->append(w.substr(p, 1 + len));
    AppendLabelText(text, label);
    p += 1 + len;
  }
  *pos = *after;
  return true;
}

// EDNS options: each a code, a length and that many bytes, filling the RDATA exactly.
bool OptionsWellFormed(std::string_view rdata) {
  size_t p = 0;
  while (p < rdata.size()) {
    if (p + 4 > rdata.size()) return false;
    p += 4 + Get16(rdata, p + 2);
  }
  return p == rdata.size();
}

struct Header {
  uint16_t id = 0;
  uint16_t flags = 0;
  uint16_t qd = 0, an = 0, ns = 0, ar = 0;
};

Header ReadHeader(std::string_view w) {
  return Header{Get16(w, 0), Get16(w, 2), Get16(w, 4), Get16(w, 6), Get16(w, 8), Get16(w, 10)};
}

void PutHeader(std::string& out, const Header& h) {
  for (const uint16_t v : {h.id, h.flags, h.qd, h.an, h.ns, h.ar})
    Put16(out, v);
}

// A header-only reply for a query whose header is all we trust.
std::string ErrorReply(const Header& q, Rcode rcode) {
  std::string out;
  Header h;
  h.id = q.id;
  h.flags = static_cast<uint16_t>(kFlagQr | (q.flags & (kOpcodeMask << kOpcodeShift)) |
                                  (q.flags & kFlagRd) | kFlagRa |
                                  (static_cast<uint16_t>(rcode) & kRcodeMask));
  PutHeader(out, h);
  return out;
}

struct Record {
  uint16_t type = 0;
  uint16_t klass = 0;
  uint32_t ttl = 0;
  std::string_view rdata;
  std::string raw_name;
};

// Reads one resource record at *pos; false if it is malformed or runs past the end.
bool ReadRecord(std::string_view w, size_t* pos, Record* r) {
  std::string text;
  if (!ReadName(w, pos, &text, &r->raw_name)) return false;
  if (*pos + kRecordFixed > w.size()) return false;
  r->type = Get16(w, *pos);
  r->klass = Get16(w, *pos + 2);
  r->ttl = Get32(w, *pos + 4);
  const uint16_t rdlength = Get16(w, *pos + 8);
  *pos += kRecordFixed;
  if (*pos + rdlength > w.size()) return false;
  r->rdata = w.substr(*pos, rdlength);
  *pos += rdlength;
  return true;
}

Edns EdnsOf(const Record& opt) {
  Edns e;
  e.udp_size = opt.klass;
  e.version = static_cast<uint8_t>(opt.ttl >> 16);
  e.dnssec_ok = (opt.ttl & kEdnsDo) != 0;
  return e;
}

}  // namespace

size_t Query::UdpLimit() const {
  if (!edns) return kClassicUdpSize;
  return std::clamp<size_t>(edns->udp_size, kClassicUdpSize, kOurUdpSize);
}

std::variant<Query, Rejection> ParseQuery(std::string_view w) {
  if (w.size() < kHeaderSize) return Rejection{std::nullopt, "shorter than a DNS header"};
  const Header h = ReadHeader(w);
  if (h.flags & kFlagQr) return Rejection{std::nullopt, "a response, not a query"};
  const int opcode = (h.flags >> kOpcodeShift) & kOpcodeMask;
  if (opcode != 0) {
    return Rejection{ErrorReply(h, Rcode::kNotImp),
                     "opcode " + std::to_string(opcode) + " is not supported, only QUERY"};
  }
  auto malformed = [&](std::string why) {
    return Rejection{ErrorReply(h, Rcode::kFormErr), std::move(why)};
  };
  if (h.qd != 1) return malformed("expected one question, got " + std::to_string(h.qd));

  Query q;
  q.id = h.id;
  q.recursion_desired = (h.flags & kFlagRd) != 0;
  q.checking_disabled = (h.flags & kFlagCd) != 0;
  size_t pos = kHeaderSize;
  if (!ReadName(w, &pos, &q.name, &q.wire_name)) return malformed("malformed question name");
  if (pos + 4 > w.size()) return malformed("question truncated");
  q.qtype = Get16(w, pos);
  q.qclass = Get16(w, pos + 2);
  pos += 4;

  const uint32_t before_additional = uint32_t{h.an} + h.ns;
  const uint32_t records = before_additional + h.ar;
  for (uint32_t i = 0; i < records; ++i) {
    Record r;
    if (!ReadRecord(w, &pos, &r)) return malformed("malformed or truncated record");
    if (r.type != kTypeOpt) continue;
    if (i < before_additional) return malformed("OPT record outside the additional section");
    if (q.edns) return malformed("more than one OPT record");
    if (r.raw_name.size() != 1) return malformed("OPT record not owned by the root");
    if (!OptionsWellFormed(r.rdata)) return malformed("malformed EDNS options");
    q.edns = EdnsOf(r);
  }
  if (pos != w.size()) return malformed("trailing bytes after the last record");
  return q;
}

std::string EncodeResponse(const Query& q, const Response& r, size_t limit) {
  const auto rcode = static_cast<uint16_t>(r.rcode);
  const size_t fixed = kHeaderSize + q.wire_name.size() + 4 + (q.edns ? kOptRecordSize : size_t{0});
  const size_t room = limit > fixed ? (limit - fixed) / kARecordSize : 0;
  const size_t count = std::min(r.a.size(), room);
  const bool truncated = r.truncated || count < r.a.size();

  Header h;
  h.id = q.id;
  h.flags =
      static_cast<uint16_t>(kFlagQr | (r.authoritative ? kFlagAa : 0) | (truncated ? kFlagTc : 0) |
                            (q.recursion_desired ? kFlagRd : 0) | kFlagRa |
                            (q.checking_disabled ? kFlagCd : 0) | (rcode & kRcodeMask));
  h.qd = 1;
  h.an = static_cast<uint16_t>(count);
  h.ar = q.edns ? 1 : 0;

  std::string out;
  out.reserve(fixed + count * kARecordSize);
  PutHeader(out, h);
  out += q.wire_name;
  Put16(out, q.qtype);
  Put16(out, q.qclass);
  for (size_t i = 0; i < count; ++i) {
    Put16(out, kPointerToQuestion);
    Put16(out, kTypeA);
    Put16(out, kClassIn);
    Put32(out, r.ttl);
    Put16(out, 4);
    for (const uint8_t b : r.a[i])
      out.push_back(static_cast<char>(b));
  }
  if (q.edns) {
    out.push_back('\0');
    Put16(out, kTypeOpt);
    Put16(out, static_cast<uint16_t>(kOurUdpSize));
    // Extended rcode (upper 8 bits of 12), version 0, DO copied (RFC 6891 §6.1.3, RFC 3225).
    Put32(out,
          static_cast<uint32_t>((rcode >> 4) & 0xFF) << 24 | (q.edns->dnssec_ok ? kEdnsDo : 0));
    Put16(out, 0);
  }
  return out;
}

std::string EncodeQuery(uint16_t id, std::string_view name, uint16_t qtype,
                        std::optional<Edns> edns, uint16_t qclass) {
  std::string wire_name;
  if (name.ends_with('.')) name.remove_suffix(1);
  while (!name.empty()) {
    const size_t dot = name.find('.');
    const std::string_view label = name.substr(0, dot);
    if (label.empty() || label.size() > kMaxLabel) {
      throw std::invalid_argument("dns: cannot encode the name \"" + std::string(name) +
                                  "\": empty label or label over 63 bytes");
    }
    wire_name.push_back(static_cast<char>(label.size()));
    wire_name += label;
    name.remove_prefix(dot == std::string_view::npos ? name.size() : dot + 1);
  }
  wire_name.push_back('\0');
  if (wire_name.size() > kMaxNameWire)
    throw std::invalid_argument("dns: cannot encode a name over 255 bytes");

  Header h;
  h.id = id;
  h.flags = kFlagRd;
  h.qd = 1;
  h.ar = edns ? 1 : 0;
  std::string out;
  PutHeader(out, h);
  out += wire_name;
  Put16(out, qtype);
  Put16(out, qclass);
  if (edns) {
    out.push_back('\0');
    Put16(out, kTypeOpt);
    Put16(out, edns->udp_size);
    Put32(out, static_cast<uint32_t>(edns->version) << 16 | (edns->dnssec_ok ? kEdnsDo : 0));
    Put16(out, 0);
  }
  return out;
}

std::optional<Reply> DecodeReply(std::string_view w) {
  if (w.size() < kHeaderSize) return std::nullopt;
  const Header h = ReadHeader(w);
  if (!(h.flags & kFlagQr) || h.qd > 1) return std::nullopt;
  Reply r;
  r.id = h.id;
  r.authoritative = (h.flags & kFlagAa) != 0;
  r.truncated = (h.flags & kFlagTc) != 0;
  r.recursion_desired = (h.flags & kFlagRd) != 0;
  r.recursion_available = (h.flags & kFlagRa) != 0;
  uint16_t rcode = h.flags & kRcodeMask;
  size_t pos = kHeaderSize;
  if (h.qd == 1) {
    std::string raw;
    if (!ReadName(w, &pos, &r.name, &raw) || pos + 4 > w.size()) return std::nullopt;
    r.has_question = true;
    r.qtype = Get16(w, pos);
    r.qclass = Get16(w, pos + 2);
    pos += 4;
  }
  const uint32_t records = uint32_t{h.an} + h.ns + h.ar;
  for (uint32_t i = 0; i < records; ++i) {
    Record rec;
    if (!ReadRecord(w, &pos, &rec)) return std::nullopt;
    if (i < h.an) {
      ++r.answers;
      if (rec.type == kTypeA && rec.klass == kClassIn && rec.rdata.size() == 4) {
        std::string ip;
        for (size_t k = 0; k < 4; ++k) {
          if (k) ip.push_back('.');
          ip += std::to_string(static_cast<uint8_t>(rec.rdata[k]));
        }
        r.a.push_back(std::move(ip));
      }
    } else if (rec.type == kTypeOpt && i >= uint32_t{h.an} + h.ns && !r.edns) {
      r.edns = EdnsOf(rec);
      rcode = static_cast<uint16_t>(rcode | ((rec.ttl >> 24) << 4));
    }
  }
  if (pos != w.size()) return std::nullopt;
  r.rcode = static_cast<Rcode>(rcode);
  return r;
}

uint16_t MessageId(std::string_view wire) {
  return Get16(wire, 0);
}

void SetMessageId(std::string& wire, uint16_t id) {
  wire[0] = static_cast<char>(id >> 8);
  wire[1] = static_cast<char>(id & 0xFF);
}

Rcode HeaderRcode(std::string_view wire) {
  return static_cast<Rcode>(Get16(wire, 2) & kRcodeMask);
}

bool IsReplyTo(std::string_view reply, uint16_t id, const Query& q) {
  if (reply.size() < kHeaderSize) return false;
  const Header h = ReadHeader(reply);
  if (h.id != id || !(h.flags & kFlagQr)) return false;
  if (h.qd == 0) return (h.flags & kRcodeMask) != 0;
  if (h.qd != 1) return false;
  const size_t n = q.wire_name.size();
  if (reply.size() < kHeaderSize + n + 4) return false;
  const std::string_view name = reply.substr(kHeaderSize, n);
  for (size_t i = 0; i < n; ++i) {
    if (Lower(name[i]) != Lower(q.wire_name[i])) return false;
  }
  return Get16(reply, kHeaderSize + n) == q.qtype && Get16(reply, kHeaderSize + n + 2) == q.qclass;
}

}  // namespace skep::dns
