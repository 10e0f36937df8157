#include "tests/overlay/gossip_sim.h"

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>

namespace skep::gossip::sim {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

std::string Addr(size_t node) {
  return "n" + std::to_string(node) + ":7946";
}

std::string TableKey(const TableMessage& m) {
  if (const auto* e = std::get_if<TableEntry>(&m)) return "t:" + e->network_id + "/" + e->key;
  const auto& n = std::get<NetworkEvent>(m);
  return "n:" + n.network_id + "/" + n.node;
}

// Push-pull carries the whole table, as NetworkDB's bulk sync does.
class TableDelegate : public StateDelegate {
 public:
  TableDelegate(EndpointTable* table, const int64_t* now) : table_(table), now_(now) {}
  std::string LocalState(bool) override { return EncodeTableMessages(table_->FullState()); }
  void MergeRemoteState(std::string_view state, bool) override {
    if (auto msgs = DecodeTableMessages(state)) {
      for (const TableMessage& m : *msgs)
        table_->Merge(m, *now_);
    }
  }

 private:
  EndpointTable* table_;
  const int64_t* now_;
};

}  // namespace

struct Cluster::Node {
  std::unique_ptr<Memberlist> member;
  std::unique_ptr<EndpointTable> table;
  std::unique_ptr<TableDelegate> delegate;
  uint64_t generation = 0;
  int64_t scheduled_at = kNever;
  std::map<std::string, uint64_t> relayed;  // table broadcast key -> newest Lamport relayed
};

Cluster::Cluster(SimConfig config) : config_(config), rng_(config.seed) {}
Cluster::~Cluster() = default;

size_t Cluster::AddNode() {
  size_t i = nodes_.size();
  nodes_.push_back(std::make_unique<Node>());
  Restart(i, i);
  return i;
}

void Cluster::Restart(size_t node, size_t seed) {
  Node& n = *nodes_[node];
  n.member = std::make_unique<Memberlist>(config_.member, name(node), Addr(node), rng_());
  if (config_.tables) {
    n.table = std::make_unique<EndpointTable>(TableConfig{name(node)});
    n.delegate = std::make_unique<TableDelegate>(n.table.get(), &now_ms_);
    n.member->SetStateDelegate(n.delegate.get());
  }
  ++n.generation;
  n.scheduled_at = kNever;
  if (seed != node) {
    Join(node, seed);
  } else {
    Schedule(node);
  }
}

void Cluster::Join(size_t node, size_t seed) {
  Send(node, member(node).Join(Addr(seed), now_ms_));
  AfterStep(node);
}

void Cluster::Leave(size_t node) {
  Send(node, member(node).Leave(now_ms_));
  AfterStep(node);
}

void Cluster::Crash(size_t node) {
  Node& n = *nodes_[node];
  n.member.reset();
  n.relayed.clear();
  n.delegate.reset();
  n.table.reset();
  ++n.generation;
  n.scheduled_at = kNever;
}

void Cluster::Send(size_t from, std::vector<Message> msgs) {
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  std::uniform_int_distribution<int64_t> latency(config_.min_latency_ms, config_.max_latency_ms);
  for (Message& m : msgs) {
    ++messages_sent_;
    if (isolated_.contains(from)) continue;
    if (config_.loss > 0 && coin(rng_) < config_.loss) continue;
    // Addresses are "n<i>:7946".
    if (m.to.size() < 2 || m.to[0] != 'n') continue;
    size_t to = std::strtoull(m.to.c_str() + 1, nullptr, 10);
    if (to >= nodes_.size()) continue;
    events_.push(Event{now_ms_ + latency(rng_), next_seq_++, to, false, 0, Encode(m)});
  }
}

void Cluster::Schedule(size_t node) {
  Node& n = *nodes_[node];
  if (!n.member) return;
  int64_t at = std::max(now_ms_, n.member->NextTickMs());
  if (at >= n.scheduled_at) return;  // the pending tick comes first and reschedules
  n.scheduled_at = at;
  events_.push(Event{at, next_seq_++, node, true, ++n.generation, {}});
}

void Cluster::AfterStep(size_t node) {
  Node& n = *nodes_[node];
  if (config_.check_invariants) {
    if (auto why = n.member->InvariantViolation()) {
      std::fprintf(stderr, "gossip sim: %s broke an invariant at %lld ms: %s\n", name(node).c_str(),
                   static_cast<long long>(now_ms_), why->c_str());
      std::abort();
    }
  }
  for (MemberEvent& e : n.member->TakeEvents()) {
    if (e.type == MemberEventType::kFail || e.type == MemberEventType::kLeave) {
      size_t subject = std::strtoull(e.member.name.c_str() + 1, nullptr, 10);
      if (e.type == MemberEventType::kFail && subject < nodes_.size() && up(subject)) {
        ++false_detections_;
      }
      if (n.table) n.table->RemoveNode(e.member.name, now_ms_);
    }
    observations_.push_back(Observation{now_ms_, node, std::move(e)});
  }
  for (UserBroadcast& u : n.member->TakeUserBroadcasts()) {
    if (!n.table) continue;
    auto msgs = DecodeTableMessages(u.bytes);
    if (!msgs || msgs->empty()) continue;
    bool news = false;
    for (const TableMessage& m : *msgs)
      news = n.table->Merge(m, now_ms_) || news;
    // Members outside the network relay its news too, remembering the newest Lamport time
    // they relayed per key (Serf's recent-event buffer), so the epidemic reaches the
    // participants however few they are.
    uint64_t lamport = std::visit([](const auto& m) { return m.lamport; }, msgs->front());
    uint64_t& relayed = n.relayed[u.key];
    if (lamport > relayed) {
      relayed = lamport;
      news = true;
    }
    // Gossip on what was news to us, so an epidemic dies out once everyone has it.
    if (news) n.member->QueueUserBroadcast(u.key, std::move(u.bytes));
  }
  Schedule(node);
}

void Cluster::Process(const Event& e) {
  Node& n = *nodes_[e.node];
  if (!n.member) return;
  if (e.tick) {
    if (e.generation != n.generation) return;
    n.scheduled_at = kNever;
    Send(e.node, n.member->Tick(now_ms_));
  } else {
    if (isolated_.contains(e.node)) return;
    auto m = Decode(e.bytes);
    if (!m) {
      std::fprintf(stderr, "gossip sim: a message failed to decode after encoding\n");
      std::abort();
    }
    Send(e.node, n.member->Receive(*m, now_ms_));
  }
  AfterStep(e.node);
}

void Cluster::RunFor(int64_t ms) {
  int64_t end = now_ms_ + ms;
  while (!events_.empty() && events_.top().at_ms <= end) {
    Event e = events_.top();
    events_.pop();
    now_ms_ = e.at_ms;
    Process(e);
  }
  now_ms_ = end;
}

bool Cluster::RunUntil(const std::function<bool()>& done, int64_t max_ms, int64_t check_every_ms) {
  int64_t end = now_ms_ + max_ms;
  while (!done()) {
    if (now_ms_ >= end) return false;
    RunFor(std::min(check_every_ms, end - now_ms_));
  }
  return true;
}

std::optional<MemberState> Cluster::View(size_t observer, size_t subject) const {
  const Member* m = nodes_[observer]->member->Find(name(subject));
  if (m == nullptr) return std::nullopt;
  return m->state;
}

double Cluster::FractionKnowing(size_t subject,
                                const std::function<bool(std::optional<MemberState>)>& pred) const {
  size_t total = 0, knowing = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (i == subject || !up(i)) continue;
    ++total;
    knowing += pred(View(i, subject)) ? 1 : 0;
  }
  return total == 0 ? 1.0 : static_cast<double>(knowing) / static_cast<double>(total);
}

bool Cluster::Converged() const {
  for (size_t a = 0; a < nodes_.size(); ++a) {
    if (!up(a)) continue;
    for (size_t b = 0; b < nodes_.size(); ++b) {
      if (a == b || !up(b)) continue;
      const Member* m = nodes_[a]->member->Find(name(b));
      if (m == nullptr || m->state != MemberState::kAlive ||
          m->incarnation != nodes_[b]->member->incarnation()) {
        return false;
      }
    }
  }
  return true;
}

bool Cluster::up(size_t node) const {
  return nodes_[node]->member != nullptr;
}
Memberlist& Cluster::member(size_t node) {
  return *nodes_[node]->member;
}

EndpointTable& Cluster::table(size_t node) {
  return *nodes_[node]->table;
}

void Cluster::BroadcastTable(size_t node, const TableMessage& m) {
  member(node).QueueUserBroadcast(TableKey(m), EncodeTableMessages({m}));
  Schedule(node);
}

void Cluster::JoinNetwork(size_t node, const std::string& network) {
  BroadcastTable(node, table(node).Joined(network));
}

void Cluster::PutEntry(size_t node, const std::string& network, const std::string& key,
                       const std::string& value) {
  if (auto e = table(node).Put(network, key, value, now_ms_)) BroadcastTable(node, *e);
}

}  // namespace skep::gossip::sim
