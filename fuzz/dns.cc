// What the embedded DNS server (overlay/dns/server.cc) reads: queries from tasks, parsed with
// ParseQuery and answered by Resolve from the names of the task's networks, and the replies
// of upstream resolvers, matched to the forwarded query with IsReplyTo. The input is tried as
// both. A query we answer must get a reply, within the size limit, that DecodeReply reads and
// IsReplyTo matches to the query; a rejection's FORMERR or NOTIMP must be a reply DecodeReply
// reads. A broken property aborts, as a crash or a sanitizer report does.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "overlay/dns/message.h"
#include "overlay/dns/resolver.h"

namespace {

namespace dns = skep::dns;

const dns::Names& SampleNames() {
  static const dns::Names names = [] {
    dns::Names n;
    n.a["web"] = {"10.0.1.2"};
    n.a["tasks.web"] = {"10.0.1.3", "10.0.1.4", "10.0.1.5", "not an address"};
    n.a["empty"] = {};
    // Enough addresses that a UDP answer is truncated.
    for (int i = 0; i < 200; ++i)
      n.a["tasks.big"].push_back("10.0.2." + std::to_string(i));
    return n;
  }();
  return names;
}

void Answer(const dns::Query& q, size_t limit) {
  const dns::Decision d = dns::Resolve(q, SampleNames(), limit, 42);
  const auto* local = std::get_if<dns::LocalReply>(&d);
  if (local == nullptr) return;  // forwarded upstream
  if (local->bytes.size() > limit) std::abort();
  if (!dns::DecodeReply(local->bytes)) std::abort();
  if (!dns::IsReplyTo(local->bytes, q.id, q)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view wire(reinterpret_cast<const char*>(data), size);
  const auto parsed = dns::ParseQuery(wire);
  if (const auto* q = std::get_if<dns::Query>(&parsed)) {
    Answer(*q, q->UdpLimit());
    Answer(*q, dns::kMaxTcpMessage);
  } else {
    const auto& rejection = std::get<dns::Rejection>(parsed);
    if (rejection.reply && !dns::DecodeReply(*rejection.reply)) std::abort();
  }

  // As an upstream's reply to a query for "web" A.
  static const dns::Query sent = [] {
    const auto p = dns::ParseQuery(dns::EncodeQuery(0x1234, "web", dns::kTypeA));
    return std::get<dns::Query>(p);
  }();
  (void)dns::DecodeReply(wire);
  if (wire.size() >= dns::kHeaderSize) {
    (void)dns::IsReplyTo(wire, dns::MessageId(wire), sent);
    (void)dns::HeaderRcode(wire);
  }
  return 0;
}
