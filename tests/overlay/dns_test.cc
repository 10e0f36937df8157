// The embedded resolver's pure parts: the DNS codec and the answer-or-forward decision.
#include <unistd.h>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "overlay/dns/message.h"
#include "overlay/dns/resolver.h"
#include "overlay/dns/server.h"

using namespace skep::dns;

namespace {

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (const int b : bytes)
    out.push_back(static_cast<char>(b));
  return out;
}

// A query header: id 0xBEEF, RD, the given section counts.
std::string Header(int qd, int an = 0, int ns = 0, int ar = 0, int flags = 0x0100) {
  return Bytes({0xBE, 0xEF, flags >> 8, flags & 0xFF, qd >> 8, qd & 0xFF, an >> 8, an & 0xFF,
                ns >> 8, ns & 0xFF, ar >> 8, ar & 0xFF});
}

const std::string kTypeAClassIn = Bytes({0, 1, 0, 1});

Query Parsed(std::string_view wire) {
  auto p = ParseQuery(wire);
  if (auto* r = std::get_if<Rejection>(&p)) FAIL("rejected: " << r->reason);
  return std::get<Query>(p);
}

Rejection Rejected(std::string_view wire) {
  auto p = ParseQuery(wire);
  REQUIRE(std::holds_alternative<Rejection>(p));
  return std::get<Rejection>(p);
}

// A malformed query gets a FORMERR reply with its id and no question.
void CheckFormErr(std::string_view wire) {
  const Rejection r = Rejected(wire);
  INFO(r.reason);
  REQUIRE(r.reply);
  const auto reply = DecodeReply(*r.reply);
  REQUIRE(reply);
  CHECK(reply->id == 0xBEEF);
  CHECK(reply->rcode == Rcode::kFormErr);
  CHECK_FALSE(reply->has_question);
}

Names WebNames() {
  Names n;
  n.a["web"] = {"10.0.9.2"};
  n.a["tasks.web"] = {"10.0.9.3", "10.0.9.4"};
  return n;
}

// The reply the resolver gives locally; fails if it forwards.
Reply Local(const Query& q, const Names& names, size_t limit = 0, uint64_t seed = 1) {
  const Decision d = Resolve(q, names, limit ? limit : q.UdpLimit(), seed);
  REQUIRE(std::holds_alternative<LocalReply>(d));
  const auto reply = DecodeReply(std::get<LocalReply>(d).bytes);
  REQUIRE(reply);
  return *reply;
}

std::set<std::string> AsSet(const std::vector<std::string>& v) {
  return {v.begin(), v.end()};
}

}  // namespace

TEST_CASE("a query round-trips through the codec", "[dns]") {
  const std::string wire = EncodeQuery(0x1234, "Tasks.Web", kTypeA);
  const Query q = Parsed(wire);
  CHECK(q.id == 0x1234);
  CHECK(q.recursion_desired);
  CHECK(q.name == "tasks.web");
  CHECK(q.wire_name == Bytes({5, 'T', 'a', 's', 'k', 's', 3, 'W', 'e', 'b', 0}));
  CHECK(q.qtype == kTypeA);
  CHECK(q.qclass == kClassIn);
  CHECK_FALSE(q.edns);
  CHECK(q.UdpLimit() == 512);
}

TEST_CASE("a response echoes the question as it came, with the flags of a local answer", "[dns]") {
  const Query q = Parsed(EncodeQuery(7, "WeB", kTypeA));
  Response r;
  r.authoritative = true;
  r.a = {{10, 0, 9, 2}, {10, 0, 9, 3}};
  const std::string wire = EncodeResponse(q, r, q.UdpLimit());
  // Header, the question as sent (case kept), two A records pointing at it.
  CHECK(wire.substr(12, 9) == Bytes({3, 'W', 'e', 'B', 0, 0, 1, 0, 1}));
  CHECK(wire.size() == 12 + 9 + 2 * 16);
  const auto reply = DecodeReply(wire);
  REQUIRE(reply);
  CHECK(reply->id == 7);
  CHECK(reply->authoritative);
  CHECK(reply->recursion_desired);
  CHECK(reply->recursion_available);
  CHECK_FALSE(reply->truncated);
  CHECK(reply->rcode == Rcode::kNoError);
  CHECK(reply->name == "web");
  CHECK(reply->a == std::vector<std::string>{"10.0.9.2", "10.0.9.3"});
  // TTL 600 in each record.
  CHECK(wire.substr(12 + 9 + 6, 4) == Bytes({0, 0, 2, 0x58}));
  CHECK(IsReplyTo(wire, 7, q));
  CHECK_FALSE(IsReplyTo(wire, 8, q));
  CHECK_FALSE(IsReplyTo(wire, 7, Parsed(EncodeQuery(7, "web", kTypeAaaa))));
  CHECK_FALSE(IsReplyTo(wire, 7, Parsed(EncodeQuery(7, "db", kTypeA))));
  CHECK(IsReplyTo(wire, 7, Parsed(EncodeQuery(7, "WEB", kTypeA))));
}

TEST_CASE("a message shorter than a header, or a response, is dropped without reply", "[dns]") {
  const std::string full = EncodeQuery(1, "web", kTypeA);
  for (size_t n = 0; n < 12; ++n) {
    INFO(n);
    CHECK_FALSE(Rejected(full.substr(0, n)).reply);
  }
  std::string response = full;
  response[2] = static_cast<char>(response[2] | 0x80);
  CHECK_FALSE(Rejected(response).reply);
}

TEST_CASE("a query cut short anywhere after the header gets FORMERR", "[dns]") {
  std::string full = EncodeQuery(0xBEEF, "web.example", kTypeA, Edns{1232, 0, false});
  for (size_t n = 12; n < full.size(); ++n) {
    INFO(n);
    CheckFormErr(full.substr(0, n));
  }
}

TEST_CASE("a question count other than one gets FORMERR", "[dns]") {
  CheckFormErr(Header(0));
  const std::string q = Bytes({3, 'w', 'e', 'b', 0}) + kTypeAClassIn;
  CheckFormErr(Header(2) + q + q);
}

TEST_CASE("an opcode other than QUERY gets NOTIMP", "[dns]") {
  const std::string wire =
      Header(1, 0, 0, 0, 0x2100) + Bytes({3, 'w', 'e', 'b', 0}) + kTypeAClassIn;  // NOTIFY
  const Rejection r = Rejected(wire);
  REQUIRE(r.reply);
  const auto reply = DecodeReply(*r.reply);
  REQUIRE(reply);
  CHECK(reply->rcode == Rcode::kNotImp);
}

TEST_CASE("labels over 63 bytes and names over 255 bytes get FORMERR", "[dns]") {
  std::string label63(63, 'a');
  std::string ok = Header(1) + Bytes({63}) + label63 + Bytes({0}) + kTypeAClassIn;
  CHECK(Parsed(ok).name == label63);
  CheckFormErr(Header(1) + Bytes({64}) + std::string(64, 'a') + Bytes({0}) + kTypeAClassIn);

  // 3 labels of 63 and one of 61: exactly 255 bytes on the wire.
  std::string name;
  for (int i = 0; i < 3; ++i)
    name += Bytes({63}) + label63;
  const std::string longest = name + Bytes({61}) + std::string(61, 'b') + Bytes({0});
  REQUIRE(longest.size() == 255);
  CHECK(Parsed(Header(1) + longest + kTypeAClassIn).wire_name == longest);
  const std::string too_long = name + Bytes({62}) + std::string(62, 'b') + Bytes({0});
  CheckFormErr(Header(1) + too_long + kTypeAClassIn);
  CHECK_THROWS_AS(EncodeQuery(1, std::string(64, 'a'), kTypeA), std::invalid_argument);
  CHECK_THROWS_AS(EncodeQuery(1, "a..b", kTypeA), std::invalid_argument);
}

TEST_CASE("compression pointers that loop or point forward get FORMERR", "[dns]") {
  // A pointer to itself.
  CheckFormErr(Header(1) + Bytes({0xC0, 12}) + kTypeAClassIn);
  // A label, then a pointer back to it: a loop that only grows the name.
  CheckFormErr(Header(1) + Bytes({1, 'a', 0xC0, 12}) + kTypeAClassIn);
  // A pointer past the end of the message.
  CheckFormErr(Header(1) + Bytes({0xFF, 0xFF}) + kTypeAClassIn);
  // A pointer forward, inside the message.
  CheckFormErr(Header(1) + Bytes({0xC0, 14, 3, 'w', 'e', 'b', 0}) + kTypeAClassIn);
  // A pointer cut in half.
  CheckFormErr(Header(1) + Bytes({0xC0}));
  // A chain of backward pointers longer than allowed: in the additional section, each record's
  // name points at the previous record's name.
  std::string wire = Bytes({3, 'w', 'e', 'b', 0}) + kTypeAClassIn;
  const int records = kMaxPointerJumps + 2;
  size_t previous = 12;
  for (int i = 0; i < records; ++i) {
    const size_t here = 12 + wire.size();
    wire += Bytes({0xC0 | static_cast<int>(previous >> 8), static_cast<int>(previous & 0xFF)});
    wire += Bytes({0, 1, 0, 1, 0, 0, 0, 0, 0, 0});
    previous = here;
  }
  CheckFormErr(Header(1, 0, 0, records) + wire);
}

TEST_CASE("a backward compression pointer is followed", "[dns]") {
  // An additional record whose name points at the question's: valid, skipped.
  const std::string wire = Header(1, 0, 0, 1) + Bytes({3, 'w', 'e', 'b', 0}) + kTypeAClassIn +
                           Bytes({0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4});
  CHECK(Parsed(wire).name == "web");
}

TEST_CASE("trailing bytes and extended label types get FORMERR", "[dns]") {
  CheckFormErr(EncodeQuery(0xBEEF, "web", kTypeA) + Bytes({0}));
  CheckFormErr(Header(1) + Bytes({0x41, 0}) + kTypeAClassIn);
}

TEST_CASE("a label with a dot in it is escaped and matches no plain name", "[dns]") {
  const std::string wire = Header(1) + Bytes({5, 't', 'a', 's', 'k', 's'}) +
                           Bytes({7, 'w', 'e', 'b', '.', 'x', '\\', 1, 0}) + kTypeAClassIn;
  const Query q = Parsed(wire);
  CHECK(q.name == "tasks.web\\.x\\\\\\001");
  Names names;
  names.a["tasks.web.x"] = {"10.0.0.1"};
  CHECK(std::holds_alternative<Forward>(Resolve(q, names, 512, 0)));
}

TEST_CASE("EDNS sets the UDP size and is echoed", "[dns]") {
  Query q = Parsed(EncodeQuery(1, "web", kTypeA, Edns{1232, 0, true}));
  REQUIRE(q.edns);
  CHECK(q.edns->udp_size == 1232);
  CHECK(q.edns->dnssec_ok);
  CHECK(q.UdpLimit() == 1232);
  const Reply r = Local(q, WebNames());
  REQUIRE(r.edns);
  CHECK(r.edns->version == 0);
  CHECK(r.edns->dnssec_ok);
  CHECK(r.edns->udp_size == kOurUdpSize);
  CHECK(r.a == std::vector<std::string>{"10.0.9.2"});

  // Below 512 counts as 512; above what we send, as what we send.
  CHECK(Parsed(EncodeQuery(1, "web", kTypeA, Edns{100, 0, false})).UdpLimit() == 512);
  CHECK(Parsed(EncodeQuery(1, "web", kTypeA, Edns{65000, 0, false})).UdpLimit() == kOurUdpSize);
  // No OPT in, none out.
  CHECK_FALSE(Local(Parsed(EncodeQuery(1, "web", kTypeA)), WebNames()).edns);
}

TEST_CASE("malformed EDNS gets FORMERR, an unknown version BADVERS", "[dns]") {
  const std::string opt = Bytes({0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0});
  const std::string question = Bytes({3, 'w', 'e', 'b', 0}) + kTypeAClassIn;
  CHECK(Parsed(Header(1, 0, 0, 1) + question + opt).edns);
  CheckFormErr(Header(1, 0, 0, 2) + question + opt + opt);              // two OPT records
  CheckFormErr(Header(1, 1, 0, 0) + question + opt);                    // in the answer section
  CheckFormErr(Header(1, 0, 0, 1) + question + Bytes({1, 'x'}) + opt);  // not the root's
  // An option whose length runs past the RDATA.
  CheckFormErr(Header(1, 0, 0, 1) + question +
               Bytes({0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 5, 0, 10, 0, 8, 1}));
  // A well-formed option (a cookie) is fine.
  CHECK(Parsed(Header(1, 0, 0, 1) + question +
               Bytes({0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 12, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}))
            .edns);

  const Query v1 = Parsed(EncodeQuery(1, "web", kTypeA, Edns{1232, 1, false}));
  const Reply r = Local(v1, WebNames());
  CHECK(r.rcode == Rcode::kBadVers);
  CHECK(r.a.empty());
}

TEST_CASE("names match ignoring case, with or without a trailing dot", "[dns]") {
  const Names names = WebNames();
  for (const char* name : {"web", "web.", "WEB", "Web."}) {
    INFO(name);
    const Reply r = Local(Parsed(EncodeQuery(1, name, kTypeA)), names);
    CHECK(r.a == std::vector<std::string>{"10.0.9.2"});
    CHECK(r.authoritative);
    CHECK(r.rcode == Rcode::kNoError);
  }
  const Reply tasks = Local(Parsed(EncodeQuery(1, "TASKS.web.", kTypeA)), names);
  CHECK(AsSet(tasks.a) == std::set<std::string>{"10.0.9.3", "10.0.9.4"});
}

TEST_CASE("a known name of another type answers NOERROR with no records, ANY gives A", "[dns]") {
  const Names names = WebNames();
  const Reply aaaa = Local(Parsed(EncodeQuery(1, "web", kTypeAaaa)), names);
  CHECK(aaaa.rcode == Rcode::kNoError);
  CHECK(aaaa.answers == 0);
  CHECK(aaaa.authoritative);
  CHECK(aaaa.qtype == kTypeAaaa);
  const Reply any = Local(Parsed(EncodeQuery(1, "tasks.web", kTypeAny)), names);
  CHECK(AsSet(any.a) == std::set<std::string>{"10.0.9.3", "10.0.9.4"});
  // A known name with no (valid) addresses exists, and has no A record.
  Names empty;
  empty.a["tasks.db"] = {"not-an-ip"};
  const Reply none = Local(Parsed(EncodeQuery(1, "tasks.db", kTypeA)), empty);
  CHECK(none.rcode == Rcode::kNoError);
  CHECK(none.answers == 0);
}

TEST_CASE("names that are not ours are forwarded, other classes are refused", "[dns]") {
  const Names names = WebNames();
  for (const char* name : {"db", "tasks.db", "example.com", "web.example.com", ""}) {
    INFO(name);
    CHECK(std::holds_alternative<Forward>(
        Resolve(Parsed(EncodeQuery(1, name, kTypeA)), names, 512, 0)));
    CHECK(std::holds_alternative<Forward>(
        Resolve(Parsed(EncodeQuery(1, name, kTypeAaaa)), names, 512, 0)));
  }
  for (const char* name : {"web", "version.bind"}) {
    INFO(name);
    const Reply r = Local(Parsed(EncodeQuery(1, name, kTypeA, std::nullopt, kClassChaos)), names);
    CHECK(r.rcode == Rcode::kRefused);
    CHECK_FALSE(r.authoritative);
    CHECK(r.a.empty());
  }
}

TEST_CASE("replies are built for every rcode with the question echoed", "[dns]") {
  const Query q = Parsed(EncodeQuery(9, "db", kTypeA, Edns{1232, 0, false}));
  for (const Rcode rc : {Rcode::kNxDomain, Rcode::kServFail, Rcode::kRefused}) {
    Response r;
    r.rcode = rc;
    const auto reply = DecodeReply(EncodeResponse(q, r, q.UdpLimit()));
    REQUIRE(reply);
    CHECK(reply->rcode == rc);
    CHECK(reply->id == 9);
    CHECK(reply->name == "db");
    CHECK(reply->answers == 0);
    CHECK_FALSE(reply->authoritative);
    CHECK(reply->recursion_available);
  }
}

TEST_CASE("an answer too big for the client's UDP size is truncated with TC", "[dns]") {
  Names names;
  for (int i = 0; i < 100; ++i)
    names.a["tasks.big"].push_back("10.0.1." + std::to_string(i));

  const Query plain = Parsed(EncodeQuery(1, "tasks.big", kTypeA));
  const Decision d = Resolve(plain, names, plain.UdpLimit(), 3);
  const std::string& wire = std::get<LocalReply>(d).bytes;
  CHECK(wire.size() <= 512);
  const auto small = DecodeReply(wire);
  REQUIRE(small);
  CHECK(small->truncated);
  CHECK(small->a.size() > 0);
  CHECK(small->a.size() < 100);

  // Over TCP, or with a large enough EDNS size, everything fits.
  const Reply tcp = Local(plain, names, kMaxTcpMessage);
  CHECK_FALSE(tcp.truncated);
  CHECK(tcp.a.size() == 100);
  const Reply edns =
      Local(Parsed(EncodeQuery(1, "tasks.big", kTypeA, Edns{4096, 0, false})), names);
  CHECK_FALSE(edns.truncated);
  CHECK(edns.a.size() == 100);
  // A limit that fits exactly n records.
  const Query q = Parsed(EncodeQuery(1, "tasks.big", kTypeA));
  const size_t fixed = 12 + q.wire_name.size() + 4;
  const Reply three = Local(q, names, fixed + 3 * 16);
  CHECK(three.a.size() == 3);
  CHECK(three.truncated);
}

TEST_CASE("the order of the addresses varies from answer to answer", "[dns]") {
  Names names;
  names.a["tasks.web"] = {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"};
  const Query q = Parsed(EncodeQuery(1, "tasks.web", kTypeA));
  std::set<std::string> firsts;
  std::set<std::vector<std::string>> orders;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    const Reply r = Local(q, names, 512, seed);
    CHECK(AsSet(r.a) == AsSet(names.a["tasks.web"]));
    firsts.insert(r.a.front());
    orders.insert(r.a);
  }
  CHECK(firsts.size() == 4);
  CHECK(orders.size() > 12);
  // Same seed, same order.
  CHECK(Local(q, names, 512, 42).a == Local(q, names, 512, 42).a);
}

TEST_CASE("random and mutated messages never crash the codec", "[dns]") {
  std::mt19937_64 rng(20240601);
  const Names names = WebNames();
  auto check = [&](const std::string& wire) {
    const auto parsed = ParseQuery(wire);
    if (const auto* rejected = std::get_if<Rejection>(&parsed)) {
      if (rejected->reply) {
        REQUIRE(rejected->reply->size() == 12);
        REQUIRE(MessageId(*rejected->reply) == MessageId(wire));
      }
    } else {
      const Query& q = std::get<Query>(parsed);
      const Decision d = Resolve(q, names, q.UdpLimit(), rng());
      if (const auto* local = std::get_if<LocalReply>(&d)) {
        REQUIRE(local->bytes.size() <= q.UdpLimit());
        const auto reply = DecodeReply(local->bytes);
        REQUIRE(reply);
        REQUIRE(reply->id == q.id);
        REQUIRE(IsReplyTo(local->bytes, q.id, q));
      }
    }
    (void)DecodeReply(wire);
    (void)IsReplyTo(wire, 1, Parsed(EncodeQuery(1, "web", kTypeA)));
  };
  for (int i = 0; i < 10000; ++i) {
    std::string wire(rng() % 300, '\0');
    for (char& c : wire)
      c = static_cast<char>(rng());
    // Half of them with a plausible header, to get past the first checks.
    if (i % 2 && wire.size() >= 12) {
      wire[2] = static_cast<char>(wire[2] & 0x01);
      wire[4] = 0;
      wire[5] = 1;
      wire[6] = wire[8] = wire[10] = 0;
      wire[7] = static_cast<char>(wire[7] & 1);
      wire[9] = static_cast<char>(wire[9] & 1);
      wire[11] = static_cast<char>(wire[11] & 3);
    }
    check(wire);
  }
  const std::vector<std::string> seeds = {
      EncodeQuery(1, "tasks.web", kTypeA, Edns{1232, 0, true}), EncodeQuery(2, "web", kTypeAaaa),
      Header(1, 0, 0, 1) + Bytes({3, 'w', 'e', 'b', 0}) + kTypeAClassIn +
          Bytes({0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4})};
  for (int i = 0; i < 10000; ++i) {
    std::string wire = seeds[i % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e)
      wire[rng() % wire.size()] = static_cast<char>(rng());
    if (rng() % 4 == 0) wire.resize(rng() % (wire.size() + 1));
    check(wire);
  }
}

TEST_CASE("upstreams are read from resolv.conf, without ourselves", "[dns]") {
  const std::string path =
      std::filesystem::temp_directory_path() / ("skep-dns-resolv-" + std::to_string(getpid()));
  {
    std::ofstream out(path);
    out << "# generated\nsearch example.com\nnameserver 10.0.0.53\n"
        << "nameserver 127.0.0.11\n  nameserver   2001:db8::1  \n; comment\nnameserver\n"
        << "options ndots:2\nnameserver 127.0.0.53 # stub\n";
  }
  CHECK(DnsServer::UpstreamsFromResolvConf(path) ==
        std::vector<std::string>{"10.0.0.53", "2001:db8::1", "127.0.0.53"});
  std::filesystem::remove(path);
  CHECK(DnsServer::UpstreamsFromResolvConf(path).empty());
}
