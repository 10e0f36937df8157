// Output the way Docker's CLI prints it: padded tables, indented JSON, RFC 3339 times, and
// Go-style durations on input.
#pragma once

#include <google/protobuf/map.h>

#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace skep::cli {

// Columns left-aligned, separated by at least three spaces; the last column is not padded.
std::string Table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows);

// What a list command can print besides its table, in Docker's terms: each row is a JSON
// object whose keys are the fields a --format template names ({{.Hostname}}).
struct ListFormat {
  // The normal table as a Docker table format: "table {{.ID}}\t{{.Name}}".
  std::string default_table;
  // Field -> column header for `--format 'table ...'`, e.g. ManagerStatus -> MANAGER STATUS;
  // "" for a field with no column of its own (node ls' Self). A field not listed is headed by
  // its name upper-cased.
  std::map<std::string, std::string> headers;
  // What -q prints for each row, unless a custom format is given.
  std::string quiet = "{{.ID}}";
};

// The output of a list command for `--format FORMAT` and `-q`, as Docker's formatter makes it:
//   "" or "table"      the default table (with -q: `quiet` per row)
//   "table TEMPLATE"   a table: TEMPLATE per row, cells split at tabs, padded as Table() does,
//                      under a header row from `headers`
//   "json"             each row as one line of compact JSON, keys sorted
//   anything else      TEMPLATE per row, each followed by a newline
// In FORMAT, the two characters \t and \n stand for a tab and a newline. Throws TemplateError
// before returning anything, so a failing command prints nothing but the error.
std::string FormatList(const std::string& format, bool quiet, const ListFormat& list,
                       const std::vector<boost::json::object>& rows);

// The output of an inspect command for `--format FORMAT`: "" the indented JSON array,
// "json" the array as one line of compact JSON (as Docker prints it), otherwise the template
// applied to each object, one result per line. Throws TemplateError.
std::string FormatInspect(const std::string& format,
                          const std::vector<boost::json::value>& objects);

// Indented with four spaces, keys in insertion order, as `docker inspect` prints.
std::string PrettyJson(const boost::json::value& v);

// A string map (labels, options) as a JSON object with its keys in order.
boost::json::object SortedObject(const google::protobuf::Map<std::string, std::string>& m);

// Unix nanoseconds as 2026-11-21T10:11:12.123456789Z.
std::string Rfc3339(int64_t unix_nanos);
// "3 minutes ago" style, as in Docker's tables.
std::string HumanAgo(int64_t unix_nanos);

// "1h30m", "100ms", "2s", "90s": nullopt when it is not a duration.
std::optional<std::chrono::nanoseconds> ParseDuration(const std::string& text);

}  // namespace skep::cli
