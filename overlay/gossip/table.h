// Per-network endpoint tables, replicated by gossip (in the manner of libnetwork's NetworkDB).
//
// Every entry (network, key) carries the Lamport time of the write that produced it and the
// name of the node that owns it. Replicas merge by keeping the entry with the greatest
// (lamport, owner, deleted): a total order, so every replica that has seen the same set of
// writes holds the same table whatever the order they arrived in. Deletes are tombstones, kept
// for `reap_interval_ms` so that a late copy of the deleted entry cannot resurrect it, then
// reaped.
//
// A node holds a network's table only while it participates in the network (NetworkDB: only
// while it has tasks there). Participation is itself gossiped as Lamport-ordered network
// events, so every node knows which nodes are in each network.
//
// Limitation: a restarted node starts its clock at 0; it must merge the network's state (a
// push-pull) before writing, or its writes may lose against its own older entries.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace skep::gossip {

struct TableEntry {
  std::string network_id;
  std::string key;
  std::string value;
  std::string owner;
  uint64_t lamport = 0;
  bool deleted = false;    // a tombstone
  int64_t reap_at_ms = 0;  // local: when a tombstone is reaped; not sent on the wire
  bool operator==(const TableEntry&) const = default;
};

// A node joining (leaving = false) or leaving a network.
struct NetworkEvent {
  std::string network_id;
  std::string node;
  uint64_t lamport = 0;
  bool leaving = false;
  bool operator==(const NetworkEvent&) const = default;
};

using TableMessage = std::variant<TableEntry, NetworkEvent>;

std::string EncodeTableMessages(const std::vector<TableMessage>& messages);
// Rejects malformed input, as Decode in message.h does.
std::optional<std::vector<TableMessage>> DecodeTableMessages(std::string_view bytes);

struct TableConfig {
  std::string node_name;
  int64_t reap_interval_ms = 30 * 60 * 1000;  // NetworkDB's reap interval
};

class EndpointTable {
 public:
  explicit EndpointTable(TableConfig config);

  // Local writes tick the clock and return the entry to broadcast, or nothing when we do not
  // participate in the network (or, for Delete, there is no live entry to delete).
  std::optional<TableEntry> Put(const std::string& network, const std::string& key,
                                std::string value, int64_t now_ms);
  std::optional<TableEntry> Delete(const std::string& network, const std::string& key,
                                   int64_t now_ms);

  // An entry from the network. Returns true when it changed our table (so it is news worth
  // re-gossiping). Entries of networks we do not participate in are ignored.
  bool Merge(const TableEntry& entry, int64_t now_ms);
  bool Merge(const NetworkEvent& event, int64_t now_ms);
  bool Merge(const TableMessage& message, int64_t now_ms);

  // Our node starts or stops participating; the event is to be broadcast. Leaving drops the
  // network's table and also returns tombstones of our own entries there to broadcast.
  NetworkEvent Joined(const std::string& network);
  std::pair<NetworkEvent, std::vector<TableEntry>> Left(const std::string& network, int64_t now_ms);

  // A failed or departed node: its entries become tombstones everywhere, with no gossip
  // needed since every member learns of the failure itself.
  void RemoveNode(const std::string& owner, int64_t now_ms);
  // Drops tombstones whose reap deadline passed; returns how many.
  size_t Reap(int64_t now_ms);

  // Live entry, or nullptr (also for a tombstone).
  const TableEntry* Get(const std::string& network, const std::string& key) const;
  std::vector<TableEntry> Entries(const std::string& network) const;    // live only
  std::vector<TableEntry> FullState(const std::string& network) const;  // with tombstones
  // Everything a push-pull sends: participation events and the tables we hold.
  std::vector<TableMessage> FullState() const;

  bool Participates(const std::string& network) const { return tables_.contains(network); }
  std::vector<std::string> Nodes(const std::string& network) const;
  uint64_t clock() const { return clock_; }

 private:
  void Tombstone(TableEntry& e, int64_t now_ms);

  TableConfig config_;
  uint64_t clock_ = 0;  // Invariant: greater than every Lamport time we have seen
  // network -> key -> entry; present iff we participate in the network.
  std::map<std::string, std::map<std::string, TableEntry>> tables_;
  // network -> node -> latest participation event.
  std::map<std::string, std::map<std::string, NetworkEvent>> participants_;
};

}  // namespace skep::gossip
