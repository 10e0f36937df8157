#include "raft/conf.h"

#include <algorithm>
#include <sstream>

namespace skep::raft {
namespace {

bool Contains(const google::protobuf::RepeatedField<uint64_t>& ids, NodeId id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

std::string JoinIds(const google::protobuf::RepeatedField<uint64_t>& ids) {
  std::ostringstream os;
  for (int i = 0; i < ids.size(); ++i)
    os << (i ? "," : "") << ids[i];
  return os.str();
}

}  // namespace

bool IsVoter(const raftpb::ConfState& cs, NodeId id) {
  return Contains(cs.voters(), id);
}
bool IsLearner(const raftpb::ConfState& cs, NodeId id) {
  return Contains(cs.learners(), id);
}

std::vector<NodeId> Members(const raftpb::ConfState& cs) {
  std::vector<NodeId> out(cs.voters().begin(), cs.voters().end());
  out.insert(out.end(), cs.learners().begin(), cs.learners().end());
  return out;
}

raftpb::ConfState MakeConfState(std::vector<NodeId> voters, std::vector<NodeId> learners) {
  std::sort(voters.begin(), voters.end());
  std::sort(learners.begin(), learners.end());
  raftpb::ConfState cs;
  for (NodeId v : voters)
    cs.add_voters(v);
  for (NodeId l : learners)
    cs.add_learners(l);
  return cs;
}

std::optional<std::string> CheckConfState(const raftpb::ConfState& cs) {
  if (cs.voters_size() == 0) return "no voters";
  for (const auto* ids : {&cs.voters(), &cs.learners()}) {
    for (int i = 0; i < ids->size(); ++i) {
      if ((*ids)[i] == kNoNode) return "node 0 is a member";
      if (i > 0 && (*ids)[i] <= (*ids)[i - 1]) return "members not sorted or repeated";
    }
  }
  for (NodeId v : cs.voters()) {
    if (IsLearner(cs, v)) return "node " + std::to_string(v) + " is both voter and learner";
  }
  return std::nullopt;
}

Status ApplyConfChange(const raftpb::ConfState& current, raftpb::ConfChangeType type, NodeId id,
                       raftpb::ConfState* out) {
  if (id == kNoNode) return {ErrorCode::kInvalidConfChange, "node id 0 is reserved"};
  std::vector<NodeId> voters(current.voters().begin(), current.voters().end());
  std::vector<NodeId> learners(current.learners().begin(), current.learners().end());
  auto erase = [](std::vector<NodeId>& v, NodeId x) {
    v.erase(std::remove(v.begin(), v.end(), x), v.end());
  };
  const std::string node = "node " + std::to_string(id);
  switch (type) {
    case raftpb::CONF_ADD_LEARNER:
      if (IsVoter(current, id))
        return {ErrorCode::kInvalidConfChange, node + " is already a voter"};
      if (IsLearner(current, id)) {
        return {ErrorCode::kInvalidConfChange, node + " is already a learner"};
      }
      learners.push_back(id);
      break;
    case raftpb::CONF_PROMOTE:
      if (IsVoter(current, id))
        return {ErrorCode::kInvalidConfChange, node + " is already a voter"};
      if (!IsLearner(current, id)) {
        return {ErrorCode::kInvalidConfChange, node + " is not a learner; add it as one first"};
      }
      erase(learners, id);
      voters.push_back(id);
      break;
    case raftpb::CONF_REMOVE:
      if (!IsMember(current, id)) return {ErrorCode::kInvalidConfChange, node + " is not a member"};
      if (IsVoter(current, id) && current.voters_size() == 1) {
        return {ErrorCode::kInvalidConfChange, "cannot remove the last voter, " + node};
      }
      erase(voters, id);
      erase(learners, id);
      break;
    default:
      return {ErrorCode::kInvalidConfChange, "unknown configuration change type"};
  }
  *out = MakeConfState(std::move(voters), std::move(learners));
  return Status::Ok();
}

std::string Describe(const raftpb::ConfState& cs) {
  std::string s = "voters=[" + JoinIds(cs.voters()) + "]";
  if (cs.learners_size() > 0) s += " learners=[" + JoinIds(cs.learners()) + "]";
  return s;
}

raftpb::Entry BootstrapEntry(const raftpb::ConfState& conf) {
  raftpb::ConfChange cc;
  cc.set_type(raftpb::CONF_ADD_LEARNER);  // informational: `result` is what counts
  *cc.mutable_result() = conf;
  raftpb::Entry e;
  e.set_index(1);
  e.set_term(1);
  e.set_type(raftpb::ENTRY_CONF_CHANGE);
  e.set_data(cc.SerializeAsString());
  return e;
}

void ConfLog::Reset(Index index, raftpb::ConfState conf) {
  history_.clear();
  history_.emplace_back(index, std::move(conf));
}

void ConfLog::Append(Index index, raftpb::ConfState conf) {
  if (index <= history_.back().first) {
    throw std::logic_error("raft: configuration entry at " + std::to_string(index) +
                           " is not after the one at " + std::to_string(history_.back().first));
  }
  history_.emplace_back(index, std::move(conf));
}

void ConfLog::TruncateFrom(Index index) {
  while (history_.size() > 1 && history_.back().first >= index)
    history_.pop_back();
  if (history_.back().first >= index) {
    throw std::logic_error("raft: truncating the log below its base configuration at " +
                           std::to_string(history_.back().first));
  }
}

void ConfLog::Compact(Index committed) {
  size_t keep = 0;  // the newest configuration at or below committed
  while (keep + 1 < history_.size() && history_[keep + 1].first <= committed)
    ++keep;
  history_.erase(history_.begin(), history_.begin() + keep);
}

const raftpb::ConfState& ConfLog::At(Index index) const {
  for (size_t k = history_.size(); k-- > 0;) {
    if (history_[k].first <= index) return history_[k].second;
  }
  return history_.front().second;
}

}  // namespace skep::raft
