#include <catch2/catch.hpp>

#include "overlay/discovery.h"

using namespace skep;
using namespace skep::discovery;

namespace {

api::EndpointRecord Ep(const std::string& service, const std::string& task, const std::string& ip,
                       const std::string& vip) {
  api::EndpointRecord r;
  r.set_service_name(service);
  r.set_service_id(service + "-id");
  r.set_task_id(task);
  r.set_task_name(service + ".1." + task);
  r.set_ip(ip);
  r.set_vip(vip);
  r.set_vtep("192.168.1.2");
  return r;
}

}  // namespace

TEST_CASE("a task resolves the services it shares a network with", "[discovery]") {
  Endpoints a = {Ep("web", "t1", "10.0.9.3", "10.0.9.2"), Ep("web", "t2", "10.0.9.4", "10.0.9.2"),
                 Ep("DB", "t3", "10.0.9.6", "")};  // dnsrr: no VIP
  Endpoints b = {Ep("logs", "t4", "10.0.10.3", "10.0.10.2")};
  auto names = NamesFor({&a});
  CHECK(names["web"] == std::vector<std::string>{"10.0.9.2"});
  CHECK(names["tasks.web"] == std::vector<std::string>{"10.0.9.3", "10.0.9.4"});
  CHECK(names["db"] == std::vector<std::string>{"10.0.9.6"});  // lower case, the task's address
  CHECK(names["tasks.db"] == std::vector<std::string>{"10.0.9.6"});
  CHECK(names["web.1.t1"] == std::vector<std::string>{"10.0.9.3"});
  CHECK(names.count("logs") == 0);  // on another network
  CHECK(NamesFor({&a, &b}).count("logs") == 1);

  // A service on two networks: each task sees the VIP of the network it shares.
  Endpoints c = {Ep("web", "t1", "10.0.10.7", "10.0.10.5")};
  CHECK(NamesFor({&c})["web"] == std::vector<std::string>{"10.0.10.5"});
}

TEST_CASE("VIP rules send each VIP to its service's tasks on that network", "[discovery]") {
  Endpoints a = {Ep("web", "t2", "10.0.9.4", "10.0.9.2"), Ep("web", "t1", "10.0.9.3", "10.0.9.2"),
                 Ep("db", "t3", "10.0.9.6", "")};
  const std::string script = TaskScript({&a});
  CHECK(script.find("ip daddr 10.0.9.2 dnat to numgen inc mod 2 map { 0 : 10.0.9.3, 1 : 10.0.9.4 }") !=
        std::string::npos);
  CHECK(script.find("10.0.9.6") == std::string::npos);  // dnsrr: nothing to balance
  CHECK(script.rfind("table ip skep_lb\ndelete table ip skep_lb\n", 0) == 0);
  Endpoints none = {Ep("db", "t3", "10.0.9.6", "")};
  CHECK(TaskScript({&none}).empty());
}

TEST_CASE("the routing mesh spreads each published port over its service's tasks",
          "[discovery]") {
  auto with_port = [](api::EndpointRecord r, uint32_t published, uint32_t target) {
    auto* p = r.add_ingress_ports();
    p->set_published_port(published);
    p->set_target_port(target);
    return r;
  };
  Endpoints ingress = {with_port(Ep("web", "t1", "10.0.0.5", "10.0.0.2"), 8080, 80),
                       with_port(Ep("web", "t2", "10.0.0.6", "10.0.0.2"), 8080, 80),
                       NodeEndpoint("n1", "10.0.0.3/24", "192.168.1.2")};
  auto* udp = ingress[0].add_ingress_ports();
  udp->set_protocol("udp");
  udp->set_published_port(53);
  udp->set_target_port(5353);
  auto ports = MeshPorts(ingress);
  REQUIRE(ports.size() == 2);
  CHECK(ports[0] == MeshPort{"tcp", 8080});
  CHECK(ports[1] == MeshPort{"udp", 53});
  const std::string script = MeshScript(ingress, "eth1");
  CHECK(script.find("tcp dport 8080 dnat to numgen inc mod 2 map { 0 : 10.0.0.5, 1 : 10.0.0.6 } : 80") !=
        std::string::npos);
  CHECK(script.find("udp dport 53 dnat to numgen inc mod 1 map { 0 : 10.0.0.5 } : 5353") !=
        std::string::npos);
  CHECK(script.find("oifname \"eth1\" masquerade") != std::string::npos);
  CHECK(script.find("10.0.0.3") == std::string::npos);  // a node is no backend
}

TEST_CASE("a task's endpoint carries its name, VIP and, on ingress, its published ports",
          "[discovery]") {
  api::Task t;
  t.set_id("abc");
  t.set_service_id("s1");
  t.set_service_name("web");
  t.set_slot(3);
  t.set_node_id("n1");
  auto* a = t.add_networks();
  a->set_network_id("net");
  a->add_addresses("10.0.9.7/24");
  auto* v = t.add_virtual_ips();
  v->set_network_id("net");
  v->add_addresses("10.0.9.2/24");
  auto* p = t.mutable_endpoint()->add_ports();
  p->set_published_port(8080);
  p->set_target_port(80);
  auto r = EndpointOf(t, *a, "192.168.1.5", false);
  CHECK(r.task_name() == "web.3.abc");
  CHECK(r.ip() == "10.0.9.7");
  CHECK(r.vip() == "10.0.9.2");
  CHECK(r.vtep() == "192.168.1.5");
  CHECK(r.ingress_ports_size() == 0);
  CHECK(EndpointOf(t, *a, "192.168.1.5", true).ingress_ports_size() == 1);
}
