#include "tests/raft/sim/linearizability.h"

#include <algorithm>
#include <map>
#include <sstream>
#include <unordered_set>

namespace skep::raft::sim {
namespace {

struct Event {
  bool call = true;
  size_t op = 0;
  uint64_t time = 0;
  Event* prev = nullptr;
  Event* next = nullptr;
  Event* match = nullptr;  // call <-> return
};

// Applies `op` to `state`: false if the operation's observed result is impossible there.
bool Step(const Operation& op, const std::string& state, std::string* next) {
  switch (op.kind) {
    case OpKind::kPut:
      *next = op.value;
      return true;
    case OpKind::kGet:
      *next = state;
      return state == op.result;
    case OpKind::kCas:
      if (op.returned == kNeverReturned) {  // outcome unknown: whatever the state dictates
        *next = state == op.expected ? op.value : state;
        return true;
      }
      if (op.ok) {
        *next = op.value;
        return state == op.expected;
      }
      *next = state;
      return state != op.expected;
  }
  return false;
}

void Lift(Event* call) {
  call->prev->next = call->next;
  if (call->next) call->next->prev = call->prev;
  Event* ret = call->match;
  ret->prev->next = ret->next;
  if (ret->next) ret->next->prev = ret->prev;
}

void Unlift(Event* call) {
  Event* ret = call->match;
  ret->prev->next = ret;
  if (ret->next) ret->next->prev = ret;
  call->prev->next = call;
  if (call->next) call->next->prev = call;
}

std::string Describe(const Operation& op) {
  std::ostringstream os;
  os << "client " << op.client << " #" << op.seq << " ";
  switch (op.kind) {
    case OpKind::kPut:
      os << "put(" << op.value << ")";
      break;
    case OpKind::kGet:
      os << "get() -> '" << op.result << "'";
      break;
    case OpKind::kCas:
      os << "cas('" << op.expected << "' -> " << op.value << ")";
      if (op.returned != kNeverReturned) os << (op.ok ? " ok" : " failed");
      break;
  }
  os << " [" << op.invoked << ", ";
  if (op.returned == kNeverReturned) {
    os << "never]";
  } else {
    os << op.returned << "]";
  }
  return os.str();
}

CheckResult CheckKey(const std::string& key, const std::vector<const Operation*>& ops,
                     uint64_t max_states) {
  CheckResult res;
  std::vector<Event> events(2 * ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    Event& c = events[2 * i];
    Event& r = events[2 * i + 1];
    c = {true, i, ops[i]->invoked, nullptr, nullptr, &r};
    r = {false, i, ops[i]->returned, nullptr, nullptr, &c};
  }
  std::vector<Event*> order;
  for (auto& e : events)
    order.push_back(&e);
  std::stable_sort(order.begin(), order.end(), [](const Event* a, const Event* b) {
    if (a->time != b->time) return a->time < b->time;
    return a->call && !b->call;  // only ties at "never": keep calls first
  });
  Event head;
  Event* tail = &head;
  for (Event* e : order) {
    tail->next = e;
    e->prev = tail;
    tail = e;
  }

  size_t remaining = 0;
  for (const auto* op : ops)
    remaining += op->returned != kNeverReturned;
  std::vector<uint64_t> linearized((ops.size() + 63) / 64, 0);
  auto flip = [&](size_t i) { linearized[i / 64] ^= uint64_t{1} << (i % 64); };
  std::unordered_set<std::string> seen;
  auto cache_key = [&](const std::string& state) {
    std::string k(reinterpret_cast<const char*>(linearized.data()), linearized.size() * 8);
    k += state;
    return k;
  };
  struct Frame {
    Event* call;
    std::string state;
  };
  std::vector<Frame> stack;
  std::string state;
  Event* entry = head.next;
  while (remaining > 0) {
    if (entry != nullptr && entry->call) {
      const Operation& op = *ops[entry->op];
      std::string next;
      if (Step(op, state, &next)) {
        flip(entry->op);
        if (seen.insert(cache_key(next)).second) {
          if (++res.states_explored > max_states) {
            res.linearizable = false;
            res.explanation =
                "key '" + key + "': gave up after " + std::to_string(max_states) + " states";
            return res;
          }
          stack.push_back({entry, state});
          state = std::move(next);
          Lift(entry);
          if (op.returned != kNeverReturned) --remaining;
          entry = head.next;
          continue;
        }
        flip(entry->op);
      }
      entry = entry->next;
      continue;
    }
    // A completed operation that cannot be placed before its response: undo the last choice.
    if (stack.empty()) {
      res.linearizable = false;
      std::ostringstream os;
      os << "key '" << key << "' has no linearization; its operations:";
      std::vector<const Operation*> sorted = ops;
      std::sort(sorted.begin(), sorted.end(),
                [](auto* a, auto* b) { return a->invoked < b->invoked; });
      size_t shown = 0;
      for (const auto* op : sorted) {
        if (++shown > 40) {
          os << "\n  ...";
          break;
        }
        os << "\n  " << Describe(*op);
      }
      res.explanation = os.str();
      return res;
    }
    Frame f = std::move(stack.back());
    stack.pop_back();
    flip(f.call->op);
    state = std::move(f.state);
    Unlift(f.call);
    if (ops[f.call->op]->returned != kNeverReturned) ++remaining;
    entry = f.call->next;
  }
  return res;
}

}  // namespace

CheckResult CheckLinearizable(const std::vector<Operation>& history, uint64_t max_states) {
  std::map<std::string, std::vector<const Operation*>> by_key;
  for (const auto& op : history) {
    // A read that never answered constrains nothing.
    if (op.kind == OpKind::kGet && op.returned == kNeverReturned) continue;
    by_key[op.key].push_back(&op);
  }
  CheckResult total;
  for (const auto& [key, ops] : by_key) {
    CheckResult r = CheckKey(key, ops, max_states);
    total.states_explored += r.states_explored;
    if (!r.linearizable) {
      r.states_explored = total.states_explored;
      return r;
    }
  }
  return total;
}

}  // namespace skep::raft::sim
