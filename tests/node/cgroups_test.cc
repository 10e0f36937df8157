#include <catch2/catch.hpp>

#include "daemon/node/cgroups.h"

using skep::node::MemoryControllerEnabled;

TEST_CASE("the memory controller, from cgroup v2's controllers or v1's /proc/cgroups",
          "[cgroups]") {
  // v2: the unified hierarchy's root lists the controllers it has.
  CHECK(MemoryControllerEnabled("cpuset cpu io memory hugetlb pids rdma misc\n", ""));
  CHECK_FALSE(MemoryControllerEnabled("cpuset cpu io hugetlb pids\n", ""));
  CHECK_FALSE(MemoryControllerEnabled("", ""));

  // v1: enabled and mounted. A Raspberry Pi kernel without cgroup_enable=memory reports it
  // disabled.
  const std::string header = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n";
  CHECK(MemoryControllerEnabled(std::nullopt, header + "cpu\t1\t2\t1\nmemory\t4\t44\t1\n"));
  CHECK_FALSE(MemoryControllerEnabled(std::nullopt, header + "cpu\t1\t2\t1\nmemory\t0\t75\t0\n"));
  CHECK_FALSE(MemoryControllerEnabled(std::nullopt, header + "memory\t0\t1\t1\n"));  // unmounted
  CHECK_FALSE(MemoryControllerEnabled(std::nullopt, header + "cpu\t1\t2\t1\n"));
  CHECK_FALSE(MemoryControllerEnabled(std::nullopt, ""));
}
