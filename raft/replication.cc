// Log replication (§3.5), commitment (§3.6), snapshots (§5), membership (§4) and leadership
// transfer (§3.10).
#include <algorithm>

#include "raft/raft.h"

namespace skep::raft {

// ---------------------------------------------------------------------------------------------
// Proposals

Status Raft::Propose(std::string data, Index* index) {
  auto* l = leader();
  if (l == nullptr) return {ErrorCode::kNotLeader, "not the leader"};
  if (l->transferee != kNoNode) {
    return {ErrorCode::kTransferInProgress,
            "leadership is moving to node " + std::to_string(l->transferee)};
  }
  raftpb::Entry e;
  e.set_type(raftpb::ENTRY_NORMAL);
  e.set_data(std::move(data));
  const Index idx = AppendEntries({std::move(e)});
  if (index != nullptr) *index = idx;
  return Status::Ok();
}

Status Raft::ProposeConfChange(raftpb::ConfChangeType type, NodeId node, std::string context,
                               Index* index) {
  auto* l = leader();
  if (l == nullptr) return {ErrorCode::kNotLeader, "not the leader"};
  if (l->transferee != kNoNode) {
    return {ErrorCode::kTransferInProgress,
            "leadership is moving to node " + std::to_string(l->transferee)};
  }
  if (conf_.ActiveIndex() > log_.committed()) {
    return {ErrorCode::kConfChangePending, "the configuration change at index " +
                                               std::to_string(conf_.ActiveIndex()) +
                                               " is not committed yet"};
  }
  if (!CommittedInCurrentTerm()) {
    return {ErrorCode::kConfChangePending,
            "the new leader has not committed an entry of its term yet"};
  }
  raftpb::ConfChange cc;
  if (Status st = ApplyConfChange(conf_.Active(), type, node, cc.mutable_result()); !st.ok()) {
    return st;
  }
  if (type == raftpb::CONF_PROMOTE) {
    const Progress& pr = l->progress.at(node);
    if (pr.match < log_.committed()) {
      return {ErrorCode::kNotCaughtUp, "learner " + std::to_string(node) + " holds the log up to " +
                                           std::to_string(pr.match) + " of " +
                                           std::to_string(log_.committed()) + " committed"};
    }
  }
  cc.set_type(type);
  cc.set_node_id(node);
  cc.set_context(std::move(context));
  raftpb::Entry e;
  e.set_type(raftpb::ENTRY_CONF_CHANGE);
  e.set_data(cc.SerializeAsString());
  const Index idx = AppendEntries({std::move(e)});
  if (index != nullptr) *index = idx;
  return Status::Ok();
}

Index Raft::AppendEntries(std::vector<raftpb::Entry> entries) {
  Index next = log_.LastIndex() + 1;
  for (auto& e : entries) {
    e.set_term(term_);
    e.set_index(next++);
  }
  TrackConfEntries(entries);
  log_.Append(std::move(entries));
  auto* l = leader();
  SyncProgress(*l);
  l->broadcast_due = true;
  // Our own copy counts once persisted (Advance); a quorum without us may already be enough
  // when the change removed a voter.
  MaybeCommit();
  return next - 1;
}

void Raft::TrackConfEntries(const std::vector<raftpb::Entry>& entries) {
  for (const auto& e : entries) {
    if (e.type() != raftpb::ENTRY_CONF_CHANGE) continue;
    raftpb::ConfChange cc;
    if (!cc.ParseFromString(e.data())) {
      throw StorageError("raft: configuration entry " + std::to_string(e.index()) +
                         " does not parse");
    }
    conf_.Append(e.index(), cc.result());
  }
}

// Makes the leader's progress map match the active configuration.
void Raft::SyncProgress(LeaderState& l) {
  const auto members = Members(conf_.Active());
  for (auto it = l.progress.begin(); it != l.progress.end();) {
    if (std::find(members.begin(), members.end(), it->first) == members.end()) {
      if (it->first == l.transferee) l.transferee = kNoNode;
      it = l.progress.erase(it);
    } else {
      ++it;
    }
  }
  for (NodeId id : members) {
    if (l.progress.count(id) == 0) {
      l.progress.emplace(id, Progress(log_.LastIndex() + 1, cfg_.max_inflight_msgs));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Leader: sending

bool Raft::SendAppend(NodeId to, Progress& pr, bool send_if_empty) {
  if (pr.IsPaused()) return false;
  const Index prev = pr.next - 1;
  const std::optional<Term> prev_term = log_.TermAt(prev);
  std::vector<raftpb::Entry> entries;
  if (!prev_term || !log_.Entries(pr.next, log_.LastIndex() + 1, cfg_.max_size_per_msg, &entries)) {
    // What the follower needs next was compacted away.
    return SendSnapshot(to, pr);
  }
  if (entries.empty() && !send_if_empty) return false;
  raftpb::Message m;
  m.set_type(raftpb::MSG_APPEND);
  m.set_to(to);
  m.set_index(prev);
  m.set_log_term(*prev_term);
  m.set_commit(log_.committed());
  const size_t count = entries.size();
  const Index last = count ? entries.back().index() : prev;
  for (auto& e : entries)
    *m.add_entries() = std::move(e);
  Send(std::move(m));
  pr.OnEntriesSent(count, last);
  return true;
}

bool Raft::SendSnapshot(NodeId to, Progress& pr) {
  // A follower we have not heard from lately is probably down; a snapshot would be wasted.
  if (!pr.recent_active) return false;
  auto snap = storage_->Snapshot();
  if (!snap || snap->metadata().index() == 0) {
    throw std::logic_error("raft: log entries are missing but there is no snapshot to send");
  }
  pr.BecomeSnapshot(snap->metadata().index());
  pr.transfer = std::make_unique<SnapshotTransfer>();
  pr.transfer->snapshot = std::move(snap);
  SendSnapshotChunks(to, pr);
  return true;
}

void Raft::SendSnapshotChunks(NodeId to, Progress& pr) {
  SnapshotTransfer& t = *pr.transfer;
  const std::string& data = t.snapshot->data();
  const uint64_t size = data.size();
  const uint64_t window = cfg_.snapshot_chunk_size * cfg_.snapshot_chunks_in_flight;
  // `sent == size` with size > 0 means everything is out; an empty snapshot is one chunk.
  bool first = t.sent == t.acked;
  while ((t.sent < size || (size == 0 && first)) && t.sent - t.acked < window) {
    const uint64_t len = std::min<uint64_t>(cfg_.snapshot_chunk_size, size - t.sent);
    raftpb::Message m;
    m.set_type(raftpb::MSG_SNAPSHOT);
    m.set_to(to);
    m.set_index(t.snapshot->metadata().index());
    *m.mutable_snapshot() = t.snapshot->metadata();
    m.set_snapshot_offset(t.sent);
    m.set_snapshot_size(size);
    m.set_snapshot_chunk(data.substr(t.sent, len));
    Send(std::move(m));
    t.sent += len;
    first = false;
  }
}

void Raft::BroadcastAppend() {
  auto* l = leader();
  l->broadcast_due = false;
  for (auto& [id, pr] : l->progress) {
    if (id != cfg_.id) SendAppend(id, pr, true);
  }
}

void Raft::BroadcastHeartbeat() {
  auto* l = leader();
  l->read_heartbeat_due = false;
  for (auto& [id, pr] : l->progress) {
    if (id == cfg_.id) continue;
    raftpb::Message m;
    m.set_type(raftpb::MSG_HEARTBEAT);
    m.set_to(id);
    // A follower may not hold everything we committed; it may commit only what it matches.
    m.set_commit(std::min(pr.match, log_.committed()));
    m.set_read_seq(l->read_seq);
    Send(std::move(m));
  }
}

void Raft::SendTimeoutNow(NodeId to) {
  raftpb::Message m;
  m.set_type(raftpb::MSG_TIMEOUT_NOW);
  m.set_to(to);
  Send(std::move(m));
}

// ---------------------------------------------------------------------------------------------
// Leader: commitment

bool Raft::MaybeCommit() {
  auto* l = leader();
  std::vector<Index> acked;
  for (NodeId id : conf_.Active().voters()) {
    auto it = l->progress.find(id);
    acked.push_back(it == l->progress.end() ? 0 : it->second.match);
  }
  const Index index = MajorityIndex(std::move(acked));
  if (index <= log_.committed()) return false;
#ifndef SKEP_RAFT_BUG_COMMIT_OLD_TERM
  // Only entries of the current term are committed by counting replicas; earlier ones are
  // committed indirectly (§3.6.2, figure 3.7).
  if (log_.TermAt(index) != term_) return false;
#endif
  log_.CommitTo(index);
  OnCommitted();
  return true;
}

void Raft::OnCommitted() {
  conf_.Compact(log_.committed());
  auto* l = leader();
  if (l == nullptr) return;
  l->broadcast_due = true;
  if (!l->reads_before_commit.empty() && CommittedInCurrentTerm()) {
    auto waiting = std::move(l->reads_before_commit);
    l->reads_before_commit.clear();
    for (auto& r : waiting)
      HandleReadRequest(*l, r.from, std::move(r.context));
  }
  if (!IsVoter(conf_.Active(), cfg_.id) && conf_.ActiveIndex() <= log_.committed()) {
    // Our removal is committed: tell the others, then step down (§4.2.2).
    BroadcastAppend();
    BecomeFollower(term_, kNoNode);
  }
}

// ---------------------------------------------------------------------------------------------
// Leader: answers

void Raft::HandleAppendResponse(LeaderState& l, Progress& pr, const raftpb::Message& m) {
  pr.recent_active = true;
  if (m.reject()) {
    // Skip back a term at a time: the follower told us the last index at or below the rejected
    // one whose term is <= the one we sent, and its term there (§5.3, with etcd's refinement).
    Index hint = m.reject_hint();
    if (m.log_term() > 0) hint = log_.FindConflictByTerm(hint, m.log_term());
    if (pr.MaybeDecrTo(m.index(), hint)) {
      if (pr.state == Progress::State::kReplicate) pr.BecomeProbe();
      SendAppend(m.from(), pr, true);
    }
    return;
  }
  const bool was_paused = pr.IsPaused();
  // An ack of exactly what we already knew still proves the logs match: a probing follower
  // moves on to replication rather than waiting for the next heartbeat.
  const bool updated = pr.MaybeUpdate(m.index());
  if (!updated && !(pr.state == Progress::State::kProbe && m.index() == pr.match)) return;
  switch (pr.state) {
    case Progress::State::kProbe:
      pr.BecomeReplicate();
      break;
    case Progress::State::kSnapshot:
      if (pr.match >= pr.pending_snapshot) {
        pr.BecomeProbe();
        pr.BecomeReplicate();
      }
      break;
    case Progress::State::kReplicate:
      pr.inflights.FreeLE(m.index());
      break;
  }
  const NodeId from = m.from();
  if (MaybeCommit()) {
    if (leader() == nullptr) return;  // we stepped down after our own removal committed
    BroadcastAppend();
  } else if (was_paused) {
    SendAppend(from, pr, true);
  }
  while (SendAppend(from, pr, false)) {
  }
  if (from == l.transferee && pr.match == log_.LastIndex()) SendTimeoutNow(from);
}

void Raft::HandleHeartbeatResponse(LeaderState& l, Progress& pr, const raftpb::Message& m) {
  pr.recent_active = true;
  pr.probe_sent = false;
  if (pr.state == Progress::State::kReplicate && pr.inflights.Full()) {
    // The window is full and nothing came back: appends may have been lost. Freeing a slot
    // lets one more go; a gap makes the follower reject it and probing starts over.
    pr.inflights.FreeFirst();
  }
  if (pr.state != Progress::State::kSnapshot && pr.match < log_.LastIndex()) {
    SendAppend(m.from(), pr, true);
  }
  // A lost TIMEOUT_NOW would otherwise stall the transfer until it times out: no appends flow
  // to a caught-up transferee while proposals are refused.
  if (m.from() == l.transferee && pr.match == log_.LastIndex()) SendTimeoutNow(m.from());
  if (m.read_seq() > pr.read_ack) {
    pr.read_ack = m.read_seq();
    AdvanceReads(l);
  }
}

void Raft::HandleSnapshotResponse(Progress& pr, const raftpb::Message& m) {
  pr.recent_active = true;
  if (pr.state != Progress::State::kSnapshot || !pr.transfer || pr.pending_snapshot != m.index()) {
    return;
  }
  SnapshotTransfer& t = *pr.transfer;
  t.idle_ticks = 0;
  if (m.reject()) {
    // The follower holds fewer bytes than we thought (a lost chunk, or it restarted).
    t.acked = std::min(m.snapshot_offset(), t.snapshot->data().size());
    t.sent = t.acked;
  } else {
    t.acked = std::max(t.acked, std::min(m.snapshot_offset(), t.snapshot->data().size()));
    t.sent = std::max(t.sent, t.acked);
  }
  SendSnapshotChunks(m.from(), pr);
}

// ---------------------------------------------------------------------------------------------
// Follower

void Raft::HandleAppend(const raftpb::Message& m) {
  raftpb::Message resp;
  resp.set_type(raftpb::MSG_APPEND_RESP);
  resp.set_to(m.from());
  if (m.index() < log_.committed()) {
    // Everything up to our commit index matches the leader's log (Leader Completeness).
    resp.set_index(log_.committed());
    Send(std::move(resp));
    return;
  }
  if (log_.MatchTerm(m.index(), m.log_term())) {
    const Index last_new = m.index() + m.entries_size();
    const Index conflict = log_.FindConflict(m.entries());
    if (conflict != 0) {
      if (conflict <= log_.committed()) {
        throw std::logic_error("raft: entry " + std::to_string(conflict) +
                               " conflicts with a committed one");
      }
      std::vector<raftpb::Entry> fresh(m.entries().begin() + (conflict - m.index() - 1),
                                       m.entries().end());
      conf_.TruncateFrom(conflict);
      TrackConfEntries(fresh);
      log_.Append(std::move(fresh));
    }
    const Index old_commit = log_.committed();
    log_.CommitTo(std::min<Index>(m.commit(), last_new));
    if (log_.committed() != old_commit) OnCommitted();
    resp.set_index(last_new);
    Send(std::move(resp));
    return;
  }
  // No match at m.index(): point the leader at where we might agree.
  const Index hint = log_.FindConflictByTerm(std::min(m.index(), log_.LastIndex()), m.log_term());
  resp.set_reject(true);
  resp.set_index(m.index());
  resp.set_reject_hint(hint);
  resp.set_log_term(log_.TermAt(hint).value_or(0));
  Send(std::move(resp));
}

void Raft::HandleHeartbeat(const raftpb::Message& m) {
  const Index old_commit = log_.committed();
  log_.CommitTo(m.commit());
  if (log_.committed() != old_commit) OnCommitted();
  raftpb::Message resp;
  resp.set_type(raftpb::MSG_HEARTBEAT_RESP);
  resp.set_to(m.from());
  resp.set_read_seq(m.read_seq());
  Send(std::move(resp));
}

void Raft::HandleSnapshotChunk(FollowerState& f, const raftpb::Message& m) {
  const raftpb::SnapshotMetadata& meta = m.snapshot();
  auto answer = [&](uint64_t held, bool reject) {
    raftpb::Message resp;
    resp.set_type(raftpb::MSG_SNAPSHOT_RESP);
    resp.set_to(m.from());
    resp.set_index(meta.index());
    resp.set_snapshot_offset(held);
    resp.set_reject(reject);
    Send(std::move(resp));
  };
  if (meta.index() <= log_.committed()) {
    // We hold all of it already; the leader resumes appends from our commit index.
    f.incoming.reset();
    raftpb::Message resp;
    resp.set_type(raftpb::MSG_APPEND_RESP);
    resp.set_to(m.from());
    resp.set_index(log_.committed());
    Send(std::move(resp));
    return;
  }
  auto& in = f.incoming;
  if (!in || in->from != m.from() || in->metadata.index() != meta.index() ||
      in->metadata.term() != meta.term()) {
    if (m.snapshot_offset() != 0) {
      answer(0, true);  // a chunk of a snapshot we have not started: start over
      return;
    }
    in = SnapshotReceive{m.from(), meta, m.snapshot_size(), {}};
  }
  if (m.snapshot_offset() != in->data.size()) {
    answer(in->data.size(), m.snapshot_offset() > in->data.size());
    return;
  }
  in->data += m.snapshot_chunk();
  if (in->data.size() < in->size) {
    answer(in->data.size(), false);
    return;
  }
  auto snap = std::make_shared<raftpb::Snapshot>();
  *snap->mutable_metadata() = in->metadata;
  snap->set_data(std::move(in->data));
  in.reset();
  raftpb::Message resp;
  resp.set_type(raftpb::MSG_APPEND_RESP);
  resp.set_to(m.from());
  resp.set_index(Restore(std::move(snap)) ? log_.LastIndex() : log_.committed());
  Send(std::move(resp));
}

bool Raft::Restore(std::shared_ptr<const raftpb::Snapshot> snapshot) {
  const raftpb::SnapshotMetadata& meta = snapshot->metadata();
  if (meta.index() <= log_.committed()) return false;
  if (log_.MatchTerm(meta.index(), meta.term())) {
    // Our log already holds the entry the snapshot ends with, so everything before it too
    // (Log Matching); only the commit index moves.
    log_.CommitTo(meta.index());
    OnCommitted();
    return false;
  }
  log_.Restore(snapshot);
  conf_.Reset(meta.index(), meta.conf_state());
  return true;
}

// ---------------------------------------------------------------------------------------------
// Leadership transfer

Status Raft::TransferLeadership(NodeId target) {
  auto* l = leader();
  if (l == nullptr) return {ErrorCode::kNotLeader, "not the leader"};
  if (target == cfg_.id) return {ErrorCode::kInvalidArgument, "already the leader"};
  if (!IsVoter(conf_.Active(), target)) {
    return {ErrorCode::kInvalidArgument, "node " + std::to_string(target) + " is not a voter"};
  }
  if (l->transferee == target) return Status::Ok();
  l->transferee = target;
  l->transfer_elapsed = 0;  // it must finish within an election timeout (checked in Tick)
  Progress& pr = l->progress.at(target);
  if (pr.match == log_.LastIndex()) {
    SendTimeoutNow(target);
  } else {
    SendAppend(target, pr, true);
  }
  return Status::Ok();
}

void Raft::AbortTransfer(LeaderState& l) {
  l.transferee = kNoNode;
}

}  // namespace skep::raft
