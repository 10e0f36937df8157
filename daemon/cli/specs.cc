#include "daemon/cli/specs.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <sstream>

#include "daemon/cli/command.h"
#include "daemon/cli/format.h"

namespace skep::cli {
namespace {

// Whether `x` is a number >= 0 that converts to int64 (false for NaN and infinities).
bool FitsInt64(double x) {
  return x >= 0 && x < 0x1p63;
}

}  // namespace

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, sep))
    out.push_back(part);
  return out;
}

std::string ParsePlacementPref(const std::string& flag, const std::string& v) {
  const auto eq = v.find('=');
  const std::string strategy = v.substr(0, eq);
  if (eq == std::string::npos || eq + 1 == v.size()) {
    throw UsageError("invalid argument \"" + v + "\" for \"--" + flag +
                     "\": expected spread=<label>, e.g. spread=node.labels.zone");
  }
  if (strategy != "spread") {
    throw UsageError("invalid argument \"" + v + "\" for \"--" + flag +
                     "\": unknown placement preference strategy \"" + strategy +
                     "\" (only spread is supported)");
  }
  return v.substr(eq + 1);
}

int64_t ParseDurationNs(const std::string& flag, const std::string& v) {
  auto d = ParseDuration(v);
  if (!d) throw UsageError("invalid argument \"" + v + "\" for \"--" + flag + "\": not a duration");
  return d->count();
}

int64_t ParseBytes(const std::string& flag, const std::string& v) {
  size_t pos = 0;
  double n = 0;
  try {
    n = std::stod(v, &pos);
  } catch (...) {
    pos = 0;
  }
  std::string unit = v.substr(pos);
  std::transform(unit.begin(), unit.end(), unit.begin(), ::tolower);
  if (!unit.empty() && unit.back() == 'b') unit.pop_back();
  const std::map<std::string, double> units{
      {"", 1}, {"k", 1024.0}, {"m", 1024.0 * 1024}, {"g", 1024.0 * 1024 * 1024}};
  auto it = units.find(unit);
  // std::stod also reads "nan", "inf" and "1e30": sizes no int64 holds.
  if (pos == 0 || it == units.end() || !FitsInt64(n * it->second)) {
    throw UsageError("invalid argument \"" + v + "\" for \"--" + flag + "\": not a size");
  }
  return static_cast<int64_t>(n * it->second);
}

int64_t ParseCpus(const std::string& flag, const std::string& v) {
  size_t pos = 0;
  double n = -1;
  try {
    n = std::stod(v, &pos);
  } catch (...) {
  }
  if (pos != v.size() || !FitsInt64(n * 1e9)) {
    throw UsageError("invalid argument \"" + v + "\" for \"--" + flag + "\": not a CPU count");
  }
  return static_cast<int64_t>(n * 1e9);
}

std::pair<std::string, std::string> KeyValue(const std::string& flag, const std::string& v) {
  const size_t eq = v.find('=');
  if (eq == 0) throw UsageError("invalid argument \"" + v + "\" for \"--" + flag + "\"");
  if (eq == std::string::npos) return {v, ""};
  return {v.substr(0, eq), v.substr(eq + 1)};
}

api::Mount ParseMount(const std::string& v) {
  api::Mount m;
  m.set_type(api::Mount::VOLUME);
  for (const auto& part : Split(v, ',')) {
    auto [k, val] = KeyValue("mount", part);
    if (k == "type") {
      if (val == "bind") {
        m.set_type(api::Mount::BIND);
      } else if (val == "volume") {
        m.set_type(api::Mount::VOLUME);
      } else if (val == "tmpfs") {
        m.set_type(api::Mount::TMPFS);
      } else {
        throw UsageError("invalid mount \"" + v + "\": unknown type \"" + val + "\"");
      }
    } else if (k == "source" || k == "src") {
      m.set_source(val);
    } else if (k == "target" || k == "destination" || k == "dst") {
      m.set_target(val);
    } else if (k == "readonly" || k == "ro") {
      m.set_read_only(val.empty() || val == "true" || val == "1");
    } else if (k == "tmpfs-size") {
      m.set_tmpfs_size_bytes(ParseBytes("mount", val));
    } else if (k == "tmpfs-mode") {
      // Octal digits only: std::stoul would throw for "x" and read "+7" or " 7" as modes.
      if (val.empty() || val.size() > 4 || val.find_first_not_of("01234567") != std::string::npos) {
        throw UsageError("invalid mount \"" + v + "\": tmpfs-mode \"" + val +
                         "\" is not an octal file mode (e.g. 1777)");
      }
      m.set_tmpfs_mode(static_cast<uint32_t>(std::stoul(val, nullptr, 8)));
    } else {
      throw UsageError("invalid mount \"" + v + "\": unknown field \"" + k + "\"");
    }
  }
  if (m.target().empty()) throw UsageError("invalid mount \"" + v + "\": target is required");
  return m;
}

api::PortConfig ParsePort(const std::string& v) {
  api::PortConfig p;
  p.set_protocol("tcp");
  auto number = [&](const std::string& s) -> uint32_t {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 5) {
      throw UsageError("invalid published port \"" + v + "\"");
    }
    const uint32_t n = static_cast<uint32_t>(std::stoul(s));
    if (n > 65535)
      throw UsageError("invalid published port \"" + v + "\": " + s + " is not a port");
    return n;
  };
  if (v.find('=') != std::string::npos) {
    for (const auto& part : Split(v, ',')) {
      auto [k, val] = KeyValue("publish", part);
      if (k == "mode") {
        if (val != "host" && val != "ingress") {
          throw UsageError("invalid published port \"" + v + "\": mode is host or ingress");
        }
        p.set_publish_mode(val == "host" ? api::PortConfig::HOST : api::PortConfig::INGRESS);
      } else if (k == "published") {
        p.set_published_port(number(val));
      } else if (k == "target") {
        p.set_target_port(number(val));
      } else if (k == "protocol") {
        p.set_protocol(val);
      } else {
        throw UsageError("invalid published port \"" + v + "\": unknown field \"" + k + "\"");
      }
    }
  } else {
    std::string spec = v;
    const size_t slash = spec.find('/');
    if (slash != std::string::npos) {
      p.set_protocol(spec.substr(slash + 1));
      spec = spec.substr(0, slash);
    }
    const size_t colon = spec.find(':');
    if (colon == std::string::npos) {
      p.set_target_port(number(spec));
    } else {
      p.set_published_port(number(spec.substr(0, colon)));
      p.set_target_port(number(spec.substr(colon + 1)));
    }
  }
  if (p.target_port() == 0) throw UsageError("invalid published port \"" + v + "\": no target");
  return p;
}

}  // namespace skep::cli
