// Structured logs: one line per event, `time=... level=... component=... msg="..."`.
#pragma once

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <string>

namespace skep::log {

// level: trace, debug, info, warn, error. Throws std::invalid_argument for anything else.
void Init(const std::string& level);
std::string Quote(const std::string& s);

}  // namespace skep::log

#define SKEP_LOG(lvl, component, ...) \
  ::spdlog::lvl("component={} msg={}", component, ::skep::log::Quote(::fmt::format(__VA_ARGS__)))
