#include <catch2/catch.hpp>

#include "scheduler/constraint.h"

using namespace skep::scheduler;

namespace {

Constraint Parse(std::string_view text) {
  ParsedConstraint parsed = ParseConstraint(text);
  if (auto* err = std::get_if<std::string>(&parsed)) FAIL("unexpected error: " << *err);
  return std::get<Constraint>(parsed);
}

std::string ParseError(std::string_view text) {
  ParsedConstraint parsed = ParseConstraint(text);
  if (std::holds_alternative<Constraint>(parsed)) FAIL("expected an error for " << text);
  return std::get<std::string>(parsed);
}

NodeInfo Worker() {
  NodeInfo n;
  n.id = "n1abc";
  n.hostname = "pi-kitchen";
  n.role = "worker";
  n.addr = "10.88.0.11";
  n.platform = {"linux", "aarch64"};
  n.labels = {{"zone", "a"}, {"Disk", "ssd"}};
  n.engine_labels = {{"gpu", "none"}};
  return n;
}

bool M(std::string_view text, const NodeInfo& node) {
  return Matches(Parse(text), node);
}

}  // namespace

TEST_CASE("constraints parse with or without spaces around the operator", "[constraint]") {
  Constraint c = Parse("node.role==manager");
  CHECK(c.key == "node.role");
  CHECK(c.op == Op::kEq);
  CHECK(c.value == "manager");
  CHECK(c.text == "node.role==manager");

  c = Parse("  node.labels.zone != a  ");
  CHECK(c.key == "node.labels.zone");
  CHECK(c.op == Op::kNeq);
  CHECK(c.value == "a");
  CHECK(c.text == "node.labels.zone != a");

  c = Parse("node.ip==10.0.0.0/8");
  CHECK(c.key == "node.ip");
  CHECK(c.value == "10.0.0.0/8");
}

TEST_CASE("every known key parses and the fixed part of a key ignores case", "[constraint]") {
  for (const char* key : {"node.id", "node.hostname", "node.platform.os", "node.platform.arch",
                          "node.labels.zone", "engine.labels.storage"}) {
    CHECK(Parse(std::string(key) + "==x").key == key);
  }
  CHECK(Parse("node.role==worker").key == "node.role");
  CHECK(Parse("node.ip==fd00::1").key == "node.ip");
  CHECK(Parse("NODE.Hostname==h").key == "node.hostname");
  // A label's name keeps its case: labels are case-sensitive.
  CHECK(Parse("Node.Labels.Zone==a").key == "node.labels.Zone");
  CHECK(Parse("ENGINE.labels.Gpu!=x").key == "engine.labels.Gpu");
}

TEST_CASE("an unknown key is named in the error", "[constraint]") {
  CHECK(ParseError("node.rol==manager") ==
        "invalid constraint \"node.rol==manager\": unknown key \"node.rol\"");
  CHECK(ParseError("node.labels==a") ==
        "invalid constraint \"node.labels==a\": unknown key \"node.labels\"");
  CHECK(ParseError("zone==a") == "invalid constraint \"zone==a\": unknown key \"zone\"");
}

TEST_CASE("malformed constraints are rejected with what is wrong", "[constraint]") {
  CHECK(ParseError("node.role=manager") ==
        "invalid constraint \"node.role=manager\": expected KEY==VALUE or KEY!=VALUE");
  CHECK(ParseError("") == "invalid constraint \"\": expected KEY==VALUE or KEY!=VALUE");
  CHECK(ParseError("node.role~manager") ==
        "invalid constraint \"node.role~manager\": expected KEY==VALUE or KEY!=VALUE");
  CHECK(ParseError("==manager") ==
        "invalid constraint \"==manager\": empty key (expected KEY==VALUE or KEY!=VALUE)");
  CHECK(ParseError("node.role==") == "invalid constraint \"node.role==\": empty value");
  CHECK(ParseError("node.role ==   ") == "invalid constraint \"node.role ==\": empty value");
  CHECK(ParseError("node.labels.==a") ==
        "invalid constraint \"node.labels.==a\": empty label name");
  CHECK(ParseError("engine.labels.==a") ==
        "invalid constraint \"engine.labels.==a\": empty label name");
  CHECK(ParseError("node.labels.my zone==a") ==
        "invalid constraint \"node.labels.my zone==a\": invalid label name \"my zone\"; a label "
        "name has letters, digits and -_.");
  CHECK(ParseError("node.labels.zone==a==b") ==
        "invalid constraint \"node.labels.zone==a==b\": value \"a==b\" contains \"=\"; a value "
        "has letters, digits, spaces and :-_.*()?+[]\\^$|/");
  CHECK(ParseError("node.labels.zone!=a<b").find("contains \"<\"") != std::string::npos);
  CHECK(ParseError("node.role==boss") ==
        "invalid constraint \"node.role==boss\": node.role is \"manager\" or \"worker\", not "
        "\"boss\"");
  CHECK(ParseError("node.ip==10.0.0") ==
        "invalid constraint \"node.ip==10.0.0\": \"10.0.0\" is not an IP address or a CIDR "
        "network");
  CHECK_FALSE(ParseError("node.ip==10.0.0.0/33").empty());
  CHECK_FALSE(ParseError("node.ip==fd00::/129").empty());
}

TEST_CASE("values may contain spaces and the characters swarm mode allows", "[constraint]") {
  CHECK(Parse("node.labels.name==my node").value == "my node");
  CHECK(Parse("node.labels.path==/srv/data_1:rw").value == "/srv/data_1:rw");
}

TEST_CASE("ParseConstraints returns all or the first error", "[constraint]") {
  auto ok = ParseConstraints({"node.role==worker", "node.labels.zone!=c"});
  REQUIRE(std::holds_alternative<std::vector<Constraint>>(ok));
  CHECK(std::get<std::vector<Constraint>>(ok).size() == 2);
  auto bad = ParseConstraints({"node.role==worker", "node.rol==x", "bogus"});
  REQUIRE(std::holds_alternative<std::string>(bad));
  CHECK(std::get<std::string>(bad) ==
        "invalid constraint \"node.rol==x\": unknown key \"node.rol\"");
}

TEST_CASE("role, id and hostname match case-insensitively", "[constraint]") {
  NodeInfo n = Worker();
  CHECK(M("node.role==worker", n));
  CHECK(M("node.role==WORKER", n));
  CHECK_FALSE(M("node.role==manager", n));
  CHECK(M("node.role!=manager", n));
  CHECK(M("node.id==n1abc", n));
  CHECK_FALSE(M("node.id!=n1abc", n));
  CHECK(M("node.hostname==Pi-Kitchen", n));
  CHECK_FALSE(M("node.hostname==pi", n));  // whole value, not a prefix
  CHECK(M("node.hostname!=pi-garage", n));
}

TEST_CASE("labels: values compare case-insensitively, names are case-sensitive", "[constraint]") {
  NodeInfo n = Worker();
  CHECK(M("node.labels.zone==a", n));
  CHECK(M("node.labels.zone==A", n));
  CHECK_FALSE(M("node.labels.zone!=a", n));
  CHECK(M("node.labels.zone!=b", n));
  CHECK(M("node.labels.Disk==ssd", n));
  CHECK_FALSE(M("node.labels.disk==ssd", n));  // no label "disk"
}

TEST_CASE("a node without the label fails == and satisfies !=", "[constraint]") {
  NodeInfo n = Worker();
  CHECK_FALSE(M("node.labels.rack==r1", n));
  CHECK(M("node.labels.rack!=r1", n));
  CHECK_FALSE(M("engine.labels.rack==r1", n));
  CHECK(M("engine.labels.rack!=r1", n));
}

TEST_CASE("engine labels are separate from node labels", "[constraint]") {
  NodeInfo n = Worker();
  CHECK(M("engine.labels.gpu==none", n));
  CHECK_FALSE(M("node.labels.gpu==none", n));
  CHECK_FALSE(M("engine.labels.zone==a", n));
}

TEST_CASE("node.ip matches a plain address or a CIDR network", "[constraint]") {
  NodeInfo n = Worker();
  CHECK(M("node.ip==10.88.0.11", n));
  CHECK_FALSE(M("node.ip==10.88.0.12", n));
  CHECK(M("node.ip!=10.88.0.12", n));
  CHECK(M("node.ip==10.0.0.0/8", n));
  CHECK(M("node.ip==10.88.0.0/24", n));
  CHECK(M("node.ip==10.88.0.11/32", n));
  CHECK(M("node.ip==10.1.2.3/8", n));  // host bits are ignored
  CHECK(M("node.ip==0.0.0.0/0", n));
  CHECK_FALSE(M("node.ip==10.88.1.0/24", n));
  CHECK(M("node.ip!=192.168.0.0/16", n));
  CHECK_FALSE(M("node.ip!=10.88.0.0/16", n));
  CHECK(M("node.ip==::ffff:10.88.0.11", n));  // the IPv4-mapped spelling of the same address
  CHECK_FALSE(M("node.ip==fd00::/8", n));

  n.addr = "fd00:88::11";
  CHECK(M("node.ip==fd00:88::11", n));
  CHECK(M("node.ip==FD00:88:0::11", n));
  CHECK(M("node.ip==fd00::/16", n));
  CHECK(M("node.ip==fd00:88::/33", n));
  CHECK_FALSE(M("node.ip==fd01::/16", n));
  CHECK_FALSE(M("node.ip==10.0.0.0/8", n));
  CHECK(M("node.ip!=10.0.0.0/8", n));

  n.addr = "";  // unknown address: in no network, equal to no address
  CHECK_FALSE(M("node.ip==10.0.0.0/8", n));
  CHECK(M("node.ip!=10.0.0.0/8", n));
}

TEST_CASE("platform keys match the node's reported os and arch", "[constraint]") {
  NodeInfo n = Worker();
  CHECK(M("node.platform.os==linux", n));
  CHECK(M("node.platform.os==Linux", n));
  CHECK(M("node.platform.arch==aarch64", n));
  CHECK_FALSE(M("node.platform.arch==x86_64", n));
  CHECK(M("node.platform.arch!=x86_64", n));
}

TEST_CASE("a constraint that was never parsed matches nothing if its key is unknown",
          "[constraint]") {
  NodeInfo n = Worker();
  CHECK_FALSE(Matches(Constraint{"node.rol", Op::kNeq, "x", "node.rol!=x"}, n));
  CHECK_FALSE(Matches(Constraint{"node.ip", Op::kNeq, "garbage", "node.ip!=garbage"}, n));
  // A hand-built constraint on a known key works like a parsed one.
  CHECK(Matches(Constraint{"node.role", Op::kEq, "worker", ""}, n));
}
