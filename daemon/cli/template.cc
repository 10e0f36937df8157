#include "daemon/cli/template.h"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>
#include <set>
#include <vector>

namespace skep::cli {

namespace json = boost::json;

namespace tmpl {

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

// ---- Lexing: the text split into literal text and the tokens of each action ----

enum class Tok {
  kField,     // .Name (text: Name)
  kDot,       // .
  kVariable,  // $ or $name (text with the $)
  kIdent,     // a function name or keyword
  kString,    // text: the unquoted value
  kNumber,
  kBool,
  kNil,
  kPipe,
  kLParen,
  kRParen,
  kComma,
  kDeclare,  // :=
  kAssign,   // =
};

struct Token {
  Tok kind;
  std::string text;
  size_t pos = 0, end = 0;
  bool glued = false;  // no space before it: .A.B is one chain, .A .B two words
};

struct Item {
  bool action = false;
  std::string text;  // literal text
  std::vector<Token> tokens;
  size_t pos = 0;
};

}  // namespace tmpl

struct Template::Tree {
  std::string text;
  std::vector<tmpl::Node> nodes;
};

namespace tmpl {
namespace {

constexpr size_t kNpos = std::string_view::npos;

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}
bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}
// Bytes of UTF-8 sequences count as letters, so non-ASCII names lex as one word.
bool IsWordChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}

size_t LineOf(std::string_view text, size_t pos) {
  pos = std::min(pos, text.size());
  return 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + pos, '\n'));
}

[[noreturn]] void ParseFail(std::string_view text, size_t pos, const std::string& msg) {
  throw TemplateError(
      TemplateError::Kind::kParse,
      "template parsing error: template: :" + std::to_string(LineOf(text, pos)) + ": " + msg);
}

std::string ExpandEscapes(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == 't' || s[i + 1] == 'n')) {
      out += s[++i] == 't' ? '\t' : '\n';
    } else {
      out += s[i];
    }
  }
  return out;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// A Go interpreted string literal starting at in[p] == '"'; p ends after the closing quote.
std::string LexQuoted(std::string_view in, size_t& p) {
  const size_t start = p++;
  std::string s;
  while (true) {
    if (p >= in.size() || in[p] == '\n') ParseFail(in, start, "unterminated quoted string");
    const char c = in[p++];
    if (c == '"') return s;
    if (c != '\\') {
      s += c;
      continue;
    }
    if (p >= in.size()) ParseFail(in, start, "unterminated quoted string");
    const char e = in[p++];
    static const std::string_view kSimple = "nt\\\"'abfvr";
    static const std::string_view kValue = "\n\t\\\"'\a\b\f\v\r";
    if (const size_t k = kSimple.find(e); k != kNpos) {
      s += kValue[k];
      continue;
    }
    size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : (e >= '0' && e <= '7') ? 3 : 0;
    if (digits == 0) ParseFail(in, start, "invalid syntax: unknown escape \\" + std::string(1, e));
    const int base = digits == 3 ? 8 : 16;
    if (base == 8) --p;  // the first octal digit is part of the number
    uint32_t v = 0;
    const auto r =
        std::from_chars(in.data() + p, in.data() + std::min(in.size(), p + digits), v, base);
    if (r.ec != std::errc() || r.ptr != in.data() + p + digits) {
      ParseFail(in, start, "invalid syntax: bad escape in quoted string");
    }
    p += digits;
    if (e == 'x' || base == 8) {
      s += static_cast<char>(v);
    } else {
      AppendUtf8(s, v);
    }
  }
}

Token LexToken(std::string_view in, size_t& p, bool glued) {
  Token t{Tok::kIdent, "", p, p, glued};
  const char c = in[p];
  auto word = [&] {
    const size_t s = p;
    while (p < in.size() && IsWordChar(in[p]))
      ++p;
    return std::string(in.substr(s, p - s));
  };
  if (c == '.') {
    ++p;
    if (p < in.size() && IsWordChar(in[p]) && !IsDigit(in[p])) {
      t.kind = Tok::kField;
      t.text = word();
    } else {
      t.kind = Tok::kDot;
    }
  } else if (c == '$') {
    ++p;
    t.kind = Tok::kVariable;
    t.text = "$" + word();
  } else if (c == '"') {
    t.kind = Tok::kString;
    t.text = LexQuoted(in, p);
  } else if (c == '`') {
    const size_t close = in.find('`', p + 1);
    if (close == kNpos) ParseFail(in, p, "unterminated raw quoted string");
    t.kind = Tok::kString;
    t.text = std::string(in.substr(p + 1, close - p - 1));
    p = close + 1;
  } else if (IsDigit(c) || ((c == '-' || c == '+') && p + 1 < in.size() && IsDigit(in[p + 1]))) {
    t.kind = Tok::kNumber;
    const size_t s = p++;
    while (p < in.size() && IsDigit(in[p]))
      ++p;
    if (p < in.size() && in[p] == '.') {
      ++p;
      while (p < in.size() && IsDigit(in[p]))
        ++p;
    }
    if (p < in.size() && (in[p] == 'e' || in[p] == 'E')) {
      ++p;
      if (p < in.size() && (in[p] == '+' || in[p] == '-')) ++p;
      while (p < in.size() && IsDigit(in[p]))
        ++p;
    }
    if (p < in.size() && (IsWordChar(in[p]) || in[p] == '.')) {
      while (p < in.size() && (IsWordChar(in[p]) || in[p] == '.'))
        ++p;
      ParseFail(in, s, "bad number syntax: \"" + std::string(in.substr(s, p - s)) + "\"");
    }
    t.text = std::string(in.substr(s, p - s));
  } else if (IsWordChar(c)) {
    t.text = word();
    t.kind = t.text == "true" || t.text == "false" ? Tok::kBool
             : t.text == "nil"                     ? Tok::kNil
                                                   : Tok::kIdent;
  } else if (c == ':' && p + 1 < in.size() && in[p + 1] == '=') {
    t.kind = Tok::kDeclare;
    p += 2;
  } else {
    static const std::string_view kPunct = "|(),=";
    static const Tok kPunctTok[] = {Tok::kPipe, Tok::kLParen, Tok::kRParen, Tok::kComma,
                                    Tok::kAssign};
    const size_t k = kPunct.find(c);
    if (k == kNpos) {
      char rune[32];
      snprintf(rune, sizeof(rune), "U+%04X", static_cast<unsigned char>(c));
      std::string what = rune;
      if (std::isprint(static_cast<unsigned char>(c))) what += std::string(" '") + c + "'";
      ParseFail(in, p, "unrecognized character in action: " + what);
    }
    t.kind = kPunctTok[k];
    ++p;
  }
  t.end = p;
  return t;
}

// Literal text and actions, with trim markers applied and comments dropped.
std::vector<Item> Lex(std::string_view in, bool expand) {
  std::vector<Item> items;
  size_t pos = 0;
  bool trim_text_start = false;  // the action before the text ended with " -}}"
  while (true) {
    const size_t open = in.find("{{", pos);
    std::string text(in.substr(pos, open == kNpos ? kNpos : open - pos));
    // Escapes first, so that a "\n" before "{{-" is trimmed as the newline it stands for.
    if (expand) text = ExpandEscapes(text);
    if (trim_text_start) {
      size_t k = 0;
      while (k < text.size() && IsSpace(text[k]))
        ++k;
      text.erase(0, k);
    }
    const bool trim_text_end =
        open != kNpos && open + 3 < in.size() && in[open + 2] == '-' && IsSpace(in[open + 3]);
    if (trim_text_end) {
      while (!text.empty() && IsSpace(text.back()))
        text.pop_back();
    }
    if (!text.empty()) items.push_back({false, std::move(text), {}, pos});
    if (open == kNpos) return items;

    size_t p = open + (trim_text_end ? 4 : 2);
    if (in.compare(p, 2, "/*") == 0) {
      const size_t close = in.find("*/", p + 2);
      if (close == kNpos) ParseFail(in, open, "unclosed comment");
      p = close + 2;
      if (in.compare(p, 4, " -}}") == 0) {
        trim_text_start = true;
        pos = p + 4;
      } else if (in.compare(p, 2, "}}") == 0) {
        trim_text_start = false;
        pos = p + 2;
      } else {
        ParseFail(in, p, "comment ends before closing delimiter");
      }
      continue;
    }
    Item item{true, "", {}, open};
    while (true) {
      const size_t before = p;
      while (p < in.size() && IsSpace(in[p]))
        ++p;
      if (p > before && in.compare(p, 3, "-}}") == 0) {
        trim_text_start = true;
        p += 3;
        break;
      }
      if (in.compare(p, 2, "}}") == 0) {
        trim_text_start = false;
        p += 2;
        break;
      }
      if (p >= in.size()) ParseFail(in, p, "unclosed action");
      item.tokens.push_back(LexToken(in, p, p == before));
    }
    items.push_back(std::move(item));
    pos = p;
  }
}

// ---- Parsing ----

const std::set<std::string, std::less<>> kFunctions = {
    "and", "eq",  "ge", "gt",  "index", "join",   "json",    "le",    "len",   "lower",    "lt",
    "ne",  "not", "or", "pad", "print", "printf", "println", "split", "title", "truncate", "upper"};
const std::set<std::string, std::less<>> kKeywords = {
    "block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"};

class Parser {
 public:
  Parser(std::string_view text, std::vector<Item> items) : in_(text), items_(std::move(items)) {}

  std::vector<Node> Top() {
    End end;
    std::vector<Node> nodes = List(&end);
    if (end.kind == End::kEnd) ParseFail(in_, end.item->pos, "unexpected {{end}}");
    if (end.kind == End::kElse) ParseFail(in_, end.item->pos, "unexpected {{else}}");
    return nodes;
  }

 private:
  struct End {
    enum Kind { kEof, kEnd, kElse } kind = kEof;
    const Item* item = nullptr;
  };

  class Cursor {
   public:
    explicit Cursor(const Item& item, size_t start) : item_(item), i_(start) {}
    bool Done() const { return i_ >= item_.tokens.size(); }
    const Token& Peek() const { return item_.tokens[i_]; }
    const Token& Next() { return item_.tokens[i_++]; }
    size_t Index() const { return i_; }
    void Seek(size_t i) { i_ = i; }
    size_t LastEnd() const { return i_ == 0 ? item_.pos : item_.tokens[i_ - 1].end; }
    size_t Pos() const { return Done() ? LastEnd() : Peek().pos; }

   private:
    const Item& item_;
    size_t i_;
  };

  std::string Source(size_t from, size_t to) const {
    return std::string(in_.substr(from, to > from ? to - from : 0));
  }

  [[noreturn]] void Unexpected(const Token& t, const std::string& context) {
    const std::string word = Source(t.pos, t.end);
    const bool keyword = t.kind == Tok::kIdent && kKeywords.count(t.text);
    ParseFail(in_, t.pos,
              "unexpected " + (keyword ? "<" + word + ">" : "\"" + word + "\"") + " in " + context);
  }

  std::vector<Node> List(End* end) {
    std::vector<Node> out;
    while (i_ < items_.size()) {
      const Item& it = items_[i_++];
      if (!it.action) {
        out.push_back({Node::Kind::kText, it.text, {}, {}, {}});
        continue;
      }
      if (it.tokens.empty()) ParseFail(in_, it.pos, "missing value for command");
      const Token& first = it.tokens[0];
      if (first.kind == Tok::kIdent && kKeywords.count(first.text)) {
        if (first.text == "end") {
          if (it.tokens.size() > 1) Unexpected(it.tokens[1], "end");
          *end = {End::kEnd, &it};
          return out;
        }
        if (first.text == "else") {
          *end = {End::kElse, &it};
          return out;
        }
        if (first.text == "if") {
          out.push_back(Control(it, 1, Node::Kind::kIf));
        } else if (first.text == "range") {
          out.push_back(Control(it, 1, Node::Kind::kRange));
        } else if (first.text == "with") {
          out.push_back(Control(it, 1, Node::Kind::kWith));
        } else {
          ParseFail(in_, first.pos, "{{" + first.text + "}} is not supported in --format");
        }
        continue;
      }
      Cursor c(it, 0);
      Node n{Node::Kind::kAction, "", ParsePipeline(c, "command", Node::Kind::kAction), {}, {}};
      if (!c.Done()) Unexpected(c.Peek(), "command");
      out.push_back(std::move(n));
    }
    *end = {End::kEof, nullptr};
    return out;
  }

  // {{if P}}, {{range P}}, {{with P}} from the token `start` of `it` to the matching {{end}}.
  // Variables declared inside go out of scope at the end.
  Node Control(const Item& it, size_t start, Node::Kind kind) {
    const size_t vars = vars_.size();
    const std::string context = kind == Node::Kind::kIf      ? "if"
                                : kind == Node::Kind::kRange ? "range"
                                                             : "with";
    Cursor c(it, start);
    Node n{kind, "", ParsePipeline(c, context, kind), {}, {}};
    if (!c.Done()) Unexpected(c.Peek(), context);
    End end;
    n.body = List(&end);
    if (end.kind == End::kEof) ParseFail(in_, in_.size(), "unexpected EOF");
    if (end.kind == End::kElse) {
      const auto& et = end.item->tokens;
      if (et.size() > 1 && kind == Node::Kind::kIf && et[1].kind == Tok::kIdent &&
          et[1].text == "if") {
        // {{else if Q}} is {{else}}{{if Q}} sharing the one {{end}}.
        n.else_body.push_back(Control(*end.item, 2, Node::Kind::kIf));
      } else {
        if (et.size() > 1) Unexpected(et[1], "else");
        End end2;
        n.else_body = List(&end2);
        if (end2.kind == End::kEof) ParseFail(in_, in_.size(), "unexpected EOF");
        if (end2.kind == End::kElse) ParseFail(in_, end2.item->pos, "expected end; found {{else}}");
      }
    }
    vars_.resize(vars);
    return n;
  }

  Pipeline ParsePipeline(Cursor& c, const std::string& context, Node::Kind owner) {
    Pipeline p;
    p.pos = c.Pos();
    // Declarations: $x := ...  or, in range, $k, $v := ...
    if (owner != Node::Kind::kText && !c.Done() && c.Peek().kind == Tok::kVariable) {
      const size_t mark = c.Index();
      std::vector<std::string> names{c.Next().text};
      while (!c.Done() && c.Peek().kind == Tok::kComma) {
        c.Next();
        if (c.Done() || c.Peek().kind != Tok::kVariable) break;
        names.push_back(c.Next().text);
      }
      if (!c.Done() && c.Peek().kind == Tok::kDeclare) {
        c.Next();
        if (names.size() > (owner == Node::Kind::kRange ? 2u : 1u)) {
          ParseFail(in_, p.pos, "too many declarations in " + context);
        }
        p.decls = std::move(names);
      } else if (!c.Done() && c.Peek().kind == Tok::kAssign) {
        ParseFail(in_, c.Peek().pos, "assignment to a variable is not supported in --format");
      } else {
        c.Seek(mark);
      }
    }
    while (!c.Done() && c.Peek().kind != Tok::kRParen) {
      p.cmds.push_back(ParseCommand(c));
      if (!c.Done() && c.Peek().kind == Tok::kPipe) {
        c.Next();
        if (c.Done() || c.Peek().kind == Tok::kRParen) ParseFail(in_, c.Pos(), "missing command");
      }
    }
    if (p.cmds.empty()) ParseFail(in_, p.pos, "missing value for " + context);
    for (size_t k = 1; k < p.cmds.size(); ++k) {
      const auto kind = p.cmds[k].args[0].kind;
      if (kind == Operand::Kind::kLiteral ||
          (kind == Operand::Kind::kDot && p.cmds[k].args[0].path.empty())) {
        ParseFail(in_, p.cmds[k].pos,
                  "non executable command in pipeline stage " + std::to_string(k + 1));
      }
    }
    for (const auto& d : p.decls)
      vars_.push_back(d);
    p.source = Source(p.pos, c.LastEnd());
    return p;
  }

  Command ParseCommand(Cursor& c) {
    Command cmd;
    cmd.pos = c.Pos();
    while (!c.Done() && c.Peek().kind != Tok::kPipe && c.Peek().kind != Tok::kRParen) {
      cmd.args.push_back(ParseOperand(c));
    }
    if (cmd.args.empty()) Unexpected(c.Peek(), "command");
    cmd.source = Source(cmd.pos, c.LastEnd());
    return cmd;
  }

  Operand ParseOperand(Cursor& c) {
    const Token& t = c.Next();
    Operand o;
    o.pos = t.pos;
    switch (t.kind) {
      case Tok::kField:
        o.kind = Operand::Kind::kDot;
        o.path.push_back(t.text);
        break;
      case Tok::kDot:
        o.kind = Operand::Kind::kDot;
        break;
      case Tok::kVariable:
        if (std::find(vars_.begin(), vars_.end(), t.text) == vars_.end()) {
          ParseFail(in_, t.pos, "undefined variable \"" + t.text + "\"");
        }
        o.kind = Operand::Kind::kVariable;
        o.name = t.text;
        break;
      case Tok::kLParen:
        o.kind = Operand::Kind::kPipeline;
        o.pipeline = std::make_shared<Pipeline>(
            ParsePipeline(c, "parenthesized pipeline", Node::Kind::kText));
        if (c.Done() || c.Next().kind != Tok::kRParen) ParseFail(in_, t.pos, "unclosed left paren");
        break;
      case Tok::kString:
        o.literal = json::string(t.text);
        break;
      case Tok::kBool:
        o.literal = t.text == "true";
        break;
      case Tok::kNil:
        o.literal = nullptr;
        break;
      case Tok::kNumber:
        o.literal = ParseNumber(t);
        break;
      case Tok::kIdent:
        if (kKeywords.count(t.text)) Unexpected(t, "command");
        if (!kFunctions.count(t.text)) {
          ParseFail(in_, t.pos, "function \"" + t.text + "\" not defined");
        }
        o.kind = Operand::Kind::kFunction;
        o.name = t.text;
        break;
      default:
        Unexpected(t, "operand");
    }
    bool chained = false;
    while (!c.Done() && c.Peek().kind == Tok::kField && c.Peek().glued) {
      if (o.kind == Operand::Kind::kLiteral || o.kind == Operand::Kind::kFunction) {
        ParseFail(in_, c.Peek().pos, "unexpected . after term \"" + Source(t.pos, t.end) + "\"");
      }
      const Token& f = c.Next();
      // Go puts a chain's position at its second element; its errors say so.
      if (!chained) {
        o.pos = f.pos;
        chained = true;
      }
      o.path.push_back(f.text);
    }
    o.source = Source(t.pos, c.LastEnd());
    return o;
  }

  json::value ParseNumber(const Token& t) {
    const std::string& s = t.text;
    const char* b = s.data() + (s[0] == '+' ? 1 : 0);
    const char* e = s.data() + s.size();
    if (s.find_first_of(".eE") == std::string::npos) {
      int64_t v = 0;
      const auto r = std::from_chars(b, e, v);
      if (r.ec == std::errc() && r.ptr == e) return v;
    }
    double d = 0;
    const auto r = std::from_chars(b, e, d);
    if (r.ec != std::errc() || r.ptr != e)
      ParseFail(in_, t.pos, "bad number syntax: \"" + s + "\"");
    return d;
  }

  std::string_view in_;
  std::vector<Item> items_;
  size_t i_ = 0;
  std::vector<std::string> vars_{"$"};
};

// ---- Values as Go prints them ----

std::string GoType(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "<nil>";
    case json::kind::bool_:
      return "bool";
    case json::kind::int64:
      return "int64";
    case json::kind::uint64:
      return "uint64";
    case json::kind::double_:
      return "float64";
    case json::kind::string:
      return "string";
    case json::kind::array:
      return "[]interface {}";
    case json::kind::object:
      return "map[string]interface {}";
  }
  return "?";
}

// Go's %v for a float64: the shortest digits that read back, in exponent form only below 1e-4
// or from 1e21 up.
std::string GoFloat(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "+Inf" : "-Inf";
  if (d == 0) return std::signbit(d) ? "-0" : "0";
  char buf[400];
  auto r = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  const std::string sci(buf, r.ptr);
  const int exp = std::atoi(sci.c_str() + sci.find('e') + 1);
  if (exp < -4 || exp >= 21) return sci;
  r = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::fixed);
  return std::string(buf, r.ptr);
}

// `top`: the value an action prints, where Go writes a missing value as <no value>; inside a
// map or a slice Go writes <nil>.
std::string Print(const json::value& v, bool top = false) {
  switch (v.kind()) {
    case json::kind::null:
      return top ? "<no value>" : "<nil>";
    case json::kind::bool_:
      return v.get_bool() ? "true" : "false";
    case json::kind::int64:
      return std::to_string(v.get_int64());
    case json::kind::uint64:
      return std::to_string(v.get_uint64());
    case json::kind::double_:
      return GoFloat(v.get_double());
    case json::kind::string:
      return std::string(v.get_string());
    case json::kind::array: {
      std::string out = "[";
      for (const auto& e : v.get_array()) {
        if (out.size() > 1) out += ' ';
        out += Print(e);
      }
      return out + "]";
    }
    case json::kind::object: {
      std::vector<std::pair<std::string_view, const json::value*>> kv;
      for (const auto& e : v.get_object())
        kv.emplace_back(e.key(), &e.value());
      std::sort(kv.begin(), kv.end());
      std::string out = "map[";
      for (size_t i = 0; i < kv.size(); ++i) {
        if (i > 0) out += ' ';
        out += std::string(kv[i].first) + ":" + Print(*kv[i].second);
      }
      return out + "]";
    }
  }
  return "";
}

bool Truth(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return false;
    case json::kind::bool_:
      return v.get_bool();
    case json::kind::int64:
      return v.get_int64() != 0;
    case json::kind::uint64:
      return v.get_uint64() != 0;
    case json::kind::double_:
      return v.get_double() != 0;
    case json::kind::string:
      return !v.get_string().empty();
    case json::kind::array:
      return !v.get_array().empty();
    case json::kind::object:
      return !v.get_object().empty();
  }
  return false;
}

// A value met while executing: borrowed from the data, or made by a function. A borrowed
// child of a made value keeps the made value alive.
class Value {
 public:
  Value() : ref_(&Null()) {}
  static Value Borrow(const json::value& v) {
    Value r;
    r.ref_ = &v;
    return r;
  }
  static Value Own(json::value v) {
    Value r;
    r.own_ = std::make_shared<const json::value>(std::move(v));
    r.ref_ = r.own_.get();
    return r;
  }
  Value Child(const json::value& c) const {
    Value r = *this;
    r.ref_ = &c;
    return r;
  }
  const json::value& operator*() const { return *ref_; }
  const json::value* operator->() const { return ref_; }

 private:
  static const json::value& Null() {
    static const json::value kNull;
    return kNull;
  }
  const json::value* ref_;
  std::shared_ptr<const json::value> own_;
};

Value Str(std::string s) {
  return Value::Own(json::string(s));
}

// Where two values stand: <0, 0 or >0; nullopt with `err` set when Go would refuse.
std::optional<int> Order(const json::value& a, const json::value& b, bool ordered,
                         std::string* err) {
  auto cmp = [](auto x, auto y) { return x < y ? -1 : y < x ? 1 : 0; };
  if (a.is_number() && b.is_number()) {
    if (a.is_int64() && b.is_int64()) return cmp(a.get_int64(), b.get_int64());
    if (a.is_uint64() && b.is_uint64()) return cmp(a.get_uint64(), b.get_uint64());
    auto wide = [](const json::value& v) -> long double {
      return v.is_int64()    ? static_cast<long double>(v.get_int64())
             : v.is_uint64() ? static_cast<long double>(v.get_uint64())
                             : static_cast<long double>(v.get_double());
    };
    return cmp(wide(a), wide(b));
  }
  auto composite = [](const json::value& v) { return v.is_array() || v.is_object(); };
  if (composite(a) || composite(b)) {
    *err = "invalid type for comparison";
    return std::nullopt;
  }
  if (a.kind() != b.kind()) {
    *err = "incompatible types for comparison";
    return std::nullopt;
  }
  if (ordered && !a.is_string()) {
    *err = "invalid type for comparison";
    return std::nullopt;
  }
  if (a.is_string())
    return a.get_string().compare(b.get_string()) < 0   ? -1
           : a.get_string().compare(b.get_string()) > 0 ? 1
                                                        : 0;
  if (a.is_bool()) return cmp(a.get_bool(), b.get_bool());
  return 0;  // nil == nil
}

// Go's fmt.Sprintf for the verbs templates use: %v %s %q %d %t %f %e %g %x, width, precision,
// and the flags - + 0.
std::string Sprintf(std::string_view f, const std::vector<Value>& args, size_t first) {
  std::string out;
  size_t a = first;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '%') {
      out += f[i];
      continue;
    }
    ++i;
    bool minus = false, plus = false, zero = false;
    for (; i < f.size() && std::strchr("-+# 0", f[i]) != nullptr; ++i) {
      minus |= f[i] == '-';
      plus |= f[i] == '+';
      zero |= f[i] == '0';
    }
    size_t width = 0;
    for (; i < f.size() && IsDigit(f[i]); ++i)
      width = width * 10 + static_cast<size_t>(f[i] - '0');
    int prec = -1;
    if (i < f.size() && f[i] == '.') {
      prec = 0;
      for (++i; i < f.size() && IsDigit(f[i]); ++i)
        prec = prec * 10 + (f[i] - '0');
    }
    if (i >= f.size()) {
      out += "%!(NOVERB)";
      break;
    }
    const char verb = f[i];
    if (verb == '%') {
      out += '%';
      continue;
    }
    if (a >= args.size()) {
      out += std::string("%!") + verb + "(MISSING)";
      continue;
    }
    const json::value& v = *args[a++];
    const std::string bad = std::string("%!") + verb + "(" + GoType(v) + "=" + Print(v) + ")";
    std::string s;
    bool numeric = false;
    switch (verb) {
      case 'v':
        s = Print(v);
        break;
      case 's':
        s = Print(v);
        if (prec >= 0 && v.is_string() && s.size() > static_cast<size_t>(prec)) s.resize(prec);
        break;
      case 'q':
        s = v.is_string() ? json::serialize(v) : bad;
        break;
      case 't':
        s = v.is_bool() ? Print(v) : bad;
        break;
      case 'd':
        numeric = v.is_int64() || v.is_uint64();
        s = !numeric ? bad : (plus && v.is_int64() && v.get_int64() >= 0 ? "+" : "") + Print(v);
        break;
      case 'x':
      case 'X': {
        char buf[64];
        if (v.is_int64() || v.is_uint64()) {
          numeric = true;
          snprintf(buf, sizeof(buf), verb == 'x' ? "%llx" : "%llX",
                   static_cast<unsigned long long>(v.is_int64() ? v.get_int64() : v.get_uint64()));
          s = buf;
        } else if (v.is_string()) {
          for (unsigned char ch : std::string_view(v.get_string())) {
            snprintf(buf, sizeof(buf), verb == 'x' ? "%02x" : "%02X", ch);
            s += buf;
          }
        } else {
          s = bad;
        }
        break;
      }
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G': {
        if (!v.is_number()) {
          s = bad;
          break;
        }
        numeric = true;
        const double d = v.is_double()  ? v.get_double()
                         : v.is_int64() ? static_cast<double>(v.get_int64())
                                        : static_cast<double>(v.get_uint64());
        const std::string spec = std::string("%") + (plus ? "+" : "") + "." +
                                 std::to_string(prec >= 0 ? prec : 6) + verb;
        char buf[512];
        if ((verb == 'g' || verb == 'G') && prec < 0) {
          s = GoFloat(d);
        } else {
          snprintf(buf, sizeof(buf), spec.c_str(), d);
          s = buf;
        }
        break;
      }
      default:
        s = bad;
    }
    if (s.size() < width) {
      const size_t n = width - s.size();
      if (minus) {
        s += std::string(n, ' ');
      } else if (zero && numeric) {
        const size_t sign = !s.empty() && (s[0] == '-' || s[0] == '+') ? 1 : 0;
        s.insert(sign, std::string(n, '0'));
      } else {
        s.insert(0, std::string(n, ' '));
      }
    }
    out += s;
  }
  if (a < args.size()) {
    out += "%!(EXTRA ";
    for (size_t k = a; k < args.size(); ++k) {
      if (k > a) out += ", ";
      out += GoType(*args[k]) + "=" + Print(*args[k]);
    }
    out += ")";
  }
  return out;
}

std::string AsciiCase(std::string s, bool upper) {
  for (char& c : s)
    c = static_cast<char>(upper ? std::toupper(static_cast<unsigned char>(c))
                                : std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// ---- Executing ----

class Exec {
 public:
  using HeaderOf = std::function<std::string(const std::string&)>;
  Exec(const std::string& text, const HeaderOf* header) : text_(text), header_(header) {}

  std::string Run(const std::vector<Node>& nodes, const Value& dot) {
    vars_.push_back({"$", dot});
    Walk(nodes, dot);
    return std::move(out_);
  }
  const std::string& Partial() const { return out_; }

 private:
  [[noreturn]] void Fail(size_t pos, const std::string& source, const std::string& msg) const {
    pos = std::min(pos, text_.size());
    const size_t nl = text_.rfind('\n', pos == 0 ? 0 : pos - 1);
    const size_t col = nl == std::string::npos || pos == 0 ? pos : pos - nl - 1;
    throw TemplateError(TemplateError::Kind::kExecute,
                        "template: :" + std::to_string(LineOf(text_, pos)) + ":" +
                            std::to_string(col) + ": executing \"\" at <" + source + ">: " + msg);
  }

  void Walk(const std::vector<Node>& nodes, const Value& dot) {
    for (const Node& n : nodes) {
      switch (n.kind) {
        case Node::Kind::kText:
          out_ += n.text;
          break;
        case Node::Kind::kAction: {
          const Value v = Pipe(n.pipe, dot, true);
          if (n.pipe.decls.empty()) out_ += Print(*v, true);
          break;
        }
        case Node::Kind::kIf:
        case Node::Kind::kWith: {
          const size_t vars = vars_.size();
          const Value v = Pipe(n.pipe, dot, true);
          if (Truth(*v)) {
            Walk(n.body, n.kind == Node::Kind::kWith ? v : dot);
          } else {
            Walk(n.else_body, dot);
          }
          vars_.resize(vars);
          break;
        }
        case Node::Kind::kRange:
          if (!header_) Range(n, dot);
          break;
      }
    }
  }

  void Range(const Node& n, const Value& dot) {
    const size_t vars = vars_.size();
    const Value v = Pipe(n.pipe, dot, false);
    size_t count = 0;
    auto visit = [&](const Value& key, const Value& elem) {
      vars_.resize(vars);
      if (n.pipe.decls.size() == 1) vars_.push_back({n.pipe.decls[0], elem});
      if (n.pipe.decls.size() == 2) {
        vars_.push_back({n.pipe.decls[0], key});
        vars_.push_back({n.pipe.decls[1], elem});
      }
      Walk(n.body, elem);
      ++count;
    };
    if (v->is_array()) {
      const auto& a = v->get_array();
      for (size_t i = 0; i < a.size(); ++i)
        visit(Value::Own(static_cast<int64_t>(i)), v.Child(a[i]));
    } else if (v->is_object()) {
      // Go ranges over a map in key order.
      std::vector<const json::key_value_pair*> kv;
      for (const auto& e : v->get_object())
        kv.push_back(&e);
      std::sort(kv.begin(), kv.end(), [](auto* x, auto* y) { return x->key() < y->key(); });
      for (const auto* e : kv)
        visit(Str(std::string(e->key())), v.Child(e->value()));
    } else if (!v->is_null()) {
      Fail(n.pipe.pos, n.pipe.source, "range can't iterate over " + Print(*v));
    }
    vars_.resize(vars);
    if (count == 0) Walk(n.else_body, dot);
    vars_.resize(vars);
  }

  Value Pipe(const Pipeline& p, const Value& dot, bool declare) {
    Value v;
    for (size_t k = 0; k < p.cmds.size(); ++k)
      v = Cmd(p.cmds[k], dot, k > 0 ? &v : nullptr);
    if (declare) {
      for (const auto& d : p.decls)
        vars_.push_back({d, v});
    }
    return v;
  }

  Value Cmd(const Command& cmd, const Value& dot, const Value* final) {
    const Operand& first = cmd.args[0];
    if (first.kind == Operand::Kind::kFunction) {
      std::vector<Value> args;
      for (size_t k = 1; k < cmd.args.size(); ++k)
        args.push_back(Arg(cmd.args[k], dot));
      if (final) args.push_back(*final);
      return Call(first.name, args, cmd.pos, cmd.source);
    }
    if (cmd.args.size() > 1 || final) {
      Fail(first.pos, first.source, "can't give argument to non-function " + first.source);
    }
    return Arg(first, dot);
  }

  Value Arg(const Operand& o, const Value& dot) {
    Value base;
    switch (o.kind) {
      case Operand::Kind::kLiteral:
        return Value::Own(o.literal);
      case Operand::Kind::kFunction: {
        std::vector<Value> none;
        return Call(o.name, none, o.pos, o.source);
      }
      case Operand::Kind::kDot:
        base = dot;
        break;
      case Operand::Kind::kVariable: {
        auto it = std::find_if(vars_.rbegin(), vars_.rend(),
                               [&](const auto& kv) { return kv.first == o.name; });
        if (it == vars_.rend()) Fail(o.pos, o.source, "undefined variable: " + o.name);
        base = it->second;
        break;
      }
      case Operand::Kind::kPipeline:
        base = Pipe(*o.pipeline, dot, false);
        break;
    }
    if (header_ && !o.path.empty() && o.kind != Operand::Kind::kPipeline) {
      std::string path;
      for (const auto& f : o.path)
        path += (path.empty() ? "" : ".") + f;
      return Str((*header_)(path));
    }
    Value cur = base;
    for (const auto& field : o.path) {
      if (cur->is_object()) {
        const auto& obj = cur->get_object();
        auto it = obj.find(field);
        if (it == obj.end()) Fail(o.pos, o.source, "can't evaluate field " + field);
        cur = cur.Child(it->value());
      } else if (cur->is_null()) {
        Fail(o.pos, o.source, "nil pointer evaluating interface {}." + field);
      } else {
        Fail(o.pos, o.source, "can't evaluate field " + field + " in type " + GoType(*cur));
      }
    }
    return cur;
  }

  Value Call(const std::string& name, std::vector<Value>& args, size_t pos,
             const std::string& src) {
    // A header keeps the column's name: these functions pass it through (as Docker's do).
    static const std::set<std::string, std::less<>> kHeaderPassThrough = {
        "index", "join", "json", "lower", "split", "title", "truncate", "upper"};
    if (header_ && kHeaderPassThrough.count(name)) return args.empty() ? Str("") : args[0];

    auto fail = [&](const std::string& m) { Fail(pos, src, "error calling " + name + ": " + m); };
    auto arity = [&](size_t lo, size_t hi) {
      if (args.size() >= lo && args.size() <= hi) return;
      const std::string want = lo == hi ? std::to_string(lo) : "at least " + std::to_string(lo);
      Fail(pos, src,
           "wrong number of args for " + name + ": want " + want + " got " +
               std::to_string(args.size()));
    };
    auto text = [](const Value& v) {
      return v->is_string() ? std::string(v->get_string()) : Print(*v);
    };
    auto integer = [&](const Value& v) -> int64_t {
      if (v->is_int64()) return v->get_int64();
      if (v->is_uint64()) return static_cast<int64_t>(v->get_uint64());
      Fail(pos, src, "wrong type for value; expected int; got " + GoType(*v));
    };
    constexpr size_t kAny = SIZE_MAX;

    if (name == "json") {
      arity(1, 1);
      return Str(json::serialize(*args[0]));
    }
    if (name == "index") {
      arity(1, kAny);
      Value cur = args[0];
      for (size_t k = 1; k < args.size(); ++k) {
        const json::value& key = *args[k];
        if (cur->is_object()) {
          if (!key.is_string()) fail("value has type " + GoType(key) + "; should be string");
          auto it = cur->get_object().find(key.get_string());
          // A missing key gives the zero value of a map of strings, as for Docker's labels.
          cur = it == cur->get_object().end() ? Str("") : cur.Child(it->value());
        } else if (cur->is_array()) {
          if (!key.is_int64() && !key.is_uint64()) {
            fail("cannot index slice/array with type " + GoType(key));
          }
          const int64_t i = integer(args[k]);
          if (i < 0 || static_cast<size_t>(i) >= cur->get_array().size()) {
            fail("index out of range: " + std::to_string(i));
          }
          cur = cur.Child(cur->get_array()[static_cast<size_t>(i)]);
        } else if (cur->is_null()) {
          fail("index of untyped nil");
        } else {
          fail("can't index item of type " + GoType(*cur));
        }
      }
      return cur;
    }
    if (name == "len") {
      arity(1, 1);
      const json::value& v = *args[0];
      if (v.is_string()) return Value::Own(static_cast<int64_t>(v.get_string().size()));
      if (v.is_array()) return Value::Own(static_cast<int64_t>(v.get_array().size()));
      if (v.is_object()) return Value::Own(static_cast<int64_t>(v.get_object().size()));
      fail("len of type " + GoType(v));
    }
    if (name == "join") {
      arity(2, 2);
      if (args[0]->is_null()) return Str("");
      if (!args[0]->is_array()) {
        Fail(pos, src, "wrong type for value; expected []string; got " + GoType(*args[0]));
      }
      std::string out;
      const std::string sep = text(args[1]);
      for (const auto& e : args[0]->get_array()) {
        if (&e != &args[0]->get_array().front()) out += sep;
        out += e.is_string() ? std::string(e.get_string()) : Print(e);
      }
      return Str(out);
    }
    if (name == "split") {
      arity(2, 2);
      const std::string s = text(args[0]), sep = text(args[1]);
      json::array parts;
      if (sep.empty()) {
        // One element per UTF-8 character, as strings.Split does.
        for (size_t i = 0; i < s.size();) {
          size_t j = i + 1;
          while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80)
            ++j;
          parts.emplace_back(s.substr(i, j - i));
          i = j;
        }
      } else {
        size_t from = 0;
        for (size_t at; (at = s.find(sep, from)) != std::string::npos; from = at + sep.size())
          parts.emplace_back(s.substr(from, at - from));
        parts.emplace_back(s.substr(from));
      }
      return Value::Own(std::move(parts));
    }
    if (name == "lower" || name == "upper") {
      arity(1, 1);
      return Str(AsciiCase(text(args[0]), name == "upper"));
    }
    if (name == "title") {
      arity(1, 1);
      std::string s = text(args[0]);
      bool start = true;
      for (char& c : s) {
        const unsigned char u = static_cast<unsigned char>(c);
        if (start && std::isalpha(u)) c = static_cast<char>(std::toupper(u));
        start = !(std::isalnum(u) || c == '_' || c == '\'' || u >= 0x80);
      }
      return Str(s);
    }
    if (name == "pad") {
      arity(3, 3);
      const std::string s = text(args[0]);
      if (s.empty()) return Str(s);
      const int64_t before = std::max<int64_t>(0, integer(args[1]));
      const int64_t after = std::max<int64_t>(0, integer(args[2]));
      return Str(std::string(static_cast<size_t>(before), ' ') + s +
                 std::string(static_cast<size_t>(after), ' '));
    }
    if (name == "truncate") {
      arity(2, 2);
      std::string s = text(args[0]);
      const int64_t n = integer(args[1]);
      if (n >= 0 && s.size() > static_cast<size_t>(n)) s.resize(static_cast<size_t>(n));
      return Str(s);
    }
    if (name == "print" || name == "println") {
      // Sprint puts a space between two operands when neither is a string; Sprintln always.
      std::string out;
      for (size_t k = 0; k < args.size(); ++k) {
        if (k > 0 && (name == "println" || (!args[k - 1]->is_string() && !args[k]->is_string())))
          out += ' ';
        out += Print(*args[k]);
      }
      return Str(name == "println" ? out + "\n" : out);
    }
    if (name == "printf") {
      arity(1, kAny);
      return Str(Sprintf(text(args[0]), args, 1));
    }
    if (name == "not") {
      arity(1, 1);
      return Value::Own(!Truth(*args[0]));
    }
    if (name == "and" || name == "or") {
      arity(1, kAny);
      for (const auto& a : args) {
        if (Truth(*a) == (name == "or")) return a;
      }
      return args.back();
    }
    // eq, ne, lt, le, gt, ge
    if (name == "eq") {
      if (args.size() < 2) fail("missing argument for comparison");
    } else {
      arity(2, 2);
    }
    bool result = false;
    for (size_t k = 1; k < args.size(); ++k) {
      std::string err;
      const auto order = Order(*args[0], *args[k], name != "eq" && name != "ne", &err);
      if (!order) fail(err);
      result = result || (name == "eq" && *order == 0);
      if (name == "ne") result = *order != 0;
      if (name == "lt") result = *order < 0;
      if (name == "le") result = *order <= 0;
      if (name == "gt") result = *order > 0;
      if (name == "ge") result = *order >= 0;
    }
    return Value::Own(result);
  }

  const std::string& text_;
  const HeaderOf* header_;
  std::vector<std::pair<std::string, Value>> vars_;
  std::string out_;
};

}  // namespace
}  // namespace tmpl

Template Template::Parse(std::string_view text, TextEscapes escapes) {
  auto tree = std::make_shared<Tree>();
  tree->text = std::string(text);
  tmpl::Parser parser(tree->text, tmpl::Lex(tree->text, escapes == TextEscapes::kExpand));
  tree->nodes = parser.Top();
  return Template(std::move(tree));
}

std::string Template::Execute(const boost::json::value& dot) const {
  tmpl::Exec exec(tree_->text, nullptr);
  return exec.Run(tree_->nodes, tmpl::Value::Borrow(dot));
}

std::string Template::ExecuteHeader(
    const std::function<std::string(const std::string& field_path)>& header_of) const {
  tmpl::Exec exec(tree_->text, &header_of);
  try {
    return exec.Run(tree_->nodes, tmpl::Str(""));
  } catch (const TemplateError&) {
    return exec.Partial();
  }
}

}  // namespace skep::cli
