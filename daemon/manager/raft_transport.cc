#include "daemon/manager/raft_transport.h"

#include "daemon/common/log.h"
#include "daemon/common/pki.h"
#include "daemon/common/tls.h"

namespace skep::manager {

namespace {
constexpr size_t kMaxQueued = 8192;
constexpr char kFromHeader[] = "skep-raft-from";  // "<raft id> <ip:port>"
}  // namespace

struct GrpcRaftTransport::Peer {
  uint64_t id = 0;
  std::string addr;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<raftpb::Message> queue;
  bool stop = false;
  bool addr_changed = false;
  std::unique_ptr<grpc::ClientContext> context;  // of the open stream, to cancel it
  std::thread thread;
};

GrpcRaftTransport::GrpcRaftTransport(std::shared_ptr<grpc::ChannelCredentials> credentials,
                                     uint64_t self, std::string self_addr)
    : credentials_(std::move(credentials)), self_(self), self_addr_(std::move(self_addr)) {}

GrpcRaftTransport::~GrpcRaftTransport() {
  Stop();
}

void GrpcRaftTransport::Stop() {
  std::map<uint64_t, std::shared_ptr<Peer>> peers;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    peers.swap(peers_);
  }
  for (auto& [id, p] : peers) {
    {
      std::lock_guard lock(p->mu);
      p->stop = true;
      if (p->context) p->context->TryCancel();
    }
    p->cv.notify_all();
  }
  for (auto& [id, p] : peers)
    p->thread.join();
}

void GrpcRaftTransport::SetPeer(uint64_t raft_id, const std::string& addr) {
  std::lock_guard lock(mu_);
  if (stopped_ || addr.empty()) return;
  auto it = peers_.find(raft_id);
  if (it != peers_.end()) {
    Peer& p = *it->second;
    std::lock_guard plock(p.mu);
    if (p.addr != addr) {
      p.addr = addr;
      p.addr_changed = true;
      if (p.context) p.context->TryCancel();
      p.cv.notify_all();
    }
    return;
  }
  auto p = std::make_shared<Peer>();
  p->id = raft_id;
  p->addr = addr;
  peers_[raft_id] = p;
  p->thread = std::thread([this, p] { Run(p); });
}

void GrpcRaftTransport::RemovePeer(uint64_t raft_id) {
  std::shared_ptr<Peer> p;
  {
    std::lock_guard lock(mu_);
    auto it = peers_.find(raft_id);
    if (it == peers_.end()) return;
    p = it->second;
    peers_.erase(it);
  }
  {
    std::lock_guard lock(p->mu);
    p->stop = true;
    if (p->context) p->context->TryCancel();
  }
  p->cv.notify_all();
  p->thread.join();
}

std::string GrpcRaftTransport::PeerAddr(uint64_t raft_id) const {
  std::lock_guard lock(mu_);
  auto it = peers_.find(raft_id);
  if (it == peers_.end()) return "";
  std::lock_guard plock(it->second->mu);
  return it->second->addr;
}

void GrpcRaftTransport::Send(raftpb::Message m) {
  std::shared_ptr<Peer> p;
  {
    std::lock_guard lock(mu_);
    auto it = peers_.find(m.to());
    if (it == peers_.end()) return;
    p = it->second;
  }
  {
    std::lock_guard lock(p->mu);
    if (p->queue.size() >= kMaxQueued) p->queue.pop_front();  // raft resends what matters
    p->queue.push_back(std::move(m));
  }
  p->cv.notify_one();
}

void GrpcRaftTransport::Heard(uint64_t raft_id) {
  std::lock_guard lock(mu_);
  heard_[raft_id] = std::chrono::steady_clock::now();
}

std::vector<uint64_t> GrpcRaftTransport::Silent(const std::vector<uint64_t>& peers,
                                                std::chrono::milliseconds window) const {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  std::vector<uint64_t> out;
  for (uint64_t id : peers) {
    auto it = heard_.find(id);
    if (it == heard_.end() || now - it->second > window) out.push_back(id);
  }
  return out;
}

void GrpcRaftTransport::Run(std::shared_ptr<Peer> p) {
  std::string addr;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<raftpb::Raft::Stub> stub;
  for (;;) {
    {
      std::unique_lock lock(p->mu);
      p->cv.wait(lock, [&] { return p->stop || !p->queue.empty(); });
      if (p->stop) return;
      if (!channel || p->addr_changed) {
        addr = p->addr;
        p->addr_changed = false;
        channel.reset();
      }
    }
    if (!channel) {
      channel = grpc::CreateCustomChannel(addr, credentials_, tls::ChannelArgs());
      stub = raftpb::Raft::NewStub(channel);
    } else {
      // A peer that restarted is reconnected to at once, not after gRPC's growing backoff.
      grpc::experimental::ChannelResetConnectionBackoff(channel.get());
    }
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!self_addr_.empty())
      ctx->AddMetadata(kFromHeader, std::to_string(self_) + " " + self_addr_);
    grpc::ClientContext* raw = ctx.get();
    {
      std::lock_guard lock(p->mu);
      if (p->stop) return;
      p->context = std::move(ctx);
    }
    raftpb::StreamAck ack;
    auto writer = stub->Stream(raw, &ack);
    bool ok = true;
    while (ok) {
      std::deque<raftpb::Message> batch;
      {
        std::unique_lock lock(p->mu);
        p->cv.wait(lock, [&] { return p->stop || p->addr_changed || !p->queue.empty(); });
        if (p->stop || p->addr_changed) break;
        batch.swap(p->queue);
      }
      for (size_t i = 0; i < batch.size() && ok; ++i) {
        grpc::WriteOptions wo;
        if (i + 1 < batch.size()) wo.set_buffer_hint();  // coalesce the batch into few frames
        ok = writer->Write(batch[i], wo);
      }
    }
    writer->WritesDone();
    grpc::Status st = writer->Finish();
    {
      std::lock_guard lock(p->mu);
      p->context.reset();
      if (p->stop) return;
    }
    if (!ok) {
      SKEP_LOG(debug, "raft", "stream to peer {} at {} broke: {}", p->id, addr, st.error_message());
      // Messages queued meanwhile are stale by the time the peer is back; raft resends.
      std::unique_lock lock(p->mu);
      p->queue.clear();
      p->cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return p->stop; });
    }
  }
}

grpc::Status RaftService::Stream(grpc::ServerContext* context,
                                 grpc::ServerReader<raftpb::Message>* reader, raftpb::StreamAck*) {
  const tls::Peer peer = tls::PeerOf(*context);
  if (!peer.has_certificate || peer.role != pki::kManagerRole) {
    return {grpc::StatusCode::PERMISSION_DENIED, "raft traffic needs a manager certificate"};
  }
  const RaftPeerCheck check = lookup_ ? lookup_(peer.node_id) : RaftPeerCheck{};
  if (check.verdict == RaftPeerCheck::Verdict::kNotManager) {
    return {grpc::StatusCode::PERMISSION_DENIED,
            "node " + peer.node_id + " is not a manager of this swarm any more"};
  }
  const bool known = check.verdict == RaftPeerCheck::Verdict::kManager;
  auto from = context->client_metadata().find(kFromHeader);
  if (from != context->client_metadata().end()) {
    const std::string v(from->second.data(), from->second.size());
    const size_t space = v.find(' ');
    if (space != std::string::npos) {
      try {
        const uint64_t id = std::stoull(v.substr(0, space));
        if (!known || id == check.raft_id) transport_->SetPeer(id, v.substr(space + 1));
      } catch (const std::exception&) {
        // a malformed announcement is ignored; the address comes from the store then
      }
    }
  }
  raftpb::Message m;
  while (reader->Read(&m)) {
    if (known && m.from() != check.raft_id) continue;  // speaking for another member
    transport_->Heard(m.from());
    node_->Step(std::move(m));
    m = raftpb::Message();
  }
  return grpc::Status::OK;
}

}  // namespace skep::manager
