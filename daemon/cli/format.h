// Output the way Docker's CLI prints it: padded tables, indented JSON, RFC 3339 times, and
// Go-style durations on input.
#pragma once

#include <boost/json.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace skep::cli {

// Columns left-aligned, separated by at least three spaces; the last column is not padded.
std::string Table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows);

// Indented with four spaces, keys in insertion order, as `docker inspect` prints.
std::string PrettyJson(const boost::json::value& v);

// Unix nanoseconds as 2026-11-21T10:11:12.123456789Z.
std::string Rfc3339(int64_t unix_nanos);
// "3 minutes ago" style, as in Docker's tables.
std::string HumanAgo(int64_t unix_nanos);

// "1h30m", "100ms", "2s", "90s": nullopt when it is not a duration.
std::optional<std::chrono::nanoseconds> ParseDuration(const std::string& text);

}  // namespace skep::cli
