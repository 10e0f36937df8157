// Process-wide settings every skep program applies first.
#pragma once

namespace skep {

// Turns off abseil's mutex deadlock detection, which Debian's abseil leaves on: gRPC takes
// absl mutexes on every call, and the cycle bookkeeping cost several percent of skepd's CPU.
void ConfigureProcess();

}  // namespace skep
