#include "tests/raft/checker.h"

#include <cstdint>

namespace skep::raft::testing {
namespace {

uint64_t Mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
  h ^= h >> 31;
  h *= 0xBF58476D1CE4E5B9ULL;
  return h ^ (h >> 29);
}

uint64_t HashBytes(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : s)
    h = (h ^ c) * 1099511628211ULL;
  return h;
}

std::string N(uint64_t v) {
  return std::to_string(v);
}

}  // namespace

void SafetyChecker::Fail(const std::string& what) {
  if (violations_.size() < 20) violations_.push_back(what);
}

void SafetyChecker::AddNode(NodeId id, const Storage& storage) {
  NodeLogs& n = nodes_[id];
  n = NodeLogs{};
  auto snap = storage.Snapshot();
  std::vector<raftpb::Entry> entries;
  if (storage.LastIndex() >= storage.FirstIndex()) {
    storage.Entries(storage.FirstIndex(), storage.LastIndex() + 1, UINT64_MAX, &entries);
  }
  if (snap->metadata().index() == 0) {
    n.view[0] = {0, 0};
    Update(id, n.view, nullptr, entries, true);
  } else {
    Update(id, n.view, snap.get(), entries, true);
  }
  n.durable = n.view;
  const Index commit = storage.HardState().commit();
  for (Index i = n.view.begin()->first; i <= commit; ++i) {
    auto it = n.view.find(i);
    if (it != n.view.end()) committed_.emplace(i, Committed{it->second.second, 0});
  }
  n.commit_recorded = commit;
}

void SafetyChecker::Update(NodeId id, DigestLog& log, const raftpb::Snapshot* snap,
                           const std::vector<raftpb::Entry>& entries, bool check) {
  if (snap != nullptr) {
    const auto& meta = snap->metadata();
    auto it = entries_seen_.find({meta.index(), meta.term()});
    if (it == entries_seen_.end()) {
      if (check) {
        Fail("node " + N(id) + " installs a snapshot at " + N(meta.index()) + "/" + N(meta.term()) +
             " that no log ever held");
      }
      return;
    }
    log.clear();
    log[meta.index()] = {meta.term(), it->second};
  }
  if (entries.empty()) return;
  log.erase(log.lower_bound(entries.front().index()), log.end());
  for (const auto& e : entries) {
    auto prev = log.find(e.index() - 1);
    if (prev == log.end()) {
      if (check) Fail("node " + N(id) + " appends entry " + N(e.index()) + " after a gap");
      return;
    }
    const Digest d = Mix(Mix(Mix(prev->second.second, e.index()), e.term()), HashBytes(e.data()));
    log[e.index()] = {e.term(), d};
    auto [it, inserted] = entries_seen_.emplace(std::make_pair(e.index(), e.term()), d);
    if (!inserted && it->second != d && check) {
      Fail("log matching: node " + N(id) + " holds a different log up to " + N(e.index()) + "/" +
           N(e.term()) + " than another node");
    }
  }
}

void SafetyChecker::OnReady(NodeId id, const Ready& rd, const NodeStatus& st) {
  NodeLogs& n = nodes_[id];
  Update(id, n.view, rd.snapshot.get(), rd.entries, true);
  if (rd.soft_state && rd.soft_state->role == Role::kLeader) {
    auto [it, inserted] = leaders_.emplace(st.term, id);
    if (!inserted && it->second != id) {
      Fail("election safety: nodes " + N(it->second) + " and " + N(id) + " both lead term " +
           N(st.term));
    }
    // Leader completeness (§5.4): the newest entry committed in an earlier term is in its log;
    // the chained digest covers everything before it.
    for (auto c = committed_.rbegin(); c != committed_.rend(); ++c) {
      if (c->second.term >= st.term) continue;
      // Below its log the node holds the entry in its snapshot, checked when committed.
      if (n.view.empty() || c->first < n.view.begin()->first) break;
      auto mine = n.view.find(c->first);
      if (mine == n.view.end() || mine->second.second != c->second.digest) {
        Fail("leader completeness: node " + N(id) + " leads term " + N(st.term) +
             " without committed entry " + N(c->first));
      }
      break;
    }
  }
  if (rd.hard_state) {
    const Index commit = rd.hard_state->commit();
    const Index from = std::max(n.commit_recorded + 1, n.view.empty() ? 0 : n.view.begin()->first);
    for (Index i = from; i <= commit; ++i) {
      auto mine = n.view.find(i);
      if (mine == n.view.end()) {
        Fail("node " + N(id) + " commits " + N(i) + " which it does not hold");
        break;
      }
      auto [it, inserted] = committed_.emplace(i, Committed{mine->second.second, st.term});
      if (!inserted) {
        if (it->second.digest != mine->second.second) {
          Fail("state machine safety: node " + N(id) + " commits a different entry at " + N(i));
        }
        it->second.term = std::min(it->second.term, st.term);
      }
    }
    n.commit_recorded = std::max(n.commit_recorded, commit);
  }
}

void SafetyChecker::OnPersisted(NodeId id, const Ready& rd) {
  Update(id, nodes_[id].durable, rd.snapshot.get(), rd.entries, false);
}

void SafetyChecker::OnApply(NodeId id, const raftpb::Entry& e) {
  NodeLogs& n = nodes_[id];
  auto mine = n.view.find(e.index());
  auto committed = committed_.find(e.index());
  if (mine == n.view.end() || committed == committed_.end() ||
      committed->second.digest != mine->second.second) {
    Fail("state machine safety: node " + N(id) + " applies entry " + N(e.index()) +
         " that differs from the committed one");
  }
}

void SafetyChecker::OnCrash(NodeId id) {
  NodeLogs& n = nodes_[id];
  n.view = n.durable;
}

void SafetyChecker::OnCompact(NodeId id, Index first_index) {
  NodeLogs& n = nodes_[id];
  for (DigestLog* log : {&n.view, &n.durable}) {
    log->erase(log->begin(), log->lower_bound(first_index - 1));
  }
}

}  // namespace skep::raft::testing
