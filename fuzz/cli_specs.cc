// The values of `skep service create/update` flags (daemon/cli/specs.h) and Go-style durations
// (ParseDuration, daemon/cli/format.h): every parser gets the whole input. A value they reject
// must throw UsageError; any other exception escaping, a crash, a UBSan report (a size or
// CPU count that overflows, say) or a negative duration is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "daemon/cli/command.h"
#include "daemon/cli/format.h"
#include "daemon/cli/specs.h"

namespace {

template <class F>
void Try(F parse) {
  try {
    parse();
  } catch (const skep::cli::UsageError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace cli = skep::cli;
  const std::string v(reinterpret_cast<const char*>(data), size);
  // Nothing that reads as a duration is negative: durations are timeouts and periods.
  if (const auto d = cli::ParseDuration(v); d && d->count() < 0) std::abort();
  Try([&] { (void)cli::ParsePlacementPref("placement-pref", v); });
  Try([&] { (void)cli::ParseDurationNs("stop-grace-period", v); });
  Try([&] { (void)cli::ParseBytes("limit-memory", v); });
  Try([&] { (void)cli::ParseCpus("limit-cpu", v); });
  Try([&] { (void)cli::ParseMount(v); });
  Try([&] { (void)cli::ParsePort(v); });
  return 0;
}
