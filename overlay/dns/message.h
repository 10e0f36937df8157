// DNS messages as the embedded resolver (127.0.0.11) reads and writes them: RFC 1035 §4 with
// EDNS(0) (RFC 6891). Pure: no I/O, no clock, no global random generator.
//
// What ParseQuery accepts: a 12-byte header with QR clear and opcode QUERY, exactly one
// question, then exactly the answer, authority and additional records the header counts (each
// skipped by its RDLENGTH) and nothing after them. At most one OPT record, in the additional
// section, with the root as its name and well-formed options. Names: labels of at most 63
// bytes, at most 255 bytes on the wire, compression pointers only to an earlier offset and at
// most kMaxPointerJumps of them per name, so a hostile message can neither loop nor read out
// of bounds. Anything else is rejected: with a FORMERR reply (NOTIMP for another opcode) when
// the header could be read, silently when it could not or when the message is a response (a
// reply to a reply could bounce forever).
//
// What EncodeResponse writes: the header (QR, RA set; RD and CD copied; AA as asked), the
// question echoed as it came (case kept, for clients that randomise case), A records whose
// names point back at the question (0xC00C), and an OPT record when the query had one (our
// payload size kOurUdpSize, the DO bit copied, the extended rcode bits). Records that do not
// fit the size limit are left out and TC is set, so the client retries over TCP.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace skep::dns {

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kTypeOpt = 41;
inline constexpr uint16_t kTypeAny = 255;
inline constexpr uint16_t kClassIn = 1;
inline constexpr uint16_t kClassChaos = 3;

inline constexpr size_t kHeaderSize = 12;
// The UDP payload limit without EDNS (RFC 1035 §4.2.1).
inline constexpr size_t kClassicUdpSize = 512;
// The largest UDP reply we send, whatever the client advertises, and the payload size we
// advertise in our own OPT records.
inline constexpr size_t kOurUdpSize = 4096;
inline constexpr size_t kMaxTcpMessage = 65535;
inline constexpr int kMaxPointerJumps = 64;
// The TTL of local answers; Docker's embedded resolver uses 600 s too.
inline constexpr uint32_t kLocalTtl = 600;

// Values above 15 need EDNS: their upper bits travel in the OPT record.
enum class Rcode : uint16_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNxDomain = 3,
  kNotImp = 4,
  kRefused = 5,
  kBadVers = 16,
};

struct Edns {
  uint16_t udp_size = 0;  // the requester's payload size, as sent
  uint8_t version = 0;
  bool dnssec_ok = false;
  bool operator==(const Edns&) const = default;
};

struct Query {
  uint16_t id = 0;
  bool recursion_desired = false;
  bool checking_disabled = false;
  // The question's name for lookups: ASCII lowercased, labels joined by '.', no trailing dot,
  // "" for the root. A '.' or '\' inside a label and bytes outside printable ASCII are escaped
  // as in RFC 1035 §5.1 ("\.", "\\", "\DDD"), so such a name never equals a plain one.
  std::string name;
  // The question's name as it came (case kept), uncompressed wire form ending in the root.
  std::string wire_name;
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  std::optional<Edns> edns;

  // The largest UDP reply the client takes: 512 without EDNS, else its payload size, at least
  // 512 (RFC 6891 §6.2.5) and at most kOurUdpSize.
  size_t UdpLimit() const;
};

// Why a message is not a query we answer, and what to send back if anything.
struct Rejection {
  std::optional<std::string> reply;  // FORMERR or NOTIMP; nullopt: drop the message
  std::string reason;
};

std::variant<Query, Rejection> ParseQuery(std::string_view wire);

struct Response {
  Rcode rcode = Rcode::kNoError;
  bool authoritative = false;
  bool truncated = false;                 // set TC even when every record fits
  std::vector<std::array<uint8_t, 4>> a;  // A records, written in this order
  uint32_t ttl = kLocalTtl;
};

// The reply to `q`, at most `limit` bytes (q.UdpLimit() over UDP, kMaxTcpMessage over TCP).
std::string EncodeResponse(const Query& q, const Response& r, size_t limit);

// A query for `name` ("web", "web." or "Tasks.Web"; no escapes) with RD set, and an OPT record
// when `edns` is given. Throws std::invalid_argument for a name that has an empty label, a
// label over 63 bytes or is over 255 bytes on the wire. For clients and tests.
std::string EncodeQuery(uint16_t id, std::string_view name, uint16_t qtype,
                        std::optional<Edns> edns = std::nullopt, uint16_t qclass = kClassIn);

// The parts of a reply a client looks at. For clients and tests.
struct Reply {
  uint16_t id = 0;
  bool authoritative = false;
  bool truncated = false;
  bool recursion_desired = false;
  bool recursion_available = false;
  Rcode rcode = Rcode::kNoError;  // with the OPT record's extended bits
  bool has_question = false;
  std::string name;  // the question, as in Query::name
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  size_t answers = 0;          // records in the answer section
  std::vector<std::string> a;  // the answer section's A records, dotted quads, in order
  std::optional<Edns> edns;
};

// Reads a reply with at most one question; nullopt if it is not a well-formed response.
std::optional<Reply> DecodeReply(std::string_view wire);

// Header fields of a message at least kHeaderSize long.
uint16_t MessageId(std::string_view wire);
void SetMessageId(std::string& wire, uint16_t id);
Rcode HeaderRcode(std::string_view wire);  // the header's 4 bits only

// Whether `reply` answers the query `q` sent with id `id`: a response with that id whose
// question is q's (names compared ignoring ASCII case), or an error response with no question
// (what a server that could not parse the query sends).
bool IsReplyTo(std::string_view reply, uint16_t id, const Query& q);

}  // namespace skep::dns
