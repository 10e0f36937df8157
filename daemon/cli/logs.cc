// skep service logs: the lines a service's tasks (or one task) wrote, gathered by the managers
// from every node, each prefixed as Docker prints them: `web.1.q3m4r2k1x0ab@node1    | line`.
#include <time.h>

#include <algorithm>
#include <iostream>

#include "daemon/cli/command.h"
#include "daemon/cli/format.h"
#include "daemon/common/clock.h"

namespace skep::cli {

namespace {

int64_t ParseTail(const std::string& v) {
  if (v.empty() || v == "all") return -1;
  if (v.find_first_not_of("0123456789") != std::string::npos || v.size() > 18) {
    throw UsageError("invalid --tail \"" + v + "\": expected a number of lines, or all");
  }
  return std::stoll(v);
}

// Docker's --since: a duration before now (42m), unix seconds (1700000000[.5]), or an RFC 3339
// time (2013-01-02T13:23:37Z, or without seconds or time of day).
int64_t ParseSince(const std::string& v) {
  if (v.empty()) return 0;
  if (auto d = ParseDuration(v)) return NowNanos() - d->count();
  if (v.find_first_not_of("0123456789.") == std::string::npos &&
      std::count(v.begin(), v.end(), '.') <= 1) {
    const size_t dot = v.find('.');
    int64_t ns = std::stoll(v.substr(0, dot)) * 1'000'000'000;
    if (dot != std::string::npos) {
      std::string frac = v.substr(dot + 1).substr(0, 9);
      frac.resize(9, '0');
      ns += std::stoll(frac);
    }
    return ns;
  }
  for (const char* f : {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"}) {
    tm t{};
    const char* end = strptime(v.c_str(), f, &t);
    if (end == nullptr) continue;
    int64_t frac_ns = 0;
    if (*end == '.') {
      std::string frac;
      for (++end; *end >= '0' && *end <= '9'; ++end)
        frac += *end;
      frac = frac.substr(0, 9);
      frac.resize(9, '0');
      frac_ns = std::stoll(frac);
    }
    if (*end == 'Z' && end[1] == '\0')
      return static_cast<int64_t>(timegm(&t)) * 1'000'000'000 + frac_ns;
    if (*end == '\0') return static_cast<int64_t>(timelocal(&t)) * 1'000'000'000 + frac_ns;
  }
  throw UsageError("invalid --since \"" + v +
                   "\": expected a duration (42m), unix seconds or a time (2013-01-02T13:23:37Z)");
}

// RFC 3339 with all nine digits of the nanoseconds, so that the lines align (Docker's too).
std::string Timestamp(int64_t unix_nanos) {
  const time_t secs = static_cast<time_t>(unix_nanos / 1'000'000'000);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[64];
  const size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &t);
  snprintf(buf + n, sizeof(buf) - n, ".%09lldZ",
           static_cast<long long>(unix_nanos % 1'000'000'000));
  return buf;
}

int Logs(const Invocation& inv) {
  api::ServiceLogsRequest req;
  req.set_ref(inv.args[0]);
  req.set_follow(inv.Has("follow"));
  req.set_tail(ParseTail(inv.Get("tail")));
  req.set_since_ns(ParseSince(inv.Get("since")));
  const bool timestamps = inv.Has("timestamps"), raw = inv.Has("raw"),
             no_trunc = inv.Has("no-trunc"), no_ids = inv.Has("no-task-ids"),
             no_resolve = inv.Has("no-resolve");

  grpc::ClientContext ctx;
  auto reader = inv.Control()->ServiceLogs(&ctx, req);
  api::ServiceLogsMessage msg;
  size_t width = 0;  // the longest prefix so far, so that the bars line up
  while (reader->Read(&msg)) {
    if (!msg.warning().empty()) std::cerr << "warning: " << msg.warning() << "\n";
    for (const auto& m : msg.messages()) {
      std::string line;
      if (timestamps) line = Timestamp(m.time_ns()) + " ";
      if (!raw) {
        std::string prefix = no_resolve ? m.service_id() : m.service_name();
        prefix += "." + (m.slot() ? std::to_string(m.slot()) : m.node_id());
        if (!no_ids) prefix += "." + (no_trunc ? m.task_id() : m.task_id().substr(0, 12));
        prefix += "@" + (no_resolve ? m.node_id() : m.node_hostname());
        width = std::max(width, prefix.size());
        prefix.resize(width, ' ');
        line += prefix + "    | ";
      }
      line += m.data();
      if (!m.partial()) line += "\n";
      // Flushed line by line: where both streams go to one place, lines stay whole.
      (m.stream() == api::LogMessage::STDERR ? std::cerr : std::cout) << line << std::flush;
    }
  }
  Check(reader->Finish(), inv.host);
  return 0;
}

}  // namespace

std::vector<Command> LogsCommands() {
  return {{"service logs",
           "[OPTIONS] SERVICE|TASK",
           "Fetch the logs of a service or task",
           {{"follow", 'f', "", "Follow log output"},
            {"tail", 'n', "string",
             "Number of lines to show from the end of the logs (default \"all\")"},
            {"timestamps", 't', "", "Show timestamps"},
            {"since", 0, "string",
             "Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)"},
            {"raw", 0, "", "Do not neatly format logs"},
            {"no-trunc", 0, "", "Do not truncate output"},
            {"no-task-ids", 0, "", "Do not include task IDs in output"},
            {"no-resolve", 0, "", "Do not map IDs to Names in output"}},
           1,
           1,
           Logs}};
}

}  // namespace skep::cli
