#include <catch2/catch.hpp>

#include <set>

#include "daemon/manager/allocator/allocator.h"

using namespace skep;
using namespace skep::allocator;

namespace {

api::Network Net(const std::string& id, const std::string& subnet, const std::string& gw,
                 bool ingress = false) {
  api::Network n;
  n.set_id(id);
  n.mutable_spec()->set_name(id + "-name");
  n.mutable_spec()->set_ingress(ingress);
  n.mutable_ipam()->set_subnet(subnet);
  n.mutable_ipam()->set_gateway(gw);
  return n;
}

api::Service Svc(const std::string& id, std::vector<std::string> networks) {
  api::Service s;
  s.set_id(id);
  for (const auto& n : networks)
    s.mutable_spec()->add_networks()->set_target(n);
  return s;
}

api::Task NewTask(const std::string& id, const std::string& service) {
  api::Task t;
  t.set_id(id);
  t.set_service_id(service);
  t.set_desired_state(api::TASK_RUNNING);
  t.mutable_status()->set_state(api::TASK_NEW);
  return t;
}

template <class T>
std::vector<const T*> Ptrs(const std::vector<T>& v) {
  std::vector<const T*> out;
  for (const auto& x : v)
    out.push_back(&x);
  return out;
}

}  // namespace

TEST_CASE("services get a virtual IP per network and new tasks an address each, then PENDING",
          "[allocator]") {
  std::vector<api::Network> nets = {Net("ing", "10.0.0.0/24", "10.0.0.1", true),
                                    Net("a", "10.0.9.0/24", "10.0.9.1"),
                                    Net("b", "10.0.10.0/24", "10.0.10.1")};
  api::Service web = Svc("web", {"a", "b"});
  auto* port = web.mutable_spec()->mutable_endpoint()->add_ports();
  port->set_target_port(80);
  port->set_published_port(8080);  // through the routing mesh: the ingress network too
  std::vector<api::Service> svcs = {web};
  std::vector<api::Task> tasks = {NewTask("t1", "web"), NewTask("t2", "web")};
  AllocationPlan p = PlanAllocations(Ptrs(nets), Ptrs(svcs), Ptrs(tasks), {}, 77);
  REQUIRE(p.services.size() == 1);
  const auto& vips = p.services[0].virtual_ips();
  REQUIRE(vips.size() == 3);
  CHECK(vips[0].network_id() == "a");
  CHECK(vips[0].addresses(0) == "10.0.9.2/24");
  CHECK(vips[2].network_id() == "ing");
  REQUIRE(p.tasks.size() == 2);
  for (const auto& t : p.tasks) {
    CHECK(t.status().state() == api::TASK_PENDING);
    CHECK(t.status().timestamp() == 77);
    REQUIRE(t.networks_size() == 3);
  }
  // The VIP was handed out in the same pass: no task gets it.
  CHECK(p.tasks[0].networks(0).addresses(0) == "10.0.9.3/24");
  CHECK(p.tasks[1].networks(0).addresses(0) == "10.0.9.4/24");

  // Applied, nothing more to do; a new task gets the next free address.
  svcs = {p.services[0]};
  tasks = p.tasks;
  CHECK(PlanAllocations(Ptrs(nets), Ptrs(svcs), Ptrs(tasks), {}, 78).tasks.empty());
  CHECK(PlanAllocations(Ptrs(nets), Ptrs(svcs), Ptrs(tasks), {}, 78).services.empty());
  // An ended task's addresses are free again.
  tasks[0].mutable_status()->set_state(api::TASK_FAILED);
  tasks.push_back(NewTask("t3", "web"));
  p = PlanAllocations(Ptrs(nets), Ptrs(svcs), Ptrs(tasks), {}, 79);
  REQUIRE(p.tasks.size() == 1);
  CHECK(p.tasks[0].networks(0).addresses(0) == "10.0.9.3/24");

  // Off a network: its VIP goes. dnsrr: no VIPs at all.
  svcs[0].mutable_spec()->mutable_networks()->RemoveLast();
  p = PlanAllocations(Ptrs(nets), Ptrs(svcs), {}, {}, 80);
  REQUIRE(p.services.size() == 1);
  CHECK(p.services[0].virtual_ips_size() == 2);
  svcs[0].mutable_spec()->mutable_endpoint()->set_mode(api::EndpointSpec::DNSRR);
  p = PlanAllocations(Ptrs(nets), Ptrs(svcs), {}, {}, 81);
  REQUIRE(p.services.size() == 1);
  CHECK(p.services[0].virtual_ips_size() == 0);
}

TEST_CASE("a task waits, NEW, while its network has no address left, and says so", "[allocator]") {
  std::vector<api::Network> nets = {Net("tiny", "10.0.9.0/30", "10.0.9.1")};  // one address
  api::Service s = Svc("s", {"tiny"});
  s.mutable_spec()->mutable_endpoint()->set_mode(api::EndpointSpec::DNSRR);
  std::vector<api::Service> svcs = {s};
  std::vector<api::Task> tasks = {NewTask("t1", "s"), NewTask("t2", "s")};
  AllocationPlan p = PlanAllocations(Ptrs(nets), Ptrs(svcs), Ptrs(tasks), {}, 1);
  REQUIRE(p.tasks.size() == 2);
  CHECK(p.tasks[0].status().state() == api::TASK_PENDING);
  CHECK(p.tasks[1].status().state() == api::TASK_NEW);
  CHECK(p.tasks[1].status().err() == "no IP address left on network tiny-name");
  CHECK(p.tasks[1].networks_size() == 0);
  // Said once: the next pass has nothing new to write for it.
  tasks = p.tasks;
  CHECK(PlanAllocations(Ptrs(nets), Ptrs(svcs), Ptrs(tasks), {}, 2).tasks.empty());
  // Once the first one ends, the second gets its address.
  tasks[0].mutable_status()->set_state(api::TASK_COMPLETE);
  p = PlanAllocations(Ptrs(nets), Ptrs(svcs), Ptrs(tasks), {}, 3);
  REQUIRE(p.tasks.size() == 1);
  CHECK(p.tasks[0].status().state() == api::TASK_PENDING);
  CHECK(p.tasks[0].networks(0).addresses(0) == "10.0.9.2/30");
}

TEST_CASE("a task of a service without networks goes straight to PENDING", "[allocator]") {
  std::vector<api::Service> svcs = {Svc("plain", {})};
  std::vector<api::Task> tasks = {NewTask("t", "plain")};
  AllocationPlan p = PlanAllocations({}, Ptrs(svcs), Ptrs(tasks), {}, 5);
  CHECK(p.services.empty());
  REQUIRE(p.tasks.size() == 1);
  CHECK(p.tasks[0].status().state() == api::TASK_PENDING);
  CHECK(p.tasks[0].networks_size() == 0);
}

TEST_CASE("every node gets an address on the ingress network, and tasks their service's VIPs",
          "[allocator]") {
  std::vector<api::Network> nets = {Net("ing", "10.0.0.0/24", "10.0.0.1", true),
                                    Net("a", "10.0.9.0/24", "10.0.9.1")};
  std::vector<api::Node> nodes(2);
  nodes[0].set_id("n1");
  nodes[1].set_id("n2");
  std::vector<api::Service> svcs = {Svc("web", {"a"})};
  std::vector<api::Task> tasks = {NewTask("t1", "web")};
  AllocationPlan p = PlanAllocations(Ptrs(nets), Ptrs(svcs), Ptrs(tasks), Ptrs(nodes), 1);
  REQUIRE(p.nodes.size() == 2);
  std::set<std::string> addrs;
  for (const auto& n : p.nodes) {
    REQUIRE(n.attachments_size() == 1);
    CHECK(n.attachments(0).network_id() == "ing");
    addrs.insert(n.attachments(0).addresses(0));
  }
  CHECK(addrs.size() == 2);
  // The task carries the VIP its service got in the same pass.
  REQUIRE(p.services.size() == 1);
  REQUIRE(p.tasks.size() == 1);
  REQUIRE(p.tasks[0].virtual_ips_size() == 1);
  CHECK(p.tasks[0].virtual_ips(0).addresses(0) == p.services[0].virtual_ips(0).addresses(0));

  // Once allocated, nothing changes; a node on a network that is not ingress loses that address.
  nodes = p.nodes;
  svcs = p.services;
  tasks = p.tasks;
  auto* stray = nodes[0].add_attachments();
  stray->set_network_id("a");
  stray->add_addresses("10.0.9.77/24");
  p = PlanAllocations(Ptrs(nets), Ptrs(svcs), Ptrs(tasks), Ptrs(nodes), 2);
  REQUIRE(p.nodes.size() == 1);
  CHECK(p.nodes[0].attachments_size() == 1);
  CHECK(p.nodes[0].attachments(0).network_id() == "ing");
  // A node's address is never given to a task.
  svcs[0].mutable_spec()->mutable_endpoint()->add_ports()->set_target_port(80);  // meshed
  std::vector<api::Task> more = {NewTask("t2", "web")};
  p = PlanAllocations(Ptrs(nets), Ptrs(svcs), Ptrs(more), Ptrs(nodes), 3);
  REQUIRE(p.tasks.size() == 1);
  for (const auto& a : p.tasks[0].networks()) CHECK(addrs.count(a.addresses(0)) == 0);
}

TEST_CASE("a node with many labels, once allocated, is left alone (maps compare by content)",
          "[allocator]") {
  std::vector<api::Network> nets = {Net("ing", "10.0.0.0/24", "10.0.0.1", true)};
  std::vector<api::Node> nodes(1);
  nodes[0].set_id("n1");
  for (int i = 0; i < 200; ++i)
    (*nodes[0].mutable_spec()->mutable_labels())["label" + std::to_string(i)] = "1";
  AllocationPlan p = PlanAllocations(Ptrs(nets), {}, {}, Ptrs(nodes), 1);
  REQUIRE(p.nodes.size() == 1);
  nodes = p.nodes;
  // Serialized map order can differ between equal copies: none of it may read as a change.
  for (int round = 0; round < 20; ++round) {
    CHECK(PlanAllocations(Ptrs(nets), {}, {}, Ptrs(nodes), 2 + round).nodes.empty());
    api::Node copy;
    copy.ParseFromString(nodes[0].SerializeAsString());
    nodes[0] = copy;
  }
}
