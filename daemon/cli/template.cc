#include "daemon/cli/template.h"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>
#include <set>
#include <vector>

#include "daemon/cli/template_tree.h"

namespace skep::cli {

namespace json = boost::json;

namespace tmpl {
namespace {

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
