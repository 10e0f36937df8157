#include "overlay/gossip/awareness.h"

#include <algorithm>

namespace skep::gossip {

Awareness::Awareness(int max_multiplier) : max_(std::max(1, max_multiplier)) {}

void Awareness::ApplyDelta(int delta) {
  score_ = std::clamp(score_ + delta, 0, max_ - 1);
}

}  // namespace skep::gossip
