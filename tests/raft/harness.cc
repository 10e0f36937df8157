#include "tests/raft/harness.h"

#include <stdexcept>

namespace skep::raft::testing {

Cluster::Cluster(size_t n, std::function<void(Config&)> tweak) : tweak_(std::move(tweak)) {
  std::vector<NodeId> voters;
  for (NodeId id = 1; id <= n; ++id)
    voters.push_back(id);
  founders_ = MakeConfState(voters);
  for (NodeId id = 1; id <= n; ++id) {
    TestNode t;
    t.config.id = id;
    t.config.seed = id;
    if (tweak_) tweak_(t.config);
    t.storage = std::make_unique<MemoryStorage>(founders_);
    t.node = std::make_unique<Node>(t.config, t.storage.get());
    checker_.AddNode(id, *t.storage);
    nodes_.emplace(id, std::move(t));
  }
}

void Cluster::AddEmptyNode(NodeId id) {
  TestNode t;
  t.config.id = id;
  t.config.seed = id;
  if (tweak_) tweak_(t.config);
  t.storage = std::make_unique<MemoryStorage>();
  t.node = std::make_unique<Node>(t.config, t.storage.get());
  checker_.AddNode(id, *t.storage);
  nodes_[id] = std::move(t);
}

void Cluster::SetLog(NodeId id, Term term, const std::vector<Term>& entry_terms) {
  TestNode& t = nodes_.at(id);
  t.storage = std::make_unique<MemoryStorage>(founders_);
  std::vector<raftpb::Entry> entries;
  for (size_t k = 0; k < entry_terms.size(); ++k) {
    raftpb::Entry e;
    e.set_index(k + 2);  // after the bootstrap entry
    e.set_term(entry_terms[k]);
    e.set_data("e" + std::to_string(k + 2) + "t" + std::to_string(entry_terms[k]));
    entries.push_back(e);
  }
  raftpb::HardState hs;
  hs.set_term(term);
  hs.set_commit(1);
  t.storage->Save(&hs, entries, nullptr);
  t.node = std::make_unique<Node>(t.config, t.storage.get());
  checker_.AddNode(id, *t.storage);
  t.applied.clear();
}

void Cluster::Crash(NodeId id) {
  nodes_.at(id).up = false;
}

void Cluster::Restart(NodeId id) {
  TestNode& t = nodes_.at(id);
  t.node = std::make_unique<Node>(t.config, t.storage.get());
  checker_.OnCrash(id);
  t.applied.clear();
  t.up = true;
}

void Cluster::Cut(NodeId a, NodeId b) {
  cut_.insert({a, b});
  cut_.insert({b, a});
}

void Cluster::Isolate(NodeId id) {
  for (auto& [other, _] : nodes_) {
    if (other != id) Cut(id, other);
  }
}

void Cluster::Heal() {
  cut_.clear();
  drop_ = nullptr;
}

void Cluster::Deliver(raftpb::Message m) {
  sent.push_back(m);
  if (cut_.count({m.from(), m.to()}) || (drop_ && drop_(m))) return;
  queue_.push_back(std::move(m));
}

bool Cluster::ProcessReadies() {
  bool moved = false;
  for (auto& [id, t] : nodes_) {
    if (!t.up) continue;
    while (t.node->HasReady()) {
      moved = true;
      Ready rd = t.node->GetReady();
      checker_.OnReady(id, rd, t.node->GetStatus());
      for (auto& m : rd.messages)
        Deliver(m);
      t.storage->Save(rd.hard_state ? &*rd.hard_state : nullptr, rd.entries, rd.snapshot.get());
      checker_.OnPersisted(id, rd);
      for (auto& m : rd.persisted_messages)
        Deliver(m);
      if (rd.snapshot) t.applied.clear();
      for (auto& e : rd.committed_entries) {
        checker_.OnApply(id, e);
        t.applied.push_back(e);
      }
      for (auto& r : rd.read_states)
        t.reads.push_back(r);
      t.node->Advance(rd);
      auto bad = t.node->CheckInvariants();
      if (!bad.empty()) throw std::logic_error(bad.front());
      if (throw_on_violation_ && !checker_.violations().empty()) {
        throw std::logic_error(checker_.violations().front());
      }
    }
  }
  return moved;
}

void Cluster::Stabilize() {
  for (int round = 0; round < 10000; ++round) {
    bool moved = ProcessReadies();
    if (queue_.empty() && !moved) return;
    auto batch = std::move(queue_);
    queue_.clear();
    for (auto& m : batch) {
      auto it = nodes_.find(m.to());
      if (it == nodes_.end() || !it->second.up) continue;
      Status st = it->second.node->Step(m);
      if (!st.ok()) throw std::logic_error(st.message());
    }
  }
  std::string last;
  for (size_t k = sent.size() >= 6 ? sent.size() - 6 : 0; k < sent.size(); ++k) {
    const auto& m = sent[k];
    last += " [type " + std::to_string(m.type()) + " " + std::to_string(m.from()) + "->" +
            std::to_string(m.to()) + " index " + std::to_string(m.index()) + " entries " +
            std::to_string(m.entries_size()) + (m.reject() ? " reject" : "") + "]";
  }
  throw std::logic_error("cluster did not stabilize; last messages:" + last);
}

void Cluster::Tick(NodeId id, int n) {
  for (int i = 0; i < n; ++i) {
    nodes_.at(id).node->Tick();
    Stabilize();
  }
}

void Cluster::TickAll(int n) {
  for (int i = 0; i < n; ++i) {
    for (auto& [id, t] : nodes_) {
      if (t.up) t.node->Tick();
    }
    Stabilize();
  }
}

bool Cluster::Elect(NodeId id) {
  Stabilize();
  const auto s = node(id).GetStatus();
  if (s.role == Role::kLeader) return true;
  if (s.role == Role::kFollower) {
    // The way a leadership transfer starts an election: at once, and past the voters' leader
    // lease, so tests need not wait for it to expire.
    raftpb::Message m;
    m.set_type(raftpb::MSG_TIMEOUT_NOW);
    m.set_from(id == 1 ? 2 : 1);
    m.set_to(id);
    m.set_term(std::max<Term>(s.term, 1));
    (void)node(id).Step(m);
  } else {
    (void)node(id).Campaign();
  }
  Stabilize();
  return node(id).GetStatus().role == Role::kLeader;
}

NodeId Cluster::Leader() const {
  NodeId lead = kNoNode;
  Term best = 0;
  for (const auto& [id, t] : nodes_) {
    if (!t.up) continue;
    auto s = t.node->GetStatus();
    if (s.role == Role::kLeader && s.term >= best) {
      best = s.term;
      lead = id;
    }
  }
  return lead;
}

Index Cluster::Propose(NodeId id, const std::string& data) {
  Index idx = 0;
  Status st = node(id).Propose(data, &idx);
  if (!st.ok()) throw std::logic_error("propose failed: " + st.message());
  Stabilize();
  return idx;
}

std::vector<Term> Terms(const MemoryStorage& s) {
  std::vector<Term> out;
  for (Index i = s.FirstIndex(); i <= s.LastIndex(); ++i)
    out.push_back(*s.TermAt(i));
  return out;
}

std::string EntryData(const raftpb::Entry& e) {
  return e.data();
}

}  // namespace skep::raft::testing
