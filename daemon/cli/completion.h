// Shell completion made from the command table itself, so that it never falls behind it.
#pragma once

#include <string>
#include <vector>

#include "daemon/cli/command.h"

namespace skep::cli {

// A bash completion script for skep: command groups, commands and each command's flags.
std::string BashCompletion(const std::vector<Command>& commands);

}  // namespace skep::cli
