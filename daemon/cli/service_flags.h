// The flags `skep service create` and `skep service update` share, as Docker's CLI has them,
// and how they change a service's spec.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "daemon/cli/command.h"

namespace skep::cli {

std::vector<Flag> CommonServiceFlags();

// Applies what `inv` gives of the common flags to `spec`; throws UsageError naming a flag whose
// value is wrong (before anything is sent).
void ApplyCommonFlags(const Invocation& inv, api::ServiceSpec* spec);

// A non-negative count given to `--flag`; throws UsageError otherwise.
uint64_t ParseCount(const std::string& flag, const std::string& value);

}  // namespace skep::cli
