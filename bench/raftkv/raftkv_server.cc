// raftkv_server: a replicated key-value server built from exactly the parts a skep manager
// uses: the raft core and its driver (RaftNode), the gRPC raft transport over mutual TLS
// (GrpcRaftTransport, RaftService) and the RocksDB log (RocksStorage), with every write synced.
// Clients speak etcd's KV.Put and Maintenance.Status (proto/etcdkv.proto), so the same load
// generator drives it and etcd.
//
//   raftkv_server gencerts DIR N        a CA and manager certificates for members 1..N
//   raftkv_server --id N --peers 1=ip:port,2=ip:port,... --client-listen ip:port
//                 --data-dir DIR --certs DIR
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "daemon/common/pki.h"
#include "daemon/common/runtime.h"
#include "daemon/common/tls.h"
#include "daemon/manager/raft_transport.h"
#include "daemon/common/files.h"
#include "daemon/manager/raft_node.h"
#include "etcdkv.grpc.pb.h"
#include "raft/conf.h"
#include "raft/rocks_storage.h"

namespace asio = boost::asio;
using namespace skep;

namespace {

int GenCerts(const std::string& dir, int n) {
  const pki::KeyPair ca = pki::CreateRootCA();
  for (int i = 1; i <= n; ++i) {
    const pki::KeyAndRequest kr = pki::CreateKeyAndRequest();
    const std::string cert =
        pki::SignNodeCertificate(ca, kr.csr_pem, "raftkv-" + std::to_string(i), pki::kManagerRole,
                                 "raftkv", std::chrono::hours(24));
    const tls::Files f = tls::Files::In(dir + "/" + std::to_string(i));
    files::WriteAtomically(f.key, kr.key_pem, 0600);
    files::WriteAtomically(f.cert, cert, 0644);
    files::WriteAtomically(f.ca, ca.cert_pem, 0644);
  }
  return 0;
}

class KvStore final : public RaftStateMachine {
 public:
  void Apply(const raftpb::Entry& e) override {
    if (e.type() != raftpb::ENTRY_NORMAL || e.data().empty()) return;
    etcdserverpb::PutRequest put;
    if (!put.ParseFromString(e.data())) return;
    auto value = std::make_shared<const std::string>(std::move(*put.mutable_value()));
    std::lock_guard lock(mu_);
    data_[put.key()] = std::move(value);
    ++revision_;
  }
  // Values are shared, immutable strings: the view a snapshot takes is a copy of the map alone.
  std::function<std::string()> Snapshot() override {
    std::unique_lock lock(mu_);
    auto view = std::make_shared<Map>(data_);
    lock.unlock();
    return [view] {
      std::string out;
      for (const auto& [k, v] : *view) {
        etcdserverpb::PutRequest p;
        p.set_key(k);
        p.set_value(*v);
        const std::string rec = p.SerializeAsString();
        const uint32_t len = static_cast<uint32_t>(rec.size());
        out.append(reinterpret_cast<const char*>(&len), 4);
        out += rec;
      }
      return out;
    };
  }
  void Restore(const raftpb::Snapshot& s) override {
    std::lock_guard lock(mu_);
    data_.clear();
    const std::string& d = s.data();
    for (size_t pos = 0; pos + 4 <= d.size();) {
      uint32_t len = 0;
      std::memcpy(&len, d.data() + pos, 4);
      etcdserverpb::PutRequest p;
      p.ParseFromArray(d.data() + pos + 4, static_cast<int>(len));
      data_[p.key()] = std::make_shared<const std::string>(p.value());
      pos += 4 + len;
    }
  }
  int64_t revision() {
    std::lock_guard lock(mu_);
    return revision_;
  }

 private:
  using Map = std::unordered_map<std::string, std::shared_ptr<const std::string>>;
  std::mutex mu_;
  Map data_;
  int64_t revision_ = 0;
};

class KvService final : public etcdserverpb::KV::CallbackService {
 public:
  KvService(RaftNode* raft, KvStore* kv, uint64_t id) : raft_(raft), kv_(kv), id_(id) {}
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx,
                                const etcdserverpb::PutRequest* req,
                                etcdserverpb::PutResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    raft_->Propose(req->SerializeAsString(), [this, reactor, resp](const raft::Status& st) {
      if (!st.ok()) {
        reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, st.message()));
        return;
      }
      resp->mutable_header()->set_member_id(id_);
      resp->mutable_header()->set_revision(kv_->revision());
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

 private:
  RaftNode* raft_;
  KvStore* kv_;
  uint64_t id_;
};

class StatusService final : public etcdserverpb::Maintenance::CallbackService {
 public:
  StatusService(RaftNode* raft, uint64_t id) : raft_(raft), id_(id) {}
  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx,
                                   const etcdserverpb::StatusRequest*,
                                   etcdserverpb::StatusResponse* resp) override {
    const raft::NodeStatus st = raft_->GetStatus();
    resp->mutable_header()->set_member_id(id_);
    resp->set_leader(st.lead);
    resp->set_raftindex(st.commit);
    resp->set_raftterm(st.term);
    resp->set_version("skep-raftkv");
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  RaftNode* raft_;
  uint64_t id_;
};

}  // namespace

int main(int argc, char** argv) {
  ConfigureProcess();
  // Signals are taken by the main thread alone: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 3 && args[0] == "gencerts") return GenCerts(args[1], std::stoi(args[2]));
  std::map<std::string, std::string> flags;
  for (size_t i = 0; i + 1 < args.size(); i += 2)
    flags[args[i]] = args[i + 1];
  for (const char* f : {"--id", "--peers", "--client-listen", "--data-dir", "--certs"}) {
    if (!flags.count(f)) {
      std::cerr << "raftkv_server: missing " << f << "\n";
      return 2;
    }
  }
  const uint64_t id = std::stoull(flags["--id"]);
  std::map<uint64_t, std::string> peers;
  std::vector<uint64_t> ids;
  std::stringstream ss(flags["--peers"]);
  for (std::string item; std::getline(ss, item, ',');) {
    const size_t eq = item.find('=');
    const uint64_t pid = std::stoull(item.substr(0, eq));
    peers[pid] = item.substr(eq + 1);
    ids.push_back(pid);
  }
  const tls::Files certs = tls::Files::In(flags["--certs"] + "/" + std::to_string(id));

  auto storage = raft::RocksStorage::Open(flags["--data-dir"] + "/raft");
  if (storage->Empty()) storage->Bootstrap(raft::MakeConfState(ids));
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  manager::GrpcRaftTransport transport(io.get_executor(), tls::NodeCredentials(certs), id,
                                       peers[id]);
  for (const auto& [pid, addr] : peers) {
    if (pid != id) transport.SetPeer(pid, addr);
  }
  KvStore kv;
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&] { io.run(); });
  RaftNodeOptions o;
  o.raft.id = id;
  o.raft.seed = id;
  // The manager's defaults: a 50 ms clock, 100 ms heartbeats, 500 ms election timeout.
  o.tick = std::chrono::milliseconds(50);
  o.raft.heartbeat_tick = 2;
  o.raft.election_tick = 10;
  // Snapshots as often as etcd 3.4 takes them by default (--snapshot-count 100000).
  o.snapshot_every = 100000;
  o.snapshot_keep = 5000;
  RaftNode raft(io, o, storage.get(), &transport, &kv);
  raft.Start();

  manager::RaftService raft_service(&raft, &transport, nullptr, io.get_executor());
  grpc::ServerBuilder peer_builder;
  tls::ConfigureServer(peer_builder);
  peer_builder.AddListeningPort(peers[id], tls::ServerCredentials(certs));
  peer_builder.RegisterService(&raft_service);
  auto peer_server = peer_builder.BuildAndStart();

  KvService kv_service(&raft, &kv, id);
  StatusService status_service(&raft, id);
  grpc::ServerBuilder client_builder;
  client_builder.AddListeningPort(flags["--client-listen"], grpc::InsecureServerCredentials());
  client_builder.RegisterService(&kv_service);
  client_builder.RegisterService(&status_service);
  auto client_server = client_builder.BuildAndStart();
  if (!peer_server || !client_server) {
    std::cerr << "raftkv_server: cannot listen\n";
    return 1;
  }
  if (id == ids.front()) raft.Campaign();

  int sig = 0;
  sigwait(&signals, &sig);
  client_server->Shutdown();
  peer_server->Shutdown();
  raft.Stop();
  transport.Stop();
  guard.reset();
  io.stop();
  for (auto& t : threads)
    t.join();
  return 0;
}
