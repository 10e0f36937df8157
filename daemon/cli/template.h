// The part of Go's text/template that people write in Docker's --format, applied to JSON:
// fields and chains ({{.A.B}}), variables ($, {{range $k, $v := .Labels}}), pipes, parentheses,
// if/else if/else, range/else, with, comments, trim markers ({{- and -}}), and the functions
// json, index, len, join, split, lower, upper, title, pad, truncate, print, printf, println,
// eq, ne, not, and, or.
//
// Values print as Go prints them: strings as they are, numbers and booleans Go-style, objects as
// map[k:v ...] with sorted keys, arrays as [a b], and a missing value (null) as <no value>.
// A field that an object lacks is an error naming the field, as Go's is for a struct.
#pragma once

#include <boost/json/value.hpp>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace skep::cli {

// what() is the whole message, Go's wording:
//   kParse:   template parsing error: template: :1: function "foo" not defined
//   kExecute: template: :1:2: executing "" at <.Foo>: can't evaluate field Foo
class TemplateError : public std::runtime_error {
 public:
  enum class Kind { kParse, kExecute };
  TemplateError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

class Template {
 public:
  // kKeep is Go's behaviour: the two characters \t stay two characters. kExpand is what
  // Docker's list formatter does first: \t and \n in the literal text become a tab and a
  // newline (inside quoted strings Go's own escapes apply either way).
  enum class TextEscapes { kKeep, kExpand };

  // Throws TemplateError (kParse).
  static Template Parse(std::string_view text, TextEscapes escapes = TextEscapes::kKeep);

  // The template applied to `dot` (also $). Throws TemplateError (kExecute).
  std::string Execute(const boost::json::value& dot) const;

  // A table's header line: every field chain prints header_of("A.B") for {{.A.B}}, the
  // formatting functions (json, index, join, split, lower, upper, title, truncate) pass the
  // header through, and range prints nothing. An error ends the header where it happened
  // instead of being thrown: the rows have been executed, and have reported it, first.
  std::string ExecuteHeader(
      const std::function<std::string(const std::string& field_path)>& header_of) const;

  struct Tree;

 private:
  explicit Template(std::shared_ptr<const Tree> tree) : tree_(std::move(tree)) {}
  std::shared_ptr<const Tree> tree_;
};

}  // namespace skep::cli
