#include "overlay/gossip/broadcast_queue.h"

#include <cmath>

namespace skep::gossip {
namespace {

// No broadcast is smaller than a tag, an incarnation and two empty strings, or a tag and two
// empty strings for a user broadcast; below this budget nothing more can fit.
constexpr size_t kSmallestBroadcast = 1 + 4 + 4;

}  // namespace

int RetransmitLimit(int retransmit_mult, size_t n) {
  return retransmit_mult * static_cast<int>(std::ceil(std::log10(static_cast<double>(n) + 1.0)));
}

void BroadcastQueue::Push(const std::string& key, Broadcast b) {
  if (auto it = by_key_.find(key); it != by_key_.end()) {
    queue_.erase(it->second);
    by_key_.erase(it);
  }
  Order order{0, -(next_id_++)};
  size_t size = EncodedSize(b);
  queue_.emplace(order, Item{key, std::move(b), size});
  by_key_.emplace(key, order);
}

std::vector<Broadcast> BroadcastQueue::Take(size_t budget_bytes, int limit) {
  std::vector<Broadcast> out;
  std::vector<std::map<Order, Item>::iterator> picked;
  size_t left = budget_bytes;
  for (auto it = queue_.begin(); it != queue_.end() && left >= kSmallestBroadcast; ++it) {
    if (it->second.size > left) continue;
    left -= it->second.size;
    out.push_back(it->second.broadcast);
    picked.push_back(it);
  }
  // Re-inserted with one more transmit, keeping their relative age.
  for (auto it : picked) {
    Order order{it->first.transmits + 1, it->first.neg_id};
    auto node = queue_.extract(it);
    if (order.transmits >= limit) {
      by_key_.erase(node.mapped().key);
      continue;
    }
    by_key_[node.mapped().key] = order;
    node.key() = order;
    queue_.insert(std::move(node));
  }
  return out;
}

}  // namespace skep::gossip
