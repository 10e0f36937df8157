#include "overlay/gossip/table.h"

#include <tuple>

#include "overlay/gossip/wire.h"

namespace skep::gossip {
namespace {

constexpr uint8_t kTableFormat = 1;

// The merge order: a tombstone beats a live entry written at the same time by the same owner
// (which RemoveNode produces), so the order is total.
auto Rank(const TableEntry& e) {
  return std::tie(e.lamport, e.owner, e.deleted);
}
auto Rank(const NetworkEvent& e) {
  return std::tie(e.lamport, e.leaving);
}

}  // namespace

std::string EncodeTableMessages(const std::vector<TableMessage>& messages) {
  wire::Writer w;
  w.U8(kTableFormat);
  w.U32(static_cast<uint32_t>(messages.size()));
  for (const TableMessage& m : messages) {
    w.U8(static_cast<uint8_t>(m.index()));
    if (const auto* e = std::get_if<TableEntry>(&m)) {
      w.Str(e->network_id);
      w.Str(e->key);
      w.Str(e->value);
      w.Str(e->owner);
      w.U64(e->lamport);
      w.Bool(e->deleted);
    } else {
      const auto& n = std::get<NetworkEvent>(m);
      w.Str(n.network_id);
      w.Str(n.node);
      w.U64(n.lamport);
      w.Bool(n.leaving);
    }
  }
  return w.Take();
}

std::optional<std::vector<TableMessage>> DecodeTableMessages(std::string_view bytes) {
  wire::Reader r(bytes);
  if (r.U8() != kTableFormat) return std::nullopt;
  uint32_t n = r.Count(1 + 4 + 4 + 8 + 1);  // the smallest is a network event
  std::vector<TableMessage> out;
  out.reserve(n);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    uint8_t tag = r.U8();
    if (tag == 0) {
      TableEntry e;
      e.network_id = r.Str();
      e.key = r.Str();
      e.value = r.Str();
      e.owner = r.Str();
      e.lamport = r.U64();
      e.deleted = r.Bool();
      out.emplace_back(std::move(e));
    } else if (tag == 1) {
      NetworkEvent e;
      e.network_id = r.Str();
      e.node = r.Str();
      e.lamport = r.U64();
      e.leaving = r.Bool();
      out.emplace_back(std::move(e));
    } else {
      r.Fail();
    }
  }
  if (!r.ok() || !r.AtEnd()) return std::nullopt;
  return out;
}

EndpointTable::EndpointTable(TableConfig config) : config_(std::move(config)) {}

void EndpointTable::Tombstone(TableEntry& e, int64_t now_ms) {
  e.deleted = true;
  e.value.clear();
  e.reap_at_ms = now_ms + config_.reap_interval_ms;
}

std::optional<TableEntry> EndpointTable::Put(const std::string& network, const std::string& key,
                                             std::string value, int64_t now_ms) {
  (void)now_ms;
  auto table = tables_.find(network);
  if (table == tables_.end()) return std::nullopt;
  TableEntry e{network, key, std::move(value), config_.node_name, ++clock_, false, 0};
  table->second[key] = e;
  return e;
}

std::optional<TableEntry> EndpointTable::Delete(const std::string& network, const std::string& key,
                                                int64_t now_ms) {
  auto table = tables_.find(network);
  if (table == tables_.end()) return std::nullopt;
  auto it = table->second.find(key);
  if (it == table->second.end() || it->second.deleted) return std::nullopt;
  TableEntry& e = it->second;
  e.owner = config_.node_name;
  e.lamport = ++clock_;
  Tombstone(e, now_ms);
  return e;
}

bool EndpointTable::Merge(const TableEntry& entry, int64_t now_ms) {
  clock_ = std::max(clock_, entry.lamport) + 1;
  auto table = tables_.find(entry.network_id);
  if (table == tables_.end()) return false;
  auto it = table->second.find(entry.key);
  if (it != table->second.end() && Rank(entry) <= Rank(it->second)) return false;
  TableEntry e = entry;
  if (e.deleted) {
    Tombstone(e, now_ms);
  } else {
    e.reap_at_ms = 0;
  }
  table->second[entry.key] = std::move(e);
  return true;
}

bool EndpointTable::Merge(const NetworkEvent& event, int64_t now_ms) {
  clock_ = std::max(clock_, event.lamport) + 1;
  auto& nodes = participants_[event.network_id];
  auto it = nodes.find(event.node);
  if (it != nodes.end() && Rank(event) <= Rank(it->second)) return false;
  nodes[event.node] = event;
  if (event.leaving) {
    // Its entries in this network go with it, as with a failed node.
    if (auto table = tables_.find(event.network_id); table != tables_.end()) {
      for (auto& [key, e] : table->second) {
        if (e.owner == event.node && !e.deleted) Tombstone(e, now_ms);
      }
    }
  }
  return true;
}

bool EndpointTable::Merge(const TableMessage& message, int64_t now_ms) {
  return std::visit([&](const auto& m) { return Merge(m, now_ms); }, message);
}

NetworkEvent EndpointTable::Joined(const std::string& network) {
  tables_[network];
  NetworkEvent e{network, config_.node_name, ++clock_, false};
  participants_[network][config_.node_name] = e;
  return e;
}

std::pair<NetworkEvent, std::vector<TableEntry>> EndpointTable::Left(const std::string& network,
                                                                     int64_t now_ms) {
  std::vector<TableEntry> tombstones;
  if (auto table = tables_.find(network); table != tables_.end()) {
    for (auto& [key, e] : table->second) {
      if (e.owner != config_.node_name || e.deleted) continue;
      e.lamport = ++clock_;
      Tombstone(e, now_ms);
      tombstones.push_back(e);
    }
    tables_.erase(table);
  }
  NetworkEvent e{network, config_.node_name, ++clock_, true};
  participants_[network][config_.node_name] = e;
  return {e, std::move(tombstones)};
}

void EndpointTable::RemoveNode(const std::string& owner, int64_t now_ms) {
  for (auto& [network, table] : tables_) {
    for (auto& [key, e] : table) {
      if (e.owner == owner && !e.deleted) Tombstone(e, now_ms);
    }
  }
  for (auto& [network, nodes] : participants_)
    nodes.erase(owner);
}

size_t EndpointTable::Reap(int64_t now_ms) {
  size_t reaped = 0;
  for (auto& [network, table] : tables_) {
    reaped += std::erase_if(
        table, [&](const auto& kv) { return kv.second.deleted && now_ms >= kv.second.reap_at_ms; });
  }
  return reaped;
}

const TableEntry* EndpointTable::Get(const std::string& network, const std::string& key) const {
  auto table = tables_.find(network);
  if (table == tables_.end()) return nullptr;
  auto it = table->second.find(key);
  if (it == table->second.end() || it->second.deleted) return nullptr;
  return &it->second;
}

std::vector<TableEntry> EndpointTable::Entries(const std::string& network) const {
  std::vector<TableEntry> out;
  for (const TableEntry& e : FullState(network)) {
    if (!e.deleted) out.push_back(e);
  }
  return out;
}

std::vector<TableEntry> EndpointTable::FullState(const std::string& network) const {
  std::vector<TableEntry> out;
  if (auto table = tables_.find(network); table != tables_.end()) {
    for (const auto& [key, e] : table->second)
      out.push_back(e);
  }
  return out;
}

std::vector<TableMessage> EndpointTable::FullState() const {
  std::vector<TableMessage> out;
  for (const auto& [network, nodes] : participants_) {
    for (const auto& [node, e] : nodes)
      out.emplace_back(e);
  }
  for (const auto& [network, table] : tables_) {
    for (const auto& [key, e] : table)
      out.emplace_back(e);
  }
  return out;
}

std::vector<std::string> EndpointTable::Nodes(const std::string& network) const {
  std::vector<std::string> out;
  if (auto it = participants_.find(network); it != participants_.end()) {
    for (const auto& [node, e] : it->second) {
      if (!e.leaving) out.push_back(node);
    }
  }
  return out;
}

}  // namespace skep::gossip
