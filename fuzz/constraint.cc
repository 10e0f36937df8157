// Placement constraints as users write them (`--constraint`, checked by the managers):
// skep::scheduler::ParseConstraint on one constraint, ParseConstraints on the input's lines,
// and every constraint that parses matched against two sample nodes. A rejected constraint
// is an error value, so nothing may throw; a constraint that parses must parse again from the
// text it keeps, to the same constraint.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "scheduler/constraint.h"

namespace {

namespace scheduler = skep::scheduler;

std::vector<scheduler::NodeInfo> SampleNodes() {
  scheduler::NodeInfo manager;
  manager.id = "n1";
  manager.hostname = "Manager-1";
  manager.role = "manager";
  manager.addr = "10.88.0.11";
  manager.platform = {"linux", "x86_64"};
  manager.labels = {{"zone", "a"}, {"Disk", "ssd"}};
  manager.engine_labels = {{"rack", "r1"}};
  scheduler::NodeInfo worker;
  worker.id = "n2";
  worker.hostname = "pi-4";
  worker.role = "worker";
  worker.addr = "fd00::12";
  worker.platform = {"linux", "aarch64"};
  worker.labels = {{"zone", "b"}};
  return {manager, worker};
}

void Check(const scheduler::ParsedConstraint& parsed) {
  const auto* c = std::get_if<scheduler::Constraint>(&parsed);
  if (c == nullptr) return;
  const scheduler::ParsedConstraint again = scheduler::ParseConstraint(c->text);
  const auto* c2 = std::get_if<scheduler::Constraint>(&again);
  if (c2 == nullptr || !(*c2 == *c)) std::abort();
  static const std::vector<scheduler::NodeInfo> nodes = SampleNodes();
  for (const auto& node : nodes)
    (void)scheduler::Matches(*c, node);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Check(scheduler::ParseConstraint(text));

  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t nl = text.find('\n', start);
    lines.emplace_back(text.substr(start, nl == std::string_view::npos ? nl : nl - start));
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  const auto all = scheduler::ParseConstraints(lines);
  if (const auto* cs = std::get_if<std::vector<scheduler::Constraint>>(&all)) {
    if (cs->size() != lines.size()) std::abort();
    for (const auto& c : *cs)
      Check(c);
  }
  return 0;
}
