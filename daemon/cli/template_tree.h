// The internals of Go's text/template as the CLI runs it (template.h): the syntax tree that
// template_parse.cc makes of a template's text and template.cc executes.
#pragma once

#include <boost/json/value.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/cli/template.h"

namespace skep::cli {

namespace tmpl {

namespace json = boost::json;

// ---- The syntax tree ----

struct Pipeline;

// One word of a command: a value, then the fields of a chain applied to it ({{$v.A.B}}).
struct Operand {
  enum class Kind { kDot, kVariable, kPipeline, kFunction, kLiteral };
  Kind kind = Kind::kLiteral;
  std::string name;                    // kVariable: "$" or "$x"; kFunction: its name
  std::vector<std::string> path;       // fields, in order
  json::value literal;                 // kLiteral
  std::shared_ptr<Pipeline> pipeline;  // kPipeline: a parenthesized pipeline
  size_t pos = 0;      // where Go's errors point: a chain's second field, else the start
  std::string source;  // as written, for errors
};

// args[0] a function: called with the rest (and the previous stage's result last); otherwise
// a single value.
struct Command {
  std::vector<Operand> args;
  size_t pos = 0;
  std::string source;
};

struct Pipeline {
  std::vector<std::string> decls;  // {{$x := ...}}; in range: {{range $k, $v := ...}}
  std::vector<Command> cmds;
  size_t pos = 0;
  std::string source;
};

struct Node {
  enum class Kind { kText, kAction, kIf, kRange, kWith };
  Kind kind = Kind::kText;
  std::string text;  // kText
  Pipeline pipe;
  std::vector<Node> body, else_body;
};

// The line of `pos` in `text`, from 1, as Go's errors give it.
size_t LineOf(std::string_view text, size_t pos);
bool IsDigit(char c);

// The template's text as a tree; `expand`: backslash escapes in literal text are expanded.
// Throws TemplateError (kParse) at the first mistake, with its line.
std::vector<Node> ParseNodes(std::string_view text, bool expand);

}  // namespace tmpl

struct Template::Tree {
  std::string text;
  std::vector<tmpl::Node> nodes;
};

}  // namespace skep::cli
