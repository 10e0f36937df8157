// The queue of broadcasts waiting to be piggybacked on outgoing messages (memberlist's
// TransmitLimitedQueue). Each broadcast is sent a bounded number of times: enough for an
// epidemic to reach every member with high probability, then it is dropped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "overlay/gossip/message.h"

namespace skep::gossip {

// memberlist's retransmit limit: mult * ceil(log10(n + 1)) for a cluster of n members.
int RetransmitLimit(int retransmit_mult, size_t n);

class BroadcastQueue {
 public:
  // Queues `b` under `key`, dropping any queued broadcast with the same key: a newer message
  // about the same member (or user key) makes the older one useless.
  void Push(const std::string& key, Broadcast b);

  // Picks broadcasts that fit in `budget_bytes` (by EncodedSize), fewest transmits first and
  // newest first among equals, counts one transmit for each and drops those that reached
  // `limit` transmits.
  std::vector<Broadcast> Take(size_t budget_bytes, int limit);

  size_t size() const { return by_key_.size(); }
  bool empty() const { return by_key_.empty(); }

 private:
  struct Order {
    int transmits;
    int64_t neg_id;  // negated insertion number: newer sorts first
    auto operator<=>(const Order&) const = default;
  };
  struct Item {
    std::string key;
    Broadcast broadcast;
    size_t size;
  };
  // Invariant: by_key_ and queue_ hold the same broadcasts, one per key.
  std::map<Order, Item> queue_;
  std::unordered_map<std::string, Order> by_key_;
  int64_t next_id_ = 0;
};

}  // namespace skep::gossip
