#include "daemon/common/runtime.h"

#include <absl/synchronization/mutex.h>

namespace skep {

void ConfigureProcess() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace skep
