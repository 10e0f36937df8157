#include "daemon/cli/template.h"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "daemon/cli/format.h"

using namespace skep;
using cli::Template;
using cli::TemplateError;
namespace json = boost::json;

namespace {

std::string Run(const std::string& text, const json::value& data = nullptr,
                Template::TextEscapes escapes = Template::TextEscapes::kKeep) {
  return Template::Parse(text, escapes).Execute(data);
}

// The message of the error `text` fails with, and which kind it was.
std::pair<TemplateError::Kind, std::string> Failure(const std::string& text,
                                                    const json::value& data = nullptr) {
  try {
    Run(text, data);
  } catch (const TemplateError& e) {
    return {e.kind(), e.what()};
  }
  FAIL("no error from " << text);
  return {};
}

std::string ParseError(const std::string& text) {
  auto [kind, msg] = Failure(text);
  CHECK(kind == TemplateError::Kind::kParse);
  return msg;
}

std::string ExecError(const std::string& text, const json::value& data) {
  auto [kind, msg] = Failure(text, data);
  CHECK(kind == TemplateError::Kind::kExecute);
  return msg;
}

const json::value kNode = json::parse(R"({
  "ID": "f15m9npvwumliqoe6wzor8tvh",
  "Version": {"Index": 10},
  "Spec": {"Labels": {"zone": "eu", "disk": "ssd"}, "Role": "manager"},
  "Description": {"Hostname": "master01", "Resources": {"NanoCPUs": 4000000000}},
  "Addrs": ["10.0.0.1", "10.0.0.2"],
  "Empty": [],
  "Nothing": null,
  "Leader": true
})");

}  // namespace

TEST_CASE("template fields and chains print the values they name", "[cli][template]") {
  CHECK(Run("{{.ID}}", kNode) == "f15m9npvwumliqoe6wzor8tvh");
  CHECK(Run("host={{.Description.Hostname}} cpus={{.Description.Resources.NanoCPUs}}", kNode) ==
        "host=master01 cpus=4000000000");
  CHECK(Run("{{.}}", "plain") == "plain");
  CHECK(Run("no actions at all") == "no actions at all");
  CHECK(Run("{{$.ID}}", kNode) == "f15m9npvwumliqoe6wzor8tvh");
}

TEST_CASE("template values print as Go prints them", "[cli][template]") {
  CHECK(Run("{{.}}", 42) == "42");
  CHECK(Run("{{.}}", -7) == "-7");
  CHECK(Run("{{.}}", 1.5) == "1.5");
  CHECK(Run("{{.}}", 100.0) == "100");
  CHECK(Run("{{.}}", 1e21) == "1e+21");
  CHECK(Run("{{.}}", 1e20) == "100000000000000000000");
  CHECK(Run("{{.}}", 0.00001) == "1e-05");
  CHECK(Run("{{.Leader}} {{false}}", kNode) == "true false");
  CHECK(Run("{{.Nothing}}", kNode) == "<no value>");
  // Maps with sorted keys, whatever order the object has; slices space-separated.
  CHECK(Run("{{.Spec.Labels}}", kNode) == "map[disk:ssd zone:eu]");
  CHECK(Run("{{.Spec}}", kNode) == "map[Labels:map[disk:ssd zone:eu] Role:manager]");
  CHECK(Run("{{.Addrs}} {{.Empty}}", kNode) == "[10.0.0.1 10.0.0.2] []");
  CHECK(Run("{{.}}", json::parse(R"([null, {}])")) == "[<nil> map[]]");
  CHECK(Run("{{123}} {{-4}} {{2.50}} {{\"q\"}} {{`raw\\t`}}") == "123 -4 2.5 q raw\\t");
}

TEST_CASE("template: a field the data lacks is an error naming the field", "[cli][template]") {
  CHECK(ExecError("{{.Foo}}", kNode) ==
        "template: :1:2: executing \"\" at <.Foo>: can't evaluate field Foo");
  // Go points at a chain's second element.
  CHECK(ExecError("id {{.Spec.Nope}}", kNode) ==
        "template: :1:10: executing \"\" at <.Spec.Nope>: can't evaluate field Nope");
  CHECK(ExecError("line one\n  {{.Foo}}", kNode) ==
        "template: :2:4: executing \"\" at <.Foo>: can't evaluate field Foo");
  CHECK(ExecError("{{.ID.Short}}", kNode) ==
        "template: :1:5: executing \"\" at <.ID.Short>: can't evaluate field Short in type "
        "string");
  CHECK(ExecError("{{.Nothing.X}}", kNode) ==
        "template: :1:10: executing \"\" at <.Nothing.X>: nil pointer evaluating interface {}.X");
  // Inside range the element is the dot, and its fields are checked too.
  CHECK(ExecError("{{range .Addrs}}{{.Port}}{{end}}", kNode) ==
        "template: :1:18: executing \"\" at <.Port>: can't evaluate field Port in type string");
}

TEST_CASE("template json prints compact JSON in the object's order", "[cli][template]") {
  CHECK(Run("{{json .Version}}", kNode) == R"({"Index":10})");
  CHECK(Run("{{json .Description.Hostname}}", kNode) == R"("master01")");
  CHECK(Run("{{json .}}", json::parse(R"({"b":[1,2],"a":"<&>"})")) == R"({"b":[1,2],"a":"<&>"})");
  CHECK(Run("{{json .Nothing}}", kNode) == "null");
}

TEST_CASE("template index looks up keys and positions", "[cli][template]") {
  CHECK(Run(R"({{index .Spec.Labels "zone"}})", kNode) == "eu");
  // A label that is not there is empty, as in Docker's map[string]string.
  CHECK(Run(R"([{{index .Spec.Labels "rack"}}])", kNode) == "[]");
  CHECK(Run("{{index .Addrs 1}}", kNode) == "10.0.0.2");
  CHECK(Run(R"({{index . "Spec" "Role"}})", kNode) == "manager");
  CHECK(ExecError("{{index .Addrs 5}}", kNode) ==
        "template: :1:2: executing \"\" at <index .Addrs 5>: error calling index: index out of "
        "range: 5");
  CHECK(ExecError("{{index .ID 0}}", kNode).find("can't index item of type string") !=
        std::string::npos);
}

TEST_CASE("template string functions: lower, upper, join, split, title, pad, truncate, len",
          "[cli][template]") {
  CHECK(Run("{{lower .Spec.Role}} {{upper .Spec.Role}}", kNode) == "manager MANAGER");
  CHECK(Run(R"({{join .Addrs ","}})", kNode) == "10.0.0.1,10.0.0.2");
  CHECK(Run(R"({{join .Empty ","}})", kNode) == "");
  CHECK(Run(R"({{join (split "a:b:c" ":") "-"}})") == "a-b-c");
  CHECK(Run(R"({{title "hello big world"}})") == "Hello Big World");
  CHECK(Run(R"([{{pad "x" 2 1}}][{{pad "" 2 1}}])") == "[  x ][]");
  CHECK(Run(R"({{truncate .ID 5}})", kNode) == "f15m9");
  CHECK(Run("{{len .Addrs}} {{len .Spec.Labels}} {{len .ID}}", kNode) == "2 2 25");
  CHECK(ExecError(R"({{join .ID ","}})", kNode).find("expected []string; got string") !=
        std::string::npos);
  CHECK(ExecError("{{join .Addrs}}", kNode).find("wrong number of args for join: want 2 got 1") !=
        std::string::npos);
}

TEST_CASE("template println, print and printf write as fmt does", "[cli][template]") {
  CHECK(Run("a{{println}}b") == "a\nb");
  CHECK(Run("{{println .Spec.Role .Leader}}", kNode) == "manager true\n");
  CHECK(Run(R"({{print 1 2 "x" 3}})") == "1 2x3");
  CHECK(Run(R"({{printf "%-10s|%5d|%05.1f|%q|%v" .Spec.Role 42 3.14159 "a\"b" .Leader}})", kNode) ==
        R"(manager   |   42|003.1|"a\"b"|true)");
  CHECK(Run(R"({{printf "%s %s" "one"}})") == "one %!s(MISSING)");
  CHECK(Run(R"({{.Spec.Role | printf "<%s>"}})", kNode) == "<manager>");
}

TEST_CASE("template range visits elements, keys in order, and else when empty", "[cli][template]") {
  CHECK(Run("{{range .Addrs}}[{{.}}]{{end}}", kNode) == "[10.0.0.1][10.0.0.2]");
  CHECK(Run("{{range $i, $a := .Addrs}}{{$i}}={{$a}} {{end}}", kNode) == "0=10.0.0.1 1=10.0.0.2 ");
  // Objects are visited in key order, as Go does with maps.
  CHECK(Run("{{range $k, $v := .Spec.Labels}}{{$k}}={{$v}};{{end}}", kNode) == "disk=ssd;zone=eu;");
  CHECK(Run("{{range .Spec.Labels}}{{.}} {{end}}", kNode) == "ssd eu ");
  CHECK(Run("{{range .Empty}}x{{else}}none{{end}}", kNode) == "none");
  CHECK(Run("{{range .Nothing}}x{{else}}nil{{end}}", kNode) == "nil");
  // $ stays the data the template was given.
  CHECK(Run("{{range .Addrs}}{{$.Description.Hostname}} {{end}}", kNode) == "master01 master01 ");
  CHECK(ExecError("{{range .ID}}{{end}}", kNode) ==
        "template: :1:8: executing \"\" at <.ID>: range can't iterate over "
        "f15m9npvwumliqoe6wzor8tvh");
}

TEST_CASE("template if, else if, else and with follow Go's truth", "[cli][template]") {
  CHECK(Run("{{if .Leader}}yes{{else}}no{{end}}", kNode) == "yes");
  CHECK(Run("{{if .Empty}}yes{{else}}no{{end}}", kNode) == "no");
  CHECK(Run("{{if .Nothing}}yes{{else}}no{{end}}", kNode) == "no");
  CHECK(Run("{{if 0}}yes{{else}}no{{end}}") == "no");
  CHECK(Run(R"({{if ""}}yes{{else}}no{{end}})") == "no");
  CHECK(Run(R"({{if eq .Spec.Role "worker"}}w{{else if eq .Spec.Role "manager"}}m{{else}}?{{end}})",
            kNode) == "m");
  CHECK(Run("{{if and .Leader (not .Empty)}}both{{end}}", kNode) == "both");
  CHECK(Run(R"({{or .Nothing "fallback"}})", kNode) == "fallback");
  CHECK(Run("{{if lt .Version.Index 11}}older{{end}}", kNode) == "older");
  CHECK(Run("{{with .Description}}{{.Hostname}}{{end}}", kNode) == "master01");
  CHECK(Run("{{with .Empty}}x{{else}}empty{{end}}", kNode) == "empty");
  CHECK(ExecError(R"({{if eq .Version.Index "10"}}{{end}})", kNode)
            .find("error calling eq: incompatible types for comparison") != std::string::npos);
}

TEST_CASE("template variables, pipes and parentheses", "[cli][template]") {
  CHECK(Run("{{$h := .Description.Hostname}}[{{$h}}]", kNode) == "[master01]");
  CHECK(Run("{{.Spec.Role | upper | printf \"%s!\"}}", kNode) == "MANAGER!");
  CHECK(Run(R"({{upper (index .Spec.Labels "zone")}})", kNode) == "EU");
  CHECK(Run("{{(index .Addrs 0)}}", kNode) == "10.0.0.1");
  CHECK(ExecError("{{.ID | .Spec}}", kNode).find("can't give argument to non-function .Spec") !=
        std::string::npos);
}

TEST_CASE("template \\t and \\n: kept by Go, expanded as Docker's list formatter does",
          "[cli][template]") {
  CHECK(Run(R"({{.ID}}\t{{.Spec.Role}})", kNode) == "f15m9npvwumliqoe6wzor8tvh\\tmanager");
  CHECK(Run(R"({{.Spec.Role}}\t{{.Leader}}\n)", kNode, Template::TextEscapes::kExpand) ==
        "manager\ttrue\n");
  // Inside a quoted string Go's own escapes apply either way.
  CHECK(Run(R"({{join .Addrs "\n"}})", kNode) == "10.0.0.1\n10.0.0.2");
}

TEST_CASE("template trim markers remove the spaces next to them; comments print nothing",
          "[cli][template]") {
  CHECK(Run("a  \n {{- .Spec.Role -}} \n  b", kNode) == "amanagerb");
  CHECK(Run("a {{- .Spec.Role}} b", kNode) == "amanager b");
  // Without a space after it, the dash is a number's sign.
  CHECK(Run("a {{-3}}") == "a -3");
  CHECK(Run(R"(x\n{{- .Spec.Role}})", kNode, Template::TextEscapes::kExpand) == "xmanager");
  CHECK(Run("a{{/* ignored */}}b {{- /* trims */ -}} c") == "abc");
  CHECK(Run("{{range .Addrs -}}\n  {{.}}\n{{- end}}", kNode) == "10.0.0.110.0.0.2");
}

TEST_CASE("template parse errors are reported with Go's wording before any output",
          "[cli][template]") {
  const std::string p = "template parsing error: template: :";
  CHECK(ParseError("{{.ID") == p + "1: unclosed action");
  CHECK(ParseError("ok {{foo .ID}}") == p + "1: function \"foo\" not defined");
  CHECK(ParseError("{{if .A}}x") == p + "1: unexpected EOF");
  CHECK(ParseError("x{{end}}") == p + "1: unexpected {{end}}");
  CHECK(ParseError("x{{else}}") == p + "1: unexpected {{else}}");
  CHECK(ParseError("{{}}") == p + "1: missing value for command");
  CHECK(ParseError("{{range}}{{end}}") == p + "1: missing value for range");
  CHECK(ParseError("{{if}}{{end}}") == p + "1: missing value for if");
  CHECK(ParseError(R"({{"abc}})") == p + "1: unterminated quoted string");
  CHECK(ParseError("{{$x}}") == p + "1: undefined variable \"$x\"");
  CHECK(ParseError("{{.A #}}") == p + "1: unrecognized character in action: U+0023 '#'");
  CHECK(ParseError("line\nline\n{{.X") == p + "3: unclosed action");
  CHECK(ParseError(R"({{.A | "x"}})") == p + "1: non executable command in pipeline stage 2");
  CHECK(ParseError("{{/* x }}") == p + "1: unclosed comment");
  CHECK(ParseError("{{if .A}}{{else}}{{else}}{{end}}") == p + "1: expected end; found {{else}}");
  CHECK(ParseError("{{range $a, $b, $c := .X}}{{end}}") == p + "1: too many declarations in range");
  // A variable declared in a range is gone after its end.
  CHECK(ParseError("{{range $a := .X}}{{end}}{{$a}}") == p + "1: undefined variable \"$a\"");
}

namespace {

// The shape of node ls, as a list command declares it.
const cli::ListFormat kNodes{
    "table {{.ID}}{{if .Self}} *{{end}}\t{{.Hostname}}\t{{.Status}}\t{{.ManagerStatus}}",
    {{"ID", "ID"},
     {"Self", ""},
     {"Hostname", "HOSTNAME"},
     {"Status", "STATUS"},
     {"ManagerStatus", "MANAGER STATUS"}}};

const std::vector<json::object> kNodeRows = {
    {{"ID", "aaa"},
     {"Self", true},
     {"Hostname", "master01"},
     {"Status", "Ready"},
     {"ManagerStatus", "Leader"},
     {"Extra", "x1"}},
    {{"ID", "bbbbbbbb"},
     {"Self", false},
     {"Hostname", "w1"},
     {"Status", "Down"},
     {"ManagerStatus", ""},
     {"Extra", "x2"}},
};

std::string List(const std::string& format, bool quiet = false,
                 const std::vector<json::object>& rows = kNodeRows) {
  return cli::FormatList(format, quiet, kNodes, rows);
}

}  // namespace

TEST_CASE("list --format: none or 'table' is the default table; -q prints IDs", "[cli][format]") {
  // The second row's ID cell is wider than the header and the first row's.
  const std::string expected =
      "ID         HOSTNAME   STATUS   MANAGER STATUS\n"
      "aaa *      master01   Ready    Leader\n"
      "bbbbbbbb   w1         Down\n";
  CHECK(List("") == expected);
  CHECK(List("table") == expected);
  CHECK(List("", true) == "aaa\nbbbbbbbb\n");
  CHECK(List("table", true) == "aaa\nbbbbbbbb\n");
  // A format of one's own wins over -q, as in Docker.
  CHECK(List("{{.Hostname}}", true) == "master01\nw1\n");
  CHECK(List("", false, {}) == "ID   HOSTNAME   STATUS   MANAGER STATUS\n");
}

TEST_CASE("list --format 'table TEMPLATE' heads the columns from the field names",
          "[cli][format]") {
  // Typed in a shell, \t is two characters.
  CHECK(List(R"(table {{.Hostname}}\t{{.ManagerStatus}})") ==
        "HOSTNAME   MANAGER STATUS\n"
        "master01   Leader\n"
        "w1\n");
  // A field without a known header is headed by its name upper-cased.
  CHECK(List(R"(table {{.ID}}\t{{.Extra}})") ==
        "ID         EXTRA\n"
        "aaa        x1\n"
        "bbbbbbbb   x2\n");
  // Functions keep the header as it is, and text in the template is in the header too.
  CHECK(List(R"(table {{lower .Status}}\tname={{.Hostname}})") ==
        "STATUS   name=HOSTNAME\n"
        "ready    name=master01\n"
        "down     name=w1\n");
  CHECK(List(R"(table {{.Hostname}})", false, {}) == "HOSTNAME\n");
}

TEST_CASE("list --format json prints one object per line, keys sorted", "[cli][format]") {
  CHECK(
      List("json") ==
      R"({"Extra":"x1","Hostname":"master01","ID":"aaa","ManagerStatus":"Leader","Self":true,"Status":"Ready"})"
      "\n"
      R"({"Extra":"x2","Hostname":"w1","ID":"bbbbbbbb","ManagerStatus":"","Self":false,"Status":"Down"})"
      "\n");
  CHECK(List("{{json .Hostname}}") == "\"master01\"\n\"w1\"\n");
}

TEST_CASE("list --format TEMPLATE prints the template per row, a line each", "[cli][format]") {
  CHECK(List("{{.Hostname}}: {{.Status}}") == "master01: Ready\nw1: Down\n");
  CHECK(List(R"({{.ID}}\t{{.Self}})") == "aaa\ttrue\nbbbbbbbb\tfalse\n");
  CHECK(List("  {{.ID}}  ") == "aaa\nbbbbbbbb\n");  // Docker trims the spaces around
}

TEST_CASE("list --format errors come alone, naming the field", "[cli][format]") {
  try {
    List(R"(table {{.ID}}\t{{.Bogus}})");
    FAIL("no error");
  } catch (const TemplateError& e) {
    CHECK(e.kind() == TemplateError::Kind::kExecute);
    // The column counts what was typed: \t is two characters there.
    CHECK(std::string(e.what()) ==
          "template: :1:11: executing \"\" at <.Bogus>: can't evaluate field Bogus");
  }
  try {
    List("{{.ID");
    FAIL("no error");
  } catch (const TemplateError& e) {
    CHECK(e.kind() == TemplateError::Kind::kParse);
    CHECK(std::string(e.what()) == "template parsing error: template: :1: unclosed action");
  }
}

TEST_CASE("inspect --format: none is the indented array, json one line, else per object",
          "[cli][format]") {
  const std::vector<json::value> objects = {json::parse(R"({"ID":"a","Spec":{"Name":"x"}})"),
                                            json::parse(R"({"ID":"b","Spec":{"Name":"y"}})")};
  CHECK(cli::FormatInspect("", objects) ==
        cli::PrettyJson(json::array(objects.begin(), objects.end())));
  CHECK(cli::FormatInspect("json", objects) ==
        R"([{"ID":"a","Spec":{"Name":"x"}},{"ID":"b","Spec":{"Name":"y"}}])"
        "\n");
  CHECK(cli::FormatInspect("{{.ID}} {{.Spec.Name}}", objects) == "a x\nb y\n");
  CHECK(cli::FormatInspect("{{json .Spec}}", objects) == "{\"Name\":\"x\"}\n{\"Name\":\"y\"}\n");
  // Docker applies inspect templates as Go does: \t stays two characters.
  CHECK(cli::FormatInspect(R"({{.ID}}\t)", objects) == "a\\t\nb\\t\n");
  CHECK_THROWS_WITH(cli::FormatInspect("{{.Spec.Nope}}", objects),
                    "template: :1:7: executing \"\" at <.Spec.Nope>: can't evaluate field Nope");
}
