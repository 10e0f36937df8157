// A linearizability checker for key-value histories (Wing & Gong's search with Lowe's
// memoization). Keys are independent, so each key's history is checked on its own.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "tests/raft/sim/kv.h"

namespace skep::raft::sim {

inline constexpr uint64_t kNeverReturned = std::numeric_limits<uint64_t>::max();

// One client operation: from its invocation to its response, on a logical clock that orders
// every invocation and response of the run.
struct Operation {
  uint64_t client = 0;
  uint64_t seq = 0;
  OpKind kind = OpKind::kPut;
  std::string key;
  std::string value;     // put/cas: the value written
  std::string expected;  // cas: the value compared against
  uint64_t invoked = 0;
  uint64_t returned = kNeverReturned;  // no response: it may or may not have taken effect
  std::string result;                  // get: the value read
  bool ok = true;                      // cas: whether it swapped
};

struct CheckResult {
  bool linearizable = true;
  std::string explanation;  // the key whose history has no linearization, and its operations
  uint64_t states_explored = 0;
};

CheckResult CheckLinearizable(const std::vector<Operation>& history,
                              uint64_t max_states = 50'000'000);

}  // namespace skep::raft::sim
