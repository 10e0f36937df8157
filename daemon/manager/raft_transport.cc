#include "daemon/manager/raft_transport.h"

#include <algorithm>
#include <string>

#include <pthread.h>

#include "daemon/common/log.h"
#include "daemon/common/pki.h"
#include "daemon/common/tls.h"

namespace skep::manager {

namespace {
constexpr size_t kMaxQueued = 8192;  // per lane
constexpr char kFromHeader[] = "skep-raft-from";  // "<raft id> <ip:port>"

// Appends and snapshot chunks carry the log (up to a megabyte each); everything else is small
// and says who leads: heartbeats, votes, acknowledgements.
bool Bulk(const raftpb::Message& m) {
  return m.type() == raftpb::MSG_APPEND || m.type() == raftpb::MSG_SNAPSHOT;
}
}  // namespace

// One of a peer's two streams and what waits for it: the log's (appends and snapshot chunks)
// or the small messages'. Under the peer's mu.
struct GrpcRaftTransport::Lane {
  std::deque<raftpb::Message> queue;
  Stream* stream = nullptr;  // the open stream, if any
  int streams = 0;           // streams whose OnDone has not run yet
  // After a stream breaks, the next is opened no sooner than this.
  std::chrono::steady_clock::time_point retry_at;

  bool WantsStream() const { return stream == nullptr && !queue.empty(); }
  // The stream is no longer this lane's; the caller then calls its Close outside mu.
  Stream* DetachLocked();
  // Moves the next queued message into the stream's write slot.
  bool NextLocked(Stream* s, grpc::WriteOptions* options);
};

struct GrpcRaftTransport::Peer {
  uint64_t id = 0;
  std::string addr;
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  bool addr_changed = false;
  Lane small, log;
  std::thread thread;

  Lane& LaneFor(const raftpb::Message& m) { return Bulk(m) ? log : small; }
};

// One client stream to a peer, for one lane. Writes start from whichever thread has a message
// when none is in flight (Send), or from the completion of the previous one (OnWriteDone). A
// hold keeps the stream (and so this object) alive while writes may still start from outside
// gRPC's callbacks. It is released exactly once: for a stream the peer's thread took away
// (detached), once Close has cancelled the call and no write is in flight (whichever comes last
// releases); for a stream that broke while still the lane's, by the failed write. Then OnDone
// runs and the stream deletes itself.
class GrpcRaftTransport::Stream final : public grpc::ClientWriteReactor<raftpb::Message> {
 public:
  Stream(std::shared_ptr<Peer> peer, Lane* lane) : peer_(std::move(peer)), lane_(lane) {}

  grpc::ClientContext context;
  raftpb::StreamAck ack;
  raftpb::Message current;  // the message being written
  bool writing = false;     // under peer->mu: a write is in flight (or about to start)
  bool closing = false;     // under peer->mu: no longer the lane's stream; no new writes

  // For a detached stream: cancels the call and lets it finish. Outside peer->mu: gRPC may run
  // callbacks inline. The hold keeps this object alive until both this and the write in flight,
  // if any, are done.
  void Close() {
    context.TryCancel();
    bool release;
    {
      std::lock_guard lock(peer_->mu);
      cancelled_ = true;
      release = !writing;
    }
    if (release) Release();
  }

  void OnWriteDone(bool ok) override {
    grpc::WriteOptions options;
    bool next = false;
    bool release = false;
    {
      std::lock_guard lock(peer_->mu);
      if (closing) {
        writing = false;
        release = cancelled_;  // else Close releases once it has cancelled
      } else if (!ok) {
        // Broken while still the lane's stream (not closing means lane->stream is this one):
        // it detaches itself and releases the hold.
        writing = false;
        closing = true;
        release = true;
        lane_->stream = nullptr;
        if (delivered_) {
          // A stream that worked broke (the peer restarted, say: its end of an idle stream is
          // gone). The message goes again at once on a new one, with what is queued: it may
          // be the vote request an election waits for.
          lane_->queue.push_front(std::move(current));
          peer_->cv.notify_all();
        } else {
          // The peer is not there: what is queued is stale by the time a new stream opens;
          // raft resends.
          lane_->queue.clear();
          lane_->retry_at = std::chrono::steady_clock::now() + kRetryPause;
        }
      } else {
        delivered_ = true;
        next = lane_->NextLocked(this, &options);
        writing = next;
      }
    }
    if (release) {
      Release();
    } else if (next) {
      Write(options);
    }
  }

  void OnDone(const grpc::Status& status) override {
    {
      std::lock_guard lock(peer_->mu);
      if (lane_->stream == this) lane_->stream = nullptr;
      if (!status.ok() && !peer_->stop && status.error_code() != grpc::StatusCode::CANCELLED) {
        SKEP_LOG(debug, "raft", "stream to peer {} at {} ended: {}", peer_->id, peer_->addr,
                 status.error_message());
      }
      --lane_->streams;
      peer_->cv.notify_all();
    }
    delete this;
  }

  void Write(const grpc::WriteOptions& options) { StartWrite(&current, options); }

  static constexpr std::chrono::milliseconds kRetryPause{100};

 private:
  void Release() {
    if (!released_.exchange(true)) RemoveHold();
  }
  std::shared_ptr<Peer> peer_;
  Lane* lane_;  // one of peer_'s
  std::atomic<bool> released_{false};
  bool delivered_ = false;  // under peer->mu: a write went through
  bool cancelled_ = false;  // under peer->mu: Close has cancelled the call
};

GrpcRaftTransport::Stream* GrpcRaftTransport::Lane::DetachLocked() {
  Stream* s = stream;
  if (s == nullptr) return nullptr;
  stream = nullptr;
  s->closing = true;
  return s;
}

bool GrpcRaftTransport::Lane::NextLocked(Stream* s, grpc::WriteOptions* options) {
  if (queue.empty()) return false;
  s->current = std::move(queue.front());
  queue.pop_front();
  // More to come at once: let gRPC gather them into fewer frames; the last one flushes.
  if (!queue.empty()) options->set_buffer_hint();
  return true;
}

GrpcRaftTransport::GrpcRaftTransport(std::shared_ptr<grpc::ChannelCredentials> credentials,
                                     uint64_t self, std::string self_addr)
    : credentials_(std::move(credentials)),
      self_(self),
      self_addr_(std::move(self_addr)),
      started_(std::chrono::steady_clock::now()) {}

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
      p.cv.notify_all();
    }
    return;
  }
  auto p = std::make_shared<Peer>();
  p->id = raft_id;
  p->addr = addr;
  peers_[raft_id] = p;
  p->thread = std::thread([this, p] {
    pthread_setname_np(pthread_self(), ("raft-peer-" + std::to_string(p->id % 100000)).c_str());
    Run(p);
  });
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
  Stream* s = nullptr;
  grpc::WriteOptions options;
  {
    std::lock_guard lock(p->mu);
    Lane& lane = p->LaneFor(m);
    if (lane.queue.size() >= kMaxQueued) lane.queue.pop_front();  // raft resends what matters
    lane.queue.push_back(std::move(m));
    if (lane.stream == nullptr) {
      p->cv.notify_one();  // the peer's thread opens a stream
    } else if (!lane.stream->writing) {
      s = lane.stream;
      s->writing = lane.NextLocked(s, &options);
    }
  }
  // The hold stays while a write is in flight, so the stream outlives this call even if it is
  // closed meanwhile.
  if (s) s->Write(options);
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
    // A peer not heard from yet is silent only once this manager has been up long enough to
    // hear from it: right after a restart every peer is unheard of, not unreachable.
    auto it = heard_.find(id);
    const auto last = it == heard_.end() ? started_ : it->second;
    if (now - last > window) out.push_back(id);
  }
  return out;
}

void GrpcRaftTransport::Run(std::shared_ptr<Peer> p) {
  std::string addr;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<raftpb::Raft::Stub> stub;
  Lane* const lanes[] = {&p->small, &p->log};
  std::unique_lock lock(p->mu);
  // Both lanes' streams are closed (outside mu) and forgotten.
  auto detach_all = [&] {
    for (Lane* lane : lanes) {
      if (Stream* old = lane->DetachLocked()) {
        lock.unlock();
        old->Close();
        lock.lock();
      }
    }
  };
  for (;;) {
    p->cv.wait(lock, [&] {
      return p->stop || p->addr_changed || p->small.WantsStream() || p->log.WantsStream();
    });
    if (p->stop) break;
    if (p->addr_changed) {
      p->addr_changed = false;
      channel.reset();
      detach_all();
      continue;
    }
    // A lane whose last stream found nobody waits a little before the next attempt; the
    // other may open meanwhile.
    auto ready = [&]() -> Lane* {
      const auto now = std::chrono::steady_clock::now();
      for (Lane* l : lanes) {
        if (l->WantsStream() && now >= l->retry_at) return l;
      }
      return nullptr;
    };
    Lane* lane = ready();
    if (lane == nullptr) {
      auto next_try = std::chrono::steady_clock::time_point::max();
      for (Lane* l : lanes) {
        if (l->WantsStream()) next_try = std::min(next_try, l->retry_at);
      }
      p->cv.wait_until(lock, next_try,
                       [&] { return p->stop || p->addr_changed || ready() != nullptr; });
      continue;
    }
    if (!channel) addr = p->addr;
    lock.unlock();
    if (!channel) {
      channel = grpc::CreateCustomChannel(addr, credentials_, tls::ChannelArgs());
      stub = raftpb::Raft::NewStub(channel);
    } else {
      // A peer that restarted is reconnected to at once, not after gRPC's growing backoff.
      grpc::experimental::ChannelResetConnectionBackoff(channel.get());
    }
    auto* s = new Stream(p, lane);
    if (!self_addr_.empty())
      s->context.AddMetadata(kFromHeader, std::to_string(self_) + " " + self_addr_);
    stub->async()->Stream(&s->context, &s->ack, s);
    s->AddHold();
    grpc::WriteOptions options;
    lock.lock();
    ++lane->streams;
    lane->stream = s;
    s->writing = lane->NextLocked(s, &options);
    const bool write = s->writing;
    lock.unlock();
    s->StartCall();
    if (write) s->Write(options);
    lock.lock();
  }
  // Stopping: close the open streams and wait until every stream has finished, since they use
  // this peer.
  detach_all();
  if (!p->cv.wait_for(lock, std::chrono::seconds(5),
                      [&] { return p->small.streams == 0 && p->log.streams == 0; })) {
    SKEP_LOG(warn, "raft", "stream to peer {} did not finish", p->id);
  }
}

namespace {
// Answers a stream it refuses at once.
class Refusal final : public grpc::ServerReadReactor<raftpb::Message> {
 public:
  explicit Refusal(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};
}  // namespace

// Steps each message into the node on the gRPC thread that read it.
class RaftService::Reader final : public grpc::ServerReadReactor<raftpb::Message> {
 public:
  Reader(RaftService* service, bool known, uint64_t raft_id)
      : service_(service), known_(known), raft_id_(raft_id) {
    StartRead(&m_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    if (!known_ || m_.from() == raft_id_) {  // else speaking for another member: dropped
      service_->transport_->Heard(m_.from());
      service_->node_->Step(std::move(m_));
    }
    m_ = raftpb::Message();
    StartRead(&m_);
  }
  void OnDone() override { delete this; }

 private:
  RaftService* service_;
  bool known_;
  uint64_t raft_id_;
  raftpb::Message m_;
};

grpc::ServerReadReactor<raftpb::Message>* RaftService::Stream(grpc::CallbackServerContext* context,
                                                              raftpb::StreamAck*) {
  const tls::Peer peer = tls::PeerOf(*context);
  if (!peer.has_certificate || peer.role != pki::kManagerRole) {
    return new Refusal(
        {grpc::StatusCode::PERMISSION_DENIED, "raft traffic needs a manager certificate"});
  }
  const RaftPeerCheck check = lookup_ ? lookup_(peer.node_id) : RaftPeerCheck{};
  if (check.verdict == RaftPeerCheck::Verdict::kNotManager) {
    return new Refusal({grpc::StatusCode::PERMISSION_DENIED,
                        "node " + peer.node_id + " is not a manager of this swarm any more"});
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
  return new Reader(this, known, check.raft_id);
}

}  // namespace skep::manager
