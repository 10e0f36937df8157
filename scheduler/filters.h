// The filter pipeline behind Schedule and Check (internal to the scheduler). Each filter
// answers one question about one node for one task and, when it says no, records why in a
// Rejection; Explain and Summarize turn rejections into text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "scheduler/scheduler.h"

namespace skep::scheduler::internal {

// In pipeline order: a node's reason is the first filter that says no.
enum class FilterId : uint8_t {
  kReady,
  kAvailability,
  kConstraints,
  kPlatform,
  kMemoryLimits,
  kResources,
  kHostPorts,
  kMaxReplicas,
};

// Bits of Rejection::detail for kResources.
inline constexpr uint32_t kShortOfCpu = 1;
inline constexpr uint32_t kShortOfMemory = 2;

// What a filter needs to explain itself: for kConstraints the index of the first constraint
// not satisfied, for kResources the kShortOf* bits, for kHostPorts the index of the first
// port taken; otherwise 0.
struct Rejection {
  FilterId filter;
  uint32_t detail = 0;
};

std::optional<Rejection> CheckReady(const NodeInfo& node);
std::optional<Rejection> CheckAvailability(const NodeInfo& node);
std::optional<Rejection> CheckConstraints(const NodeInfo& node, const TaskRequest& task);
std::optional<Rejection> CheckPlatform(const NodeInfo& node, const TaskRequest& task);
std::optional<Rejection> CheckMemoryLimits(const NodeInfo& node, const TaskRequest& task);
std::optional<Rejection> CheckResources(const NodeInfo& node, const TaskRequest& task);
std::optional<Rejection> CheckHostPorts(const NodeInfo& node, const TaskRequest& task);
std::optional<Rejection> CheckMaxReplicas(const TaskRequest& task, int service_tasks_on_node);

// The filters that look only at the node's description and the task's spec (ready through
// memory limits): their answer holds for a whole Schedule call.
std::optional<Rejection> CheckStatic(const NodeInfo& node, const TaskRequest& task);
// The filters that look at the node's load (resources through max replicas), which grows as
// tasks are placed. `service_tasks_on_node` counts the task's service on the node.
std::optional<Rejection> CheckLoad(const NodeInfo& node, const TaskRequest& task,
                                   int service_tasks_on_node);

const char* FilterName(FilterId filter);

// One node's reason, with the figures: "insufficient memory (needs 512MiB, 256MiB available)".
std::string Explain(const Rejection& r, const NodeInfo& node, const TaskRequest& task,
                    int service_tasks_on_node);

// Rejections with the same key read the same in an unplaced task's reason and are counted
// together; keys sort in pipeline order.
uint64_t SummaryKey(const Rejection& r);
// The clause for `nodes` nodes rejected the same way: "insufficient memory on 2 nodes".
std::string Summarize(const Rejection& r, const TaskRequest& task, int nodes);

std::string FormatBytes(int64_t bytes);     // "512MiB", "1.5GiB"
std::string FormatCpus(int64_t nano_cpus);  // "0.5", "2"

}  // namespace skep::scheduler::internal
