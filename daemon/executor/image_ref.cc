#include "daemon/executor/image_ref.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "daemon/executor/errors.h"

namespace skep::executor {
namespace {

[[noreturn]] void Invalid(std::string_view ref, std::string_view why) {
  throw ExecutorError(ErrorKind::kInvalidArgument,
                      fmt::format("invalid reference \"{}\": {}", ref, why));
}

bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool IsAlnum(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}

// One path component: [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
bool ValidPathComponent(std::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  for (size_t i = 0; i < c.size();) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < c.size() && !IsLowerAlnum(c[j]))
      ++j;
    std::string_view sep = c.substr(i, j - i);
    bool dashes = std::all_of(sep.begin(), sep.end(), [](char x) { return x == '-'; });
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
    i = j;
  }
  return true;
}

// host[:port], where host is dot-separated labels ([A-Za-z0-9] with inner '-') or [ipv6].
bool ValidDomain(std::string_view d) {
  std::string_view host = d;
  std::string_view port;
  if (!d.empty() && d.front() == '[') {
    size_t close = d.find(']');
    if (close == std::string_view::npos) return false;
    std::string_view inner = d.substr(1, close - 1);
    if (inner.empty() || !std::all_of(inner.begin(), inner.end(), [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
        }))
      return false;
    std::string_view rest = d.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
    host = {};
  } else if (size_t colon = d.rfind(':'); colon != std::string_view::npos) {
    host = d.substr(0, colon);
    port = d.substr(colon + 1);
    if (port.empty()) return false;
  }
  if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  if (d.front() == '[') return true;
  if (host.empty()) return false;
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    std::string_view label = host.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (label.empty() || !IsAlnum(label.front()) || !IsAlnum(label.back())) return false;
    for (char c : label)
      if (!IsAlnum(c) && c != '-') return false;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

bool ValidTag(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  auto word = [](char c) { return IsAlnum(c) || c == '_'; };
  if (!word(t.front())) return false;
  return std::all_of(t.begin(), t.end(), [&](char c) { return word(c) || c == '.' || c == '-'; });
}

void CheckDigest(std::string_view ref, std::string_view d) {
  size_t colon = d.find(':');
  std::string_view algo = colon == std::string_view::npos ? d : d.substr(0, colon);
  std::string_view hex = colon == std::string_view::npos ? "" : d.substr(colon + 1);
  size_t want = algo == "sha256" ? 64 : algo == "sha384" ? 96 : algo == "sha512" ? 128 : 0;
  if (want == 0) Invalid(ref, fmt::format("unsupported digest algorithm \"{}\"", algo));
  bool ok = hex.size() == want && std::all_of(hex.begin(), hex.end(), [](char c) {
              return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
            });
  if (!ok)
    Invalid(ref, fmt::format("invalid digest \"{}\": want {}:<{} lowercase hex>", d, algo, want));
}

}  // namespace

std::string ImageRef::String() const {
  std::string s = Name();
  if (!tag.empty()) s += ":" + tag;
  if (!digest.empty()) s += "@" + digest;
  return s;
}

ImageRef ImageRef::WithDigest(std::string d) const {
  ImageRef r = *this;
  r.tag.clear();
  r.digest = std::move(d);
  return r;
}

ImageRef ParseImageRef(std::string_view ref) {
  if (ref.empty()) Invalid(ref, "empty reference");
  if (ref.find("://") != std::string_view::npos)
    Invalid(ref, "a reference has no scheme (write host[:port]/name[:tag])");
  for (char c : ref)
    if (std::isspace(static_cast<unsigned char>(c)) || !std::isprint(static_cast<unsigned char>(c)))
      Invalid(ref, "contains whitespace or control characters");

  ImageRef out;
  std::string_view rest = ref;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    out.digest = std::string(rest.substr(at + 1));
    rest = rest.substr(0, at);
    CheckDigest(ref, out.digest);
  }
  // A tag is a ':' after the last '/' (a ':' before it belongs to the registry's port).
  size_t last_slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || colon > last_slash)) {
    out.tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (!ValidTag(out.tag))
      Invalid(ref,
              fmt::format("invalid tag \"{}\": want [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}", out.tag));
  }
  if (rest.empty()) Invalid(ref, "missing repository name");

  // Split off the registry host (Docker's rule).
  size_t slash = rest.find('/');
  std::string_view first = rest.substr(0, slash);
  bool has_domain = slash != std::string_view::npos &&
                    (first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
                     std::any_of(first.begin(), first.end(), [](char c) {
                       return std::isupper(static_cast<unsigned char>(c));
                     }));
  std::string_view path = rest;
  if (has_domain) {
    if (!ValidDomain(first)) Invalid(ref, fmt::format("invalid registry host \"{}\"", first));
    out.domain = std::string(first);
    path = rest.substr(slash + 1);
  } else {
    out.domain = "docker.io";
  }
  if (out.domain == "index.docker.io") out.domain = "docker.io";
  if (path.empty()) Invalid(ref, "missing repository name");

  size_t start = 0;
  while (true) {
    size_t next = path.find('/', start);
    std::string_view component =
        path.substr(start, next == std::string_view::npos ? next : next - start);
    if (std::any_of(component.begin(), component.end(),
                    [](char c) { return std::isupper(static_cast<unsigned char>(c)); }))
      Invalid(ref, "repository name must be lowercase");
    if (!ValidPathComponent(component))
      Invalid(ref, fmt::format("invalid repository name component \"{}\": want lowercase letters "
                               "and digits, separated by '.', '_', '__' or dashes",
                               component));
    if (next == std::string_view::npos) break;
    start = next + 1;
  }
  out.path = std::string(path);
  if (out.domain == "docker.io" && out.path.find('/') == std::string::npos)
    out.path = "library/" + out.path;
  if (out.Name().size() > 255) Invalid(ref, "repository name must not be more than 255 characters");
  if (out.tag.empty() && out.digest.empty()) out.tag = "latest";
  return out;
}

std::string RegistryDomain(std::string_view server) {
  std::string_view s = server;
  if (size_t scheme = s.find("://"); scheme != std::string_view::npos) s = s.substr(scheme + 3);
  s = s.substr(0, s.find('/'));
  if (s == "index.docker.io" || s == "registry-1.docker.io" || s == "registry.hub.docker.com")
    return "docker.io";
  return std::string(s);
}

}  // namespace skep::executor
