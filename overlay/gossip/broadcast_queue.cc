#include "overlay/gossip/broadcast_queue.h"

#include <cmath>

namespace skep::gossip {
namespace {

// No broadcast is smaller than a tag, an incarnation and two empty strings, or a tag and two
// empty strings for a user broadcast; below this budget nothing more can fit.
constexpr size_t kSmallestBroadcast = 1 + 4 + 4;
constexpr int kMaxMisses = 16;

}  // namespace

int RetransmitLimit(int retransmit_mult, size_t n) {
  return retransmit_mult * static_cast<int>(std::ceil(std::log10(static_cast<double>(n) + 1.0)));
}

void BroadcastQueue::Push(const std::string& key, Broadcast b) {
  std::unique_ptr<Item>& slot = by_key_[key];
  if (slot) queue_.erase(slot.get());
  size_t size = EncodedSize(b);
  slot = std::make_unique<Item>(Item{key, std::move(b), size, 0, next_id_++});
  queue_.insert(slot.get());
}

std::vector<Broadcast> BroadcastQueue::Take(size_t budget_bytes, int limit) {
  std::vector<Broadcast> out;
  std::vector<Item*> picked;
  size_t left = budget_bytes;
  int misses = 0;
  for (auto it = queue_.begin(); it != queue_.end() && left >= kSmallestBroadcast; ++it) {
    Item* item = *it;
    if (item->size > left) {
      // Broadcasts are mostly alike in size: after a run that did not fit, nothing will.
      if (++misses >= kMaxMisses) break;
      continue;
    }
    left -= item->size;
    out.push_back(item->broadcast);
    picked.push_back(item);
  }
  for (Item* item : picked) {
    queue_.erase(item);
    if (++item->transmits >= limit) {
      std::string key = item->key;  // the item dies with its map entry
      by_key_.erase(key);
      continue;
    }
    queue_.insert(item);  // same age, one more transmit
  }
  return out;
}

}  // namespace skep::gossip
