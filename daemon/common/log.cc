#include "daemon/common/log.h"

#include <grpc/support/log.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <stdexcept>

namespace skep::log {

void Init(const std::string& level) {
  const auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    throw std::invalid_argument("unknown log level \"" + level +
                                "\" (use trace, debug, info, warn or error)");
  }
  auto logger = spdlog::stderr_logger_mt("skepd");
  logger->set_pattern("time=%Y-%m-%dT%H:%M:%S.%eZ level=%l %v", spdlog::pattern_time_type::utc);
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  // gRPC's own messages are about its internals (it reports, for one, every TLS connection to
  // a manager reached by IP address as a name mismatch, which skep does not check by design);
  // what matters to an operator is logged by skep where the call fails.
  gpr_set_log_function([](gpr_log_func_args* args) {
    spdlog::debug("component=grpc msg={}", Quote(args->message));
  });
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace skep::log
