// The queue of broadcasts waiting to be piggybacked on outgoing messages (memberlist's
// TransmitLimitedQueue). Each broadcast is sent a bounded number of times: enough for an
// epidemic to reach every member with high probability, then it is dropped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
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
  struct Item {
    std::string key;
    Broadcast broadcast;
    size_t size;
    int transmits = 0;
    int64_t id;  // insertion number: newer is larger
  };
  struct Before {
    bool operator()(const Item* a, const Item* b) const {
      return a->transmits != b->transmits ? a->transmits < b->transmits : a->id > b->id;
    }
  };
  // Invariant: queue_ orders exactly the items owned by by_key_, one per key. Items are
  // reached through stable pointers, so a transmit costs no hash lookup.
  std::unordered_map<std::string, std::unique_ptr<Item>> by_key_;
  std::set<Item*, Before> queue_;
  int64_t next_id_ = 0;
};

}  // namespace skep::gossip
