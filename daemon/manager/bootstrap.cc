#include "daemon/manager/bootstrap.h"

#include "daemon/common/pki.h"
#include "daemon/manager/allocator/networks.h"
#include "daemon/manager/defaults.h"

namespace skep::manager {

std::vector<api::StoreAction> NewSwarm::Objects() const {
  std::vector<api::StoreAction> out;
  auto add = [&](auto set) {
    api::StoreAction a;
    a.set_kind(api::StoreAction::CREATE);
    set(a);
    out.push_back(std::move(a));
  };
  add([&](api::StoreAction& a) { *a.mutable_cluster() = cluster; });
  add([&](api::StoreAction& a) { *a.mutable_node() = node; });
  for (const auto& n : networks)
    add([&](api::StoreAction& a) { *a.mutable_network() = n; });
  return out;
}

Status Bootstrap(const api::InitRequest& req, const std::string& node_id, uint64_t raft_id,
                 const std::string& advertise_addr, const api::NodeDescription& description,
                 int64_t now_ns, NewSwarm* out) {
  api::Cluster& cluster = out->cluster;
  auto* pools = cluster.mutable_spec()->mutable_networks();
  for (const auto& p : req.default_addr_pool())
    pools->add_default_addr_pool(p);
  pools->set_subnet_size(req.default_addr_pool_mask_length());
  if (req.data_path_port() != 0 && (req.data_path_port() < 1024 || req.data_path_port() > 49151)) {
    return InvalidArgument("the data path port must be within 1024 - 49151, not " +
                           std::to_string(req.data_path_port()));
  }
  pools->set_data_path_port(req.data_path_port());
  // The first gossip key; the leader rotates them.
  auto* k = cluster.add_network_keys();
  k->set_key(pki::RandomBytes(32));
  k->set_created_ns(now_ns);
  // The swarm starts with the routing mesh's network, as Docker's does.
  api::Network ingress;
  api::NetworkSpec spec;
  spec.set_name("ingress");
  spec.set_ingress(true);
  if (std::string why = allocator::CheckPools(*pools); !why.empty()) return InvalidArgument(why);
  if (Status st = allocator::AllocateNetwork(spec, {}, *pools, &ingress); !st.ok()) return st;
  ingress.set_id(pki::RandomId());
  out->networks = {ingress};

  const std::string cluster_id = pki::RandomId();
  try {
    const pki::KeyPair ca = pki::CreateRootCA();
    const std::string digest = pki::CertificateDigest(ca.cert_pem);
    cluster.set_id(cluster_id);
    cluster.mutable_spec()->set_name("default");
    cluster.mutable_spec()->mutable_raft()->set_heartbeat_period_ms(kRaftHeartbeatMs);
    cluster.mutable_spec()->mutable_raft()->set_election_timeout_ms(kElectionTimeoutMs);
    cluster.mutable_spec()->mutable_dispatcher()->set_heartbeat_period_ms(kDispatcherHeartbeatMs);
    cluster.mutable_spec()->mutable_ca()->set_node_cert_expiry_s(kNodeCertExpiryS);
    auto* root = cluster.mutable_root_ca();
    root->set_cert_pem(ca.cert_pem);
    root->set_key_pem(ca.key_pem);
    root->set_digest(digest);
    root->mutable_join_tokens()->set_worker(pki::NewJoinToken(digest));
    root->mutable_join_tokens()->set_manager(pki::NewJoinToken(digest));
    const pki::KeyAndRequest kr = pki::CreateKeyAndRequest();
    out->node_key_pem = kr.key_pem;
    out->node_cert_pem = pki::SignNodeCertificate(ca, kr.csr_pem, node_id, pki::kManagerRole,
                                                  cluster_id,
                                                  std::chrono::seconds(kNodeCertExpiryS));
    out->ca_cert_pem = ca.cert_pem;
  } catch (const std::exception& e) {
    return Internal(std::string("cannot create the swarm's CA: ") + e.what());
  }

  api::Node& self = out->node;
  self.set_id(node_id);
  self.mutable_spec()->set_desired_role(api::ROLE_MANAGER);
  self.mutable_spec()->set_availability(api::AVAILABILITY_ACTIVE);
  *self.mutable_description() = description;
  self.mutable_status()->set_state(api::NODE_STATE_UNKNOWN);
  self.set_role(api::ROLE_MANAGER);
  self.set_raft_id(raft_id);
  self.set_advertise_addr(advertise_addr);
  return Status::Ok();
}

}  // namespace skep::manager
