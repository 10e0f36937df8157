// Certificate renewals: the leader signs a node's request with the role the swarm wants for it
// (a demoted manager keeps a manager's certificate until it has left the raft group), and
// records that role.
#include <catch2/catch.hpp>

#include "daemon/common/pki.h"
#include "daemon/manager/ca_service.h"
#include "tests/manager/fakes.h"

using namespace skep;
using namespace skep::manager;
using skep::testing::FakeContext;

namespace {

struct Swarm {
  boost::asio::io_context io;
  FakeContext ctx{io};
  std::string node_key;

  Swarm() {
    const pki::KeyPair ca = pki::CreateRootCA();
    api::StoreAction cluster;
    cluster.set_kind(api::StoreAction::CREATE);
    auto* c = cluster.mutable_cluster();
    c->set_id("cluster-1");
    c->mutable_root_ca()->set_cert_pem(ca.cert_pem);
    c->mutable_root_ca()->set_key_pem(ca.key_pem);
    ctx.Apply({cluster});
    node_key = pki::CreateKeyAndRequest().key_pem;
    ctx.SetLeadership({true, true, 2, {}});
  }

  void AddNode(const std::string& id, uint64_t raft_id, api::NodeRole role,
               api::NodeRole desired) {
    api::StoreAction a;
    a.set_kind(api::StoreAction::CREATE);
    a.mutable_node()->set_id(id);
    a.mutable_node()->set_raft_id(raft_id);
    a.mutable_node()->set_role(role);
    a.mutable_node()->mutable_spec()->set_desired_role(desired);
    ctx.Apply({a});
  }

  // Renews the certificate of `id`; the outcome and what was signed.
  std::pair<Status, api::RenewCertificateResponse> Renew(const std::string& id) {
    api::RenewCertificateResponse resp;
    std::optional<Status> outcome;
    manager::Renew(ctx, id, pki::CreateRequest(node_key), &resp,
                   [&](const Status& st) { outcome = st; });
    for (int i = 0; i < 100 && !outcome; ++i)
      io.poll();
    REQUIRE(outcome);
    return {*outcome, resp};
  }
};

}  // namespace

TEST_CASE("ca: a renewal carries the role the swarm wants, and records it", "[ca]") {
  Swarm s;
  s.AddNode("w1", 7, api::ROLE_WORKER, api::ROLE_MANAGER);  // promoted
  auto [st, resp] = s.Renew("w1");
  REQUIRE(st.ok());
  CHECK(resp.role() == api::ROLE_MANAGER);
  const pki::CertInfo cert = pki::ParseCertificate(resp.cert_pem());
  CHECK(cert.node_id == "w1");
  CHECK(cert.role == pki::kManagerRole);
  CHECK(cert.cluster_id == "cluster-1");
  CHECK(s.ctx.store().GetNode("w1")->role() == api::ROLE_MANAGER);
  CHECK(s.ctx.proposals().size() == 1);

  // The same again: nothing to record.
  std::tie(st, resp) = s.Renew("w1");
  REQUIRE(st.ok());
  CHECK(s.ctx.proposals().size() == 1);
}

TEST_CASE("ca: a demoted manager keeps a manager's certificate until it left the raft group",
          "[ca]") {
  Swarm s;
  s.AddNode("m2", 2, api::ROLE_MANAGER, api::ROLE_WORKER);
  s.ctx.manager_status[2] = "Reachable";
  auto [st, resp] = s.Renew("m2");
  REQUIRE(st.ok());
  CHECK(resp.role() == api::ROLE_MANAGER);
  CHECK(s.ctx.proposals().empty());

  s.ctx.manager_status.clear();  // removed from the group
  std::tie(st, resp) = s.Renew("m2");
  REQUIRE(st.ok());
  CHECK(resp.role() == api::ROLE_WORKER);
  CHECK(pki::ParseCertificate(resp.cert_pem()).role == pki::kWorkerRole);
  CHECK(s.ctx.store().GetNode("m2")->role() == api::ROLE_WORKER);
}

TEST_CASE("ca: a node the swarm does not know gets no certificate", "[ca]") {
  Swarm s;
  auto [st, resp] = s.Renew("nobody");
  CHECK(st.code() == Code::kNotFound);
  CHECK(resp.cert_pem().empty());
}
