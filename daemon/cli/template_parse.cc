#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cstring>
#include <optional>
#include <set>
#include <vector>

#include "daemon/cli/template_tree.h"

namespace skep::cli {
namespace tmpl {

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}

size_t LineOf(std::string_view text, size_t pos) {
  pos = std::min(pos, text.size());
  return 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + pos, '\n'));
}

namespace {

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

constexpr size_t kNpos = std::string_view::npos;

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}
// Bytes of UTF-8 sequences count as letters, so non-ASCII names lex as one word.
bool IsWordChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
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

}  // namespace

std::vector<Node> ParseNodes(std::string_view text, bool expand) {
  Parser parser(text, Lex(text, expand));
  return parser.Top();
}

}  // namespace tmpl

Template Template::Parse(std::string_view text, TextEscapes escapes) {
  auto tree = std::make_shared<Tree>();
  tree->text = std::string(text);
  tree->nodes = tmpl::ParseNodes(tree->text, escapes == TextEscapes::kExpand);
  return Template(std::move(tree));
}

}  // namespace skep::cli
