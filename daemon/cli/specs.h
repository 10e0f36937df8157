// The values of `skep service create/update` flags that have a syntax of their own: placement
// preferences, durations, sizes, CPU counts, mounts and published ports, as Docker's CLI
// spells them. Pure: no I/O. A value that does not parse throws UsageError (command.h) with a
// message that names the flag and quotes the value.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "objects.pb.h"

namespace skep::cli {

// The pieces of `s` between the separators: "a,,b" gives "a", "" and "b"; a trailing
// separator adds nothing and "" gives no piece at all.
std::vector<std::string> Split(const std::string& s, char sep);

// "KEY=VALUE" as {KEY, VALUE}; "KEY" alone as {KEY, ""}. An empty key ("=x") throws
// UsageError: invalid argument "=x" for "--FLAG".
std::pair<std::string, std::string> KeyValue(const std::string& flag, const std::string& v);

// --placement-pref: "spread=node.labels.zone" -> "node.labels.zone" (only the spread strategy
// exists; the managers check the label). Throws UsageError: invalid argument "V" for "--FLAG":
// expected spread=<label> (or: unknown placement preference strategy).
std::string ParsePlacementPref(const std::string& flag, const std::string& v);

// A Go-style duration in nanoseconds: "1h30m", "100ms", "1.5s", "0" (ParseDuration in
// format.h). Throws UsageError: invalid argument "V" for "--FLAG": not a duration.
int64_t ParseDurationNs(const std::string& flag, const std::string& v);

// A size in bytes, as Docker's MemBytes: a number with an optional unit k, m or g (powers of
// 1024, any case, an optional trailing b): "512M", "1g", "1024". Throws UsageError: invalid
// argument "V" for "--FLAG": not a size.
int64_t ParseBytes(const std::string& flag, const std::string& v);

// A CPU count as nano-CPUs: "1.5" -> 1500000000. Throws UsageError: invalid argument "V" for
// "--FLAG": not a CPU count.
int64_t ParseCpus(const std::string& flag, const std::string& v);

// --mount: comma-separated KEY=VALUE fields, as `docker service create --mount` takes them:
// type=bind|volume|tmpfs (default volume), source|src=, target|destination|dst= (required),
// readonly|ro[=true|1], tmpfs-size=SIZE, tmpfs-mode=OCTAL. Throws UsageError:
// invalid mount "V": what is wrong (an unknown type or field, no target, a bad size or mode).
api::Mount ParseMount(const std::string& v);

// --publish: the short form [PUBLISHED:]TARGET[/PROTOCOL] ("8080:80/udp", "80"), or the long
// form mode=host|ingress,published=N,target=N,protocol=P. Throws UsageError: invalid published
// port "V": what is wrong (not a port number, an unknown field or mode, no target).
api::PortConfig ParsePort(const std::string& v);

}  // namespace skep::cli
