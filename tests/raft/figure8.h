// The scenario of the Raft paper's figure 8, on a five-node test cluster: an entry of an
// earlier term reaches a majority, then is overwritten by a node that was elected without it.
// With a correct core the entry is never committed; a core that commits it by counting
// replicas is caught by the safety checker.
#pragma once

#include <string>
#include <vector>

#include "raft/types.h"

namespace skep::raft::testing {

struct Figure8Outcome {
  Index commit_before_x = 0;  // the leader's commit index before X was proposed
  Index commit_in_c = 0;      // its commit index once X sat on a majority, stage (c)
  bool replicated_to_majority = false;
  bool x_overwritten = false;           // stage (d): S5's entry replaced X on every node
  bool x_applied = false;               // some node handed X to its state machine
  std::vector<std::string> violations;  // what the safety checker found
};

Figure8Outcome RunFigure8();

}  // namespace skep::raft::testing
