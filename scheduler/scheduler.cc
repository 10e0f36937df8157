#include "scheduler/scheduler.h"

#include <algorithm>
#include <functional>
#include <map>
#include <numeric>
#include <unordered_map>
#include <string_view>
#include <utility>

#include "scheduler/filters.h"

namespace skep::scheduler {
namespace {

using internal::CheckLoad;
using internal::CheckStatic;
using internal::Rejection;

int CountFor(const std::map<std::string, int>& counts, const std::string& service_id) {
  auto it = counts.find(service_id);
  return it == counts.end() ? 0 : it->second;
}

// The ranking of a node for one group (see scheduler.h): the least rank is chosen.
struct Rank {
  bool failed_recently;
  int64_t service_tasks;
  int64_t total_tasks;
  int64_t failures;
  uint32_t id_order;  // position of the node's id among all ids

  friend bool operator<(const Rank& a, const Rank& b) {
    if (a.failed_recently != b.failed_recently) return b.failed_recently;
    if (a.service_tasks != b.service_tasks) return a.service_tasks < b.service_tasks;
    if (a.total_tasks != b.total_tasks) return a.total_tasks < b.total_tasks;
    if (a.failures != b.failures) return a.failures < b.failures;
    return a.id_order < b.id_order;
  }
};

// A binary min-heap of the nodes that may take the group's next task. Placing a task only
// makes the chosen node (the top) rank worse, so one sift-down keeps the order.
class CandidateHeap {
 public:
  struct Entry {
    Rank rank;
    uint32_t node;
  };

  void Add(Entry e) { entries_.push_back(e); }
  void Build() {
    for (size_t i = entries_.size() / 2; i-- > 0;)
      SiftDown(i);
  }
  bool empty() const { return entries_.empty(); }
  Entry& top() { return entries_.front(); }
  // Restores the order after top()'s rank grew.
  void TopRankGrew() { SiftDown(0); }
  void Pop() {
    entries_.front() = entries_.back();
    entries_.pop_back();
    if (!entries_.empty()) SiftDown(0);
  }

 private:
  void SiftDown(size_t i) {
    const size_t n = entries_.size();
    Entry moving = entries_[i];
    for (;;) {
      size_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && entries_[child + 1].rank < entries_[child].rank) ++child;
      if (!(entries_[child].rank < moving.rank)) break;
      entries_[i] = entries_[child];
      i = child;
    }
    entries_[i] = moving;
  }

  std::vector<Entry> entries_;
};

bool SameRequirements(const TaskRequest& a, const TaskRequest& b) {
  return a.service_id == b.service_id && a.reservations == b.reservations &&
         a.memory_limited == b.memory_limited &&
         a.max_replicas_per_node == b.max_replicas_per_node && a.constraints == b.constraints &&
         a.platforms == b.platforms && a.host_ports == b.host_ports && a.spread == b.spread;
}

struct RequirementsHash {
  size_t operator()(const TaskRequest* t) const {
    size_t h = std::hash<std::string>()(t->service_id);
    auto mix = [&h](size_t v) { h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); };
    mix(std::hash<int64_t>()(t->reservations.nano_cpus));
    mix(std::hash<int64_t>()(t->reservations.memory_bytes));
    mix(std::hash<bool>()(t->memory_limited));
    mix(std::hash<uint64_t>()(t->max_replicas_per_node));
    for (const Constraint& c : t->constraints) {
      mix(std::hash<std::string>()(c.key));
      mix(std::hash<std::string>()(c.value));
      mix(static_cast<size_t>(c.op));
    }
    for (const Platform& p : t->platforms) {
      mix(std::hash<std::string>()(p.os));
      mix(std::hash<std::string>()(p.arch));
    }
    for (const HostPort& p : t->host_ports)
      mix(p.port);
    for (const std::string& s : t->spread)
      mix(std::hash<std::string>()(s));
    return h;
  }
};

struct RequirementsEqual {
  bool operator()(const TaskRequest* a, const TaskRequest* b) const {
    return SameRequirements(*a, *b);
  }
};

// Tasks with the same requirements, in the order given.
struct Group {
  const TaskRequest* spec;
  std::vector<uint32_t> tasks;
};

std::vector<Group> GroupByRequirements(const std::vector<TaskRequest>& tasks) {
  std::vector<Group> groups;
  std::unordered_map<const TaskRequest*, size_t, RequirementsHash, RequirementsEqual> index;
  size_t last = 0;
  for (uint32_t k = 0; k < tasks.size(); ++k) {
    const TaskRequest& t = tasks[k];
    // Tasks of one service usually come together: try the previous task's group first.
    if (groups.empty() || !SameRequirements(t, *groups[last].spec)) {
      auto [it, inserted] = index.try_emplace(&t, groups.size());
      if (inserted) groups.push_back(Group{&t, {}});
      last = it->second;
    }
    groups[last].tasks.push_back(k);
  }
  return groups;
}

// "no suitable node (A on 3 nodes; B on 1 node)" from every node's rejection.
std::string UnplacedReason(const std::vector<Rejection>& rejections, const TaskRequest& spec) {
  if (rejections.empty()) return "no suitable node (no nodes in the swarm)";
  std::map<uint64_t, std::pair<Rejection, int>> by_summary;
  for (const Rejection& r : rejections) {
    auto [it, inserted] = by_summary.try_emplace(internal::SummaryKey(r), r, 0);
    ++it->second.second;
  }
  std::string reason = "no suitable node (";
  bool first = true;
  for (const auto& [key, entry] : by_summary) {
    if (!first) reason += "; ";
    first = false;
    reason += internal::Summarize(entry.first, spec, entry.second);
  }
  reason += ")";
  return reason;
}

// Where each task went: a node index, or the index of its reason.
struct Outcome {
  static constexpr int32_t kNone = -1;
  int32_t node = kNone;
  int32_t reason = kNone;
};

class GroupPlacer {
 public:
  GroupPlacer(std::vector<NodeInfo>& nodes, const std::vector<uint32_t>& id_order)
      : nodes_(nodes), id_order_(id_order) {}

  // Places the tasks of `group` one at a time on the best-ranked feasible node, updating the
  // nodes as it goes.
  void Place(const Group& group, std::vector<Outcome>& outcomes,
             std::vector<std::string>& reasons) {
    const TaskRequest& spec = *group.spec;
    if (!spec.spread.empty()) {
      PlaceSpread(group, outcomes, reasons);
      return;
    }
    const size_t n = nodes_.size();
    // Invariant: a node is either in `candidates` or has its reason in `rejections`.
    std::vector<Rejection> rejections(n, Rejection{internal::FilterId::kReady});
    std::vector<int> service_tasks(n);
    std::vector<char> loaded(n, 0);  // took a task of this group: its load filters may now fail
    std::vector<uint32_t> loaded_nodes;
    CandidateHeap candidates;
    for (uint32_t i = 0; i < n; ++i) {
      const NodeInfo& node = nodes_[i];
      service_tasks[i] = CountFor(node.tasks_by_service, spec.service_id);
      auto rejected = CheckStatic(node, spec);
      if (!rejected) rejected = CheckLoad(node, spec, service_tasks[i]);
      if (rejected) {
        rejections[i] = *rejected;
        continue;
      }
      int failures = CountFor(node.recent_failures, spec.service_id);
      candidates.Add(
          {Rank{failures > 0, service_tasks[i], node.total_tasks, failures, id_order_[i]}, i});
    }
    candidates.Build();

    int32_t reason = Outcome::kNone;
    for (uint32_t task : group.tasks) {
      while (!candidates.empty()) {
        CandidateHeap::Entry& best = candidates.top();
        const uint32_t i = best.node;
        if (loaded[i]) {
          if (auto rejected = CheckLoad(nodes_[i], spec, service_tasks[i])) {
            rejections[i] = *rejected;
            candidates.Pop();
            continue;
          }
        } else {
          loaded[i] = 1;
          loaded_nodes.push_back(i);
        }
        Reserve(nodes_[i], spec);
        ++service_tasks[i];
        ++best.rank.service_tasks;
        ++best.rank.total_tasks;
        candidates.TopRankGrew();
        outcomes[task].node = static_cast<int32_t>(i);
        break;
      }
      if (outcomes[task].node != Outcome::kNone) continue;
      if (reason == Outcome::kNone) {
        reason = static_cast<int32_t>(reasons.size());
        reasons.push_back(UnplacedReason(rejections, spec));
      }
      outcomes[task].reason = reason;
    }
    for (uint32_t i : loaded_nodes) {
      nodes_[i].tasks_by_service[spec.service_id] = service_tasks[i];
    }
  }

  // With placement preferences: each task goes to the feasible node whose branches (its value
  // of each preference's label, level by level) hold the fewest of the service's tasks, then
  // by the usual rank. O(nodes x levels) per task.
  void PlaceSpread(const Group& group, std::vector<Outcome>& outcomes,
                   std::vector<std::string>& reasons) {
    const TaskRequest& spec = *group.spec;
    const size_t n = nodes_.size();
    const size_t levels = spec.spread.size();
    std::vector<Rejection> rejections;
    std::vector<uint32_t> candidates;
    std::vector<int> service_tasks(n);
    std::vector<std::vector<std::string>> branch(n);  // per node, per level: its branch
    std::vector<std::map<std::string, int64_t>> count(levels);
    for (uint32_t i = 0; i < n; ++i) {
      const NodeInfo& node = nodes_[i];
      service_tasks[i] = CountFor(node.tasks_by_service, spec.service_id);
      auto rejected = CheckStatic(node, spec);
      if (!rejected) rejected = CheckLoad(node, spec, service_tasks[i]);
      if (rejected) {
        rejections.push_back(*rejected);
        continue;
      }
      candidates.push_back(i);
      std::string key;
      for (size_t l = 0; l < levels; ++l) {
        key += LabelValue(node, spec.spread[l]);
        key += '\0';
        branch[i].push_back(key);
        count[l][key] += service_tasks[i];
      }
    }
    auto rank = [&](uint32_t i) {
      const int failures = CountFor(nodes_[i].recent_failures, spec.service_id);
      return Rank{failures > 0, service_tasks[i], nodes_[i].total_tasks, failures, id_order_[i]};
    };
    auto better = [&](uint32_t a, uint32_t b) {
      for (size_t l = 0; l < levels; ++l) {
        const int64_t ca = count[l][branch[a][l]], cb = count[l][branch[b][l]];
        if (ca != cb) return ca < cb;
      }
      return rank(a) < rank(b);
    };
    int32_t reason = Outcome::kNone;
    for (uint32_t task : group.tasks) {
      // Nodes that took a task of the group may now fail their load filters.
      for (size_t k = 0; k < candidates.size();) {
        const uint32_t i = candidates[k];
        if (auto rejected = CheckLoad(nodes_[i], spec, service_tasks[i])) {
          rejections.push_back(*rejected);
          candidates[k] = candidates.back();
          candidates.pop_back();
          continue;
        }
        ++k;
      }
      if (candidates.empty()) {
        if (reason == Outcome::kNone) {
          reason = static_cast<int32_t>(reasons.size());
          reasons.push_back(UnplacedReason(rejections, spec));
        }
        outcomes[task].reason = reason;
        continue;
      }
      uint32_t best = candidates[0];
      for (uint32_t i : candidates) {
        if (better(i, best)) best = i;
      }
      Reserve(nodes_[best], spec);
      ++service_tasks[best];
      for (size_t l = 0; l < levels; ++l)
        ++count[l][branch[best][l]];
      outcomes[task].node = static_cast<int32_t>(best);
    }
    for (uint32_t i = 0; i < n; ++i) {
      if (service_tasks[i] != CountFor(nodes_[i].tasks_by_service, spec.service_id)) {
        nodes_[i].tasks_by_service[spec.service_id] = service_tasks[i];
      }
    }
  }

  // A node's value of a preference's label; "" when it has none.
  static std::string LabelValue(const NodeInfo& node, const std::string& descriptor) {
    static const std::string kNode = "node.labels.", kEngine = "engine.labels.";
    const std::map<std::string, std::string>* labels = nullptr;
    std::string key;
    if (descriptor.rfind(kNode, 0) == 0) {
      labels = &node.labels;
      key = descriptor.substr(kNode.size());
    } else if (descriptor.rfind(kEngine, 0) == 0) {
      labels = &node.engine_labels;
      key = descriptor.substr(kEngine.size());
    }
    if (labels == nullptr) return "";
    auto it = labels->find(key);
    return it == labels->end() ? "" : it->second;
  }

 private:
  // Everything but tasks_by_service, which Place writes once at the end of the group.
  static void Reserve(NodeInfo& node, const TaskRequest& spec) {
    if (spec.reservations.nano_cpus > 0) node.reserved.nano_cpus += spec.reservations.nano_cpus;
    if (spec.reservations.memory_bytes > 0) {
      node.reserved.memory_bytes += spec.reservations.memory_bytes;
    }
    ++node.total_tasks;
    for (const HostPort& p : spec.host_ports) {
      if (p.port != 0) node.used_host_ports.push_back(p);
    }
  }

  std::vector<NodeInfo>& nodes_;
  const std::vector<uint32_t>& id_order_;
};

}  // namespace

Decisions Schedule(std::vector<NodeInfo>& nodes, const std::vector<TaskRequest>& tasks) {
  std::vector<uint32_t> by_id(nodes.size());
  std::iota(by_id.begin(), by_id.end(), 0);
  std::sort(by_id.begin(), by_id.end(), [&nodes](uint32_t a, uint32_t b) {
    if (nodes[a].id != nodes[b].id) return nodes[a].id < nodes[b].id;
    return a < b;
  });
  std::vector<uint32_t> id_order(nodes.size());
  for (uint32_t pos = 0; pos < by_id.size(); ++pos)
    id_order[by_id[pos]] = pos;

  std::vector<Outcome> outcomes(tasks.size());
  std::vector<std::string> reasons;
  GroupPlacer placer(nodes, id_order);
  for (const Group& group : GroupByRequirements(tasks))
    placer.Place(group, outcomes, reasons);

  Decisions decisions;
  for (size_t k = 0; k < tasks.size(); ++k) {
    if (outcomes[k].node != Outcome::kNone) {
      decisions.assignments.push_back({tasks[k].task_id, nodes[outcomes[k].node].id});
    } else {
      decisions.unplaced.push_back({tasks[k].task_id, reasons[outcomes[k].reason]});
    }
  }
  return decisions;
}

std::optional<std::string> CheckSpreadDescriptor(const std::string& descriptor) {
  for (const std::string_view prefix : {"node.labels.", "engine.labels."}) {
    if (descriptor.rfind(prefix, 0) == 0 && descriptor.size() > prefix.size()) return std::nullopt;
  }
  return "invalid placement preference \"spread=" + descriptor +
         "\": the key must be node.labels.<name> or engine.labels.<name>";
}

std::optional<Verdict> Check(const NodeInfo& node, const TaskRequest& task) {
  int service_tasks = CountFor(node.tasks_by_service, task.service_id);
  auto rejected = CheckStatic(node, task);
  if (!rejected) rejected = CheckLoad(node, task, service_tasks);
  if (!rejected) return std::nullopt;
  return Verdict{internal::FilterName(rejected->filter),
                 internal::Explain(*rejected, node, task, service_tasks)};
}

}  // namespace skep::scheduler
