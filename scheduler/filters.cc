#include "scheduler/filters.h"

#include <cstdio>
#include <string_view>

namespace skep::scheduler::internal {
namespace {

char LowerAscii(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (LowerAscii(a[i]) != LowerAscii(b[i])) return false;
  }
  return true;
}

// Nodes report the kernel's name for their architecture (uname -m: x86_64, aarch64, armv7l)
// while images use Go's (amd64, arm64, arm); both spellings name one architecture.
std::string CanonicalArch(std::string_view arch) {
  std::string a;
  for (char c : arch)
    a += LowerAscii(c);
  if (a == "x86_64" || a == "x86-64") return "amd64";
  if (a == "aarch64" || a == "armv8") return "arm64";
  if (a == "armv7l" || a == "armv7" || a == "armv6l" || a == "armv6" || a == "armhf") {
    return "arm";
  }
  if (a == "i386" || a == "i686" || a == "x86") return "386";
  return a;
}

bool PlatformSupported(const Platform& image, const Platform& node) {
  return (image.os.empty() || EqualsIgnoreCase(image.os, node.os)) &&
         (image.arch.empty() || CanonicalArch(image.arch) == CanonicalArch(node.arch));
}

int64_t Available(int64_t total, int64_t reserved) {
  return total > reserved ? total - reserved : 0;
}

std::string Nodes(int n) {
  return std::to_string(n) + (n == 1 ? " node" : " nodes");
}

std::string PortText(const HostPort& p) {
  return std::to_string(p.port) + "/" + p.protocol;
}

std::string PlatformText(const Platform& p) {
  return (p.os.empty() ? std::string("any") : p.os) + "/" +
         (p.arch.empty() ? std::string("any") : p.arch);
}

std::string CpusText(int64_t nano_cpus) {
  std::string n = FormatCpus(nano_cpus);
  return n + (n == "1" ? " CPU" : " CPUs");
}

std::string ConstraintText(const Constraint& c) {
  if (!c.text.empty()) return c.text;
  return c.key + (c.op == Op::kEq ? "==" : "!=") + c.value;
}

// Drops the trailing zeros of a fixed-point number: "1.50" -> "1.5", "2.00" -> "2".
std::string TrimZeros(std::string s) {
  if (s.find('.') == std::string::npos) return s;
  while (s.back() == '0')
    s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

std::optional<Rejection> CheckReady(const NodeInfo& node) {
  if (node.ready) return std::nullopt;
  return Rejection{FilterId::kReady};
}

std::optional<Rejection> CheckAvailability(const NodeInfo& node) {
  if (node.availability == "active") return std::nullopt;
  return Rejection{FilterId::kAvailability};
}

std::optional<Rejection> CheckConstraints(const NodeInfo& node, const TaskRequest& task) {
  for (size_t i = 0; i < task.constraints.size(); ++i) {
    if (!Matches(task.constraints[i], node)) {
      return Rejection{FilterId::kConstraints, static_cast<uint32_t>(i)};
    }
  }
  return std::nullopt;
}

std::optional<Rejection> CheckPlatform(const NodeInfo& node, const TaskRequest& task) {
  if (task.platforms.empty()) return std::nullopt;
  for (const Platform& p : task.platforms) {
    if (PlatformSupported(p, node.platform)) return std::nullopt;
  }
  return Rejection{FilterId::kPlatform};
}

std::optional<Rejection> CheckMemoryLimits(const NodeInfo& node, const TaskRequest& task) {
  if (!task.memory_limited || node.memory_limits) return std::nullopt;
  return Rejection{FilterId::kMemoryLimits};
}

std::optional<Rejection> CheckResources(const NodeInfo& node, const TaskRequest& task) {
  uint32_t short_of = 0;
  const Resources& want = task.reservations;
  if (want.nano_cpus > 0 &&
      want.nano_cpus > Available(node.total.nano_cpus, node.reserved.nano_cpus)) {
    short_of |= kShortOfCpu;
  }
  if (want.memory_bytes > 0 &&
      want.memory_bytes > Available(node.total.memory_bytes, node.reserved.memory_bytes)) {
    short_of |= kShortOfMemory;
  }
  if (short_of == 0) return std::nullopt;
  return Rejection{FilterId::kResources, short_of};
}

std::optional<Rejection> CheckHostPorts(const NodeInfo& node, const TaskRequest& task) {
  for (size_t i = 0; i < task.host_ports.size(); ++i) {
    const HostPort& want = task.host_ports[i];
    if (want.port == 0) continue;
    for (const HostPort& used : node.used_host_ports) {
      if (used.port == want.port && EqualsIgnoreCase(used.protocol, want.protocol)) {
        return Rejection{FilterId::kHostPorts, static_cast<uint32_t>(i)};
      }
    }
  }
  return std::nullopt;
}

std::optional<Rejection> CheckMaxReplicas(const TaskRequest& task, int service_tasks_on_node) {
  if (task.max_replicas_per_node == 0 ||
      static_cast<uint64_t>(service_tasks_on_node < 0 ? 0 : service_tasks_on_node) <
          task.max_replicas_per_node) {
    return std::nullopt;
  }
  return Rejection{FilterId::kMaxReplicas};
}

std::optional<Rejection> CheckStatic(const NodeInfo& node, const TaskRequest& task) {
  if (auto r = CheckReady(node)) return r;
  if (auto r = CheckAvailability(node)) return r;
  if (auto r = CheckConstraints(node, task)) return r;
  if (auto r = CheckPlatform(node, task)) return r;
  return CheckMemoryLimits(node, task);
}

std::optional<Rejection> CheckLoad(const NodeInfo& node, const TaskRequest& task,
                                   int service_tasks_on_node) {
  if (auto r = CheckResources(node, task)) return r;
  if (auto r = CheckHostPorts(node, task)) return r;
  return CheckMaxReplicas(task, service_tasks_on_node);
}

const char* FilterName(FilterId filter) {
  switch (filter) {
    case FilterId::kReady:
      return "ready";
    case FilterId::kAvailability:
      return "availability";
    case FilterId::kConstraints:
      return "constraints";
    case FilterId::kPlatform:
      return "platform";
    case FilterId::kMemoryLimits:
      return "memory-limits";
    case FilterId::kResources:
      return "resources";
    case FilterId::kHostPorts:
      return "host-ports";
    case FilterId::kMaxReplicas:
      return "max-replicas";
  }
  return "unknown";
}

std::string Explain(const Rejection& r, const NodeInfo& node, const TaskRequest& task,
                    int service_tasks_on_node) {
  switch (r.filter) {
    case FilterId::kReady:
      return "node is not ready";
    case FilterId::kAvailability:
      if (node.availability == "drain") return "node is drained";
      if (node.availability == "pause") return "node is paused";
      return "node availability is \"" + node.availability + "\", not active";
    case FilterId::kConstraints:
      if (r.detail < task.constraints.size()) {
        return "scheduling constraint " + ConstraintText(task.constraints[r.detail]) +
               " not satisfied";
      }
      return "scheduling constraints not satisfied";
    case FilterId::kPlatform: {
      std::string supported;
      for (const Platform& p : task.platforms) {
        if (!supported.empty()) supported += ", ";
        supported += PlatformText(p);
      }
      Platform shown = node.platform;
      if (shown.os.empty()) shown.os = "unknown";
      if (shown.arch.empty()) shown.arch = "unknown";
      return "unsupported platform (node is " + PlatformText(shown) + ", image supports " +
             supported + ")";
    }
    case FilterId::kMemoryLimits:
      return "no memory limits on the node (its kernel has no memory cgroup controller), and "
             "the task has a memory limit or reservation";
    case FilterId::kResources: {
      std::string cpu_need = CpusText(task.reservations.nano_cpus);
      int64_t cpu_free_nanos = Available(node.total.nano_cpus, node.reserved.nano_cpus);
      std::string mem_need = FormatBytes(task.reservations.memory_bytes);
      std::string mem_free =
          FormatBytes(Available(node.total.memory_bytes, node.reserved.memory_bytes));
      if (r.detail == kShortOfCpu) {
        return "insufficient cpu (needs " + cpu_need + ", " + FormatCpus(cpu_free_nanos) +
               " available)";
      }
      if (r.detail == kShortOfMemory) {
        return "insufficient memory (needs " + mem_need + ", " + mem_free + " available)";
      }
      return "insufficient cpu and memory (needs " + cpu_need + " and " + mem_need + ", " +
             CpusText(cpu_free_nanos) + " and " + mem_free + " available)";
    }
    case FilterId::kHostPorts:
      if (r.detail < task.host_ports.size()) {
        return "host-mode port " + PortText(task.host_ports[r.detail]) + " in use";
      }
      return "host-mode port in use";
    case FilterId::kMaxReplicas:
      return "max replicas per node reached (" + std::to_string(service_tasks_on_node) +
             " tasks of the service on the node, limit " +
             std::to_string(task.max_replicas_per_node) + ")";
  }
  return "rejected";
}

uint64_t SummaryKey(const Rejection& r) {
  uint64_t detail =
      r.filter == FilterId::kResources || r.filter == FilterId::kHostPorts ? r.detail : 0;
  return (static_cast<uint64_t>(r.filter) << 32) | detail;
}

std::string Summarize(const Rejection& r, const TaskRequest& task, int nodes) {
  switch (r.filter) {
    case FilterId::kReady:
      return Nodes(nodes) + " not ready";
    case FilterId::kAvailability:
      return Nodes(nodes) + " not available for new tasks";
    case FilterId::kConstraints:
      return "scheduling constraints not satisfied on " + Nodes(nodes);
    case FilterId::kPlatform:
      return "unsupported platform on " + Nodes(nodes);
    case FilterId::kMemoryLimits:
      return "no memory cgroup controller on " + Nodes(nodes);
    case FilterId::kResources: {
      const char* what = r.detail == kShortOfCpu      ? "cpu"
                         : r.detail == kShortOfMemory ? "memory"
                                                      : "cpu and memory";
      return std::string("insufficient ") + what + " on " + Nodes(nodes);
    }
    case FilterId::kHostPorts:
      if (r.detail < task.host_ports.size()) {
        return "host-mode port " + PortText(task.host_ports[r.detail]) + " in use on " +
               Nodes(nodes);
      }
      return "host-mode port in use on " + Nodes(nodes);
    case FilterId::kMaxReplicas:
      return "max replicas per node (" + std::to_string(task.max_replicas_per_node) +
             ") reached on " + Nodes(nodes);
  }
  return "rejected on " + Nodes(nodes);
}

std::string FormatBytes(int64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + "B";
  int unit = 0;
  double v = static_cast<double>(bytes);
  while (v >= 1024 && unit < 6) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return TrimZeros(buf) + kUnits[unit];
}

std::string FormatCpus(int64_t nano_cpus) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(nano_cpus) / 1e9);
  return TrimZeros(buf);
}

}  // namespace skep::scheduler::internal
