#include "daemon/cli/format.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>
#include <sstream>

#include "daemon/cli/template.h"

namespace skep::cli {

std::string Table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size(), 0);
  for (size_t c = 0; c < header.size(); ++c)
    width[c] = header[c].size();
  for (const auto& r : rows) {
    for (size_t c = 0; c < r.size() && c < width.size(); ++c)
      width[c] = std::max(width[c], r[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) {
      out += cells[c];
      if (c + 1 < cells.size()) out += std::string(width[c] - cells[c].size() + 3, ' ');
    }
    while (!out.empty() && out.back() == ' ')
      out.pop_back();
    return out + "\n";
  };
  std::string out = line(header);
  for (const auto& r : rows)
    out += line(r);
  return out;
}

namespace {

void Pretty(const boost::json::value& v, int indent, std::string& out) {
  const std::string pad(static_cast<size_t>(indent) * 4, ' ');
  const std::string inner(static_cast<size_t>(indent + 1) * 4, ' ');
  switch (v.kind()) {
    case boost::json::kind::object: {
      const auto& o = v.get_object();
      if (o.empty()) {
        out += "{}";
        return;
      }
      out += "{\n";
      size_t i = 0;
      for (const auto& kv : o) {
        out += inner + boost::json::serialize(boost::json::value(kv.key())) + ": ";
        Pretty(kv.value(), indent + 1, out);
        out += ++i < o.size() ? ",\n" : "\n";
      }
      out += pad + "}";
      return;
    }
    case boost::json::kind::array: {
      const auto& a = v.get_array();
      if (a.empty()) {
        out += "[]";
        return;
      }
      out += "[\n";
      for (size_t i = 0; i < a.size(); ++i) {
        out += inner;
        Pretty(a[i], indent + 1, out);
        out += i + 1 < a.size() ? ",\n" : "\n";
      }
      out += pad + "]";
      return;
    }
    default:
      out += boost::json::serialize(v);
  }
}

}  // namespace

namespace {

// Split at every `sep`, keeping empty pieces: a row's empty last cells are still cells.
std::vector<std::string> SplitKeepingEmpty(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t from = 0;
  for (size_t at; (at = s.find(sep, from)) != std::string::npos; from = at + 1)
    out.push_back(s.substr(from, at - from));
  out.push_back(s.substr(from));
  return out;
}

// Docker's rows are Go maps, which encoding/json writes with sorted keys.
boost::json::object SortedKeys(const boost::json::object& o) {
  std::vector<const boost::json::key_value_pair*> kv;
  for (const auto& e : o)
    kv.push_back(&e);
  std::sort(kv.begin(), kv.end(), [](auto* a, auto* b) { return a->key() < b->key(); });
  boost::json::object out;
  for (const auto* e : kv)
    out[e->key()] = e->value();
  return out;
}

}  // namespace

std::string FormatList(const std::string& format, bool quiet, const ListFormat& list,
                       const std::vector<boost::json::object>& rows) {
  std::string f = format;
  if (f.empty() || f == "table") f = quiet ? list.quiet : list.default_table;
  const bool table = f.rfind("table", 0) == 0;
  if (table) {
    f.erase(0, 5);
  } else if (f == "json") {
    f = "{{json .}}";
  }
  // As Docker: only spaces are trimmed, so that a leading or trailing \t or \n stays.
  const size_t first = f.find_first_not_of(' ');
  f = first == std::string::npos ? "" : f.substr(first, f.find_last_not_of(' ') - first + 1);
  const Template tmpl = Template::Parse(f, Template::TextEscapes::kExpand);

  std::string body;
  for (const auto& row : rows)
    body += tmpl.Execute(SortedKeys(row)) + "\n";
  if (!table) return body;

  const std::string header = tmpl.ExecuteHeader([&](const std::string& path) {
    if (auto it = list.headers.find(path); it != list.headers.end()) return it->second;
    std::string name = path.substr(path.rfind('.') + 1);
    for (char& c : name)
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return name;
  });
  std::vector<std::vector<std::string>> lines;
  for (const auto& line : SplitKeepingEmpty(header + "\n" + body, '\n'))
    lines.push_back(SplitKeepingEmpty(line, '\t'));
  lines.pop_back();  // after the last newline
  size_t columns = 0;
  for (const auto& l : lines)
    columns = std::max(columns, l.size());
  lines[0].resize(columns);  // Table() sizes its columns by the header's
  return Table(lines[0], {lines.begin() + 1, lines.end()});
}

std::string FormatInspect(const std::string& format,
                          const std::vector<boost::json::value>& objects) {
  const boost::json::array all(objects.begin(), objects.end());
  if (format.empty()) return PrettyJson(all);
  if (format == "json") return boost::json::serialize(all) + "\n";
  const Template tmpl = Template::Parse(format);
  std::string out;
  for (const auto& o : objects)
    out += tmpl.Execute(o) + "\n";
  return out;
}

std::string PrettyJson(const boost::json::value& v) {
  std::string out;
  Pretty(v, 0, out);
  return out + "\n";
}

boost::json::object SortedObject(const google::protobuf::Map<std::string, std::string>& m) {
  boost::json::object o;
  for (const auto& [k, v] : std::map<std::string, std::string>(m.begin(), m.end()))
    o[k] = v;
  return o;
}

std::string Rfc3339(int64_t unix_nanos) {
  const time_t secs = static_cast<time_t>(unix_nanos / 1'000'000'000);
  const long nanos = static_cast<long>(unix_nanos % 1'000'000'000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out = buf;
  if (nanos != 0) {
    char frac[16];
    snprintf(frac, sizeof(frac), ".%09ld", nanos);
    std::string f = frac;
    while (f.back() == '0')
      f.pop_back();
    out += f;
  }
  return out + "Z";
}

std::string HumanAgo(int64_t unix_nanos) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const double secs =
      std::chrono::duration<double>(now).count() - static_cast<double>(unix_nanos) / 1e9;
  auto plural = [](long n, const char* unit) {
    return std::to_string(n) + " " + unit + (n == 1 ? "" : "s") + " ago";
  };
  if (secs < 1) return "Less than a second ago";
  if (secs < 60) return plural(static_cast<long>(secs), "second");
  if (secs < 3600) return plural(static_cast<long>(secs / 60), "minute");
  if (secs < 86400 * 2) return plural(static_cast<long>(secs / 3600), "hour");
  return plural(static_cast<long>(secs / 86400), "day");
}

std::optional<std::chrono::nanoseconds> ParseDuration(const std::string& text) {
  if (text.empty()) return std::nullopt;
  if (text == "0") return std::chrono::nanoseconds(0);
  double total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i;
    while (j < text.size() && (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == '.'))
      ++j;
    if (j == i) return std::nullopt;
    // One number: digits with at most one point ("1.5", ".5", "5."), all of it read.
    const std::string number = text.substr(i, j - i);
    if (std::count(number.begin(), number.end(), '.') > 1 || number == ".") return std::nullopt;
    double value = 0;
    size_t used = 0;
    try {
      value = std::stod(number, &used);
    } catch (...) {
      return std::nullopt;
    }
    if (used != number.size()) return std::nullopt;
    size_t k = j;
    while (k < text.size() && !std::isdigit(static_cast<unsigned char>(text[k])) && text[k] != '.')
      ++k;
    const std::string unit = text.substr(j, k - j);
    double scale = 0;
    if (unit == "ns")
      scale = 1;
    else if (unit == "us" || unit == "\xC2\xB5s")
      scale = 1e3;
    else if (unit == "ms")
      scale = 1e6;
    else if (unit == "s")
      scale = 1e9;
    else if (unit == "m")
      scale = 60e9;
    else if (unit == "h")
      scale = 3600e9;
    else
      return std::nullopt;
    total += value * scale;
    i = k;
  }
  // Longer than int64 nanoseconds hold (about 292 years) is no duration either.
  if (!(total < 0x1p63)) return std::nullopt;
  return std::chrono::nanoseconds(static_cast<int64_t>(std::llround(total)));
}

}  // namespace skep::cli
