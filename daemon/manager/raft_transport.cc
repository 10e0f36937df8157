#include "daemon/manager/raft_transport.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <string>

#include "daemon/common/log.h"
#include "daemon/common/pki.h"
#include "daemon/common/tls.h"

namespace skep::manager {

namespace asio = boost::asio;

namespace {
constexpr size_t kMaxQueued = 8192;               // per lane
constexpr char kFromHeader[] = "skep-raft-from";  // "<raft id> <ip:port>"
// After a stream to a peer that was not there, the next is opened no sooner than this.
constexpr std::chrono::milliseconds kRetryPause{100};

// Appends and snapshot chunks carry the log (up to a megabyte each); everything else is small
// and says who leads: heartbeats, votes, acknowledgements.
bool Bulk(const raftpb::Message& m) {
  return m.type() == raftpb::MSG_APPEND || m.type() == raftpb::MSG_SNAPSHOT;
}
}  // namespace

struct GrpcRaftTransport::Endpoint {
  asio::any_io_executor executor;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  uint64_t self = 0;
  std::string self_addr;
};

// One of a peer's two streams and what waits for it: the log's (appends and snapshot chunks)
// or the small messages'. Under the peer's mu (the Peer's members are marked so; a Lane's and
// a Stream's own, reached through pointers, the analysis cannot tie to it).
struct GrpcRaftTransport::Lane {
  std::deque<raftpb::Message> queue;
  Stream* stream = nullptr;  // the open stream, if any
  // After a stream found nobody, the next is opened no sooner than this, by the timer.
  std::chrono::steady_clock::time_point retry_at;
  std::unique_ptr<asio::steady_timer> retry;  // armed while it waits

  bool WantsStream() const { return stream == nullptr && !queue.empty(); }
  // The stream is no longer this lane's; the caller then calls its Close outside mu.
  Stream* DetachLocked();
  // Moves the next queued message into the stream's write slot.
  bool NextLocked(Stream* s, grpc::WriteOptions* options);
};

// A peer and its streams. Streams and retry timers keep it (not the transport) alive.
struct GrpcRaftTransport::Peer : std::enable_shared_from_this<Peer> {
  Peer(uint64_t id, std::shared_ptr<const Endpoint> endpoint, std::string addr)
      : id(id), endpoint(std::move(endpoint)), addr(std::move(addr)) {}
  const uint64_t id;
  const std::shared_ptr<const Endpoint> endpoint;
  Mutex mu;
  std::string addr SKEP_GUARDED_BY(mu);
  bool stopped SKEP_GUARDED_BY(mu) = false;
  std::shared_ptr<grpc::Channel> channel SKEP_GUARDED_BY(mu);  // to addr, made on the first stream
  std::unique_ptr<raftpb::Raft::Stub> stub SKEP_GUARDED_BY(mu);
  Lane small SKEP_GUARDED_BY(mu), log SKEP_GUARDED_BY(mu);

  Lane& LaneFor(const raftpb::Message& m) SKEP_REQUIRES(mu) { return Bulk(m) ? log : small; }
  // A stream for `lane` if it wants one and may have one now, else a timer at its retry time.
  // The stream returned is to be started (Start) outside mu.
  Stream* MaybeOpenLocked(Lane& lane) SKEP_REQUIRES(mu);
  // Both lanes' streams, detached (to Close outside mu), and their timers cancelled.
  std::vector<Stream*> DetachAllLocked() SKEP_REQUIRES(mu);
};

// One client stream to a peer, for one lane. Writes start from whichever thread has a message
// when none is in flight (Send), or from the completion of the previous one (OnWriteDone). A
// hold keeps the stream (and so this object) alive while writes may still start from outside
// gRPC's callbacks. It is released exactly once: for a stream that was detached (an address
// change, a stop), once Close has cancelled the call and no write is in flight (whichever comes
// last releases); for a stream that broke while still the lane's, by the failed write. Then
// OnDone runs and the stream deletes itself.
class GrpcRaftTransport::Stream final : public grpc::ClientWriteReactor<raftpb::Message> {
 public:
  Stream(std::shared_ptr<Peer> peer, Lane* lane) : peer_(std::move(peer)), lane_(lane) {}

  grpc::ClientContext context;
  raftpb::StreamAck ack;
  raftpb::Message current;  // the message being written
  bool writing = false;     // under peer->mu: a write is in flight (or about to start)
  bool closing = false;     // under peer->mu: no longer the lane's stream; no new writes

  // Starts the call (outside peer->mu: gRPC may run callbacks inline), and the first write if
  // one was taken from the queue.
  void Start(bool write, const grpc::WriteOptions& options) {
    StartCall();
    if (write) Write(options);
  }

  // For a detached stream: cancels the call and lets it finish. Outside peer->mu. The hold
  // keeps this object alive until both this and the write in flight, if any, are done.
  void Close() {
    context.TryCancel();
    bool release;
    {
      MutexLock lock(peer_->mu);
      cancelled_ = true;
      release = !writing;
    }
    if (release) Release();
  }

  void OnWriteDone(bool ok) override {
    grpc::WriteOptions options;
    bool next = false;
    bool release = false;
    Stream* reopen = nullptr;
    grpc::WriteOptions reopen_options;
    bool reopen_write = false;
    {
      MutexLock lock(peer_->mu);
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
          reopen = peer_->MaybeOpenLocked(*lane_);
        } else {
          // The peer is not there: what is queued is stale by the time a new stream opens;
          // raft resends.
          lane_->queue.clear();
          lane_->retry_at = std::chrono::steady_clock::now() + kRetryPause;
        }
        if (reopen != nullptr) {
          reopen_write = reopen->writing;
          reopen_options = reopen->pending_options_;
        }
      } else {
        delivered_ = true;
        next = lane_->NextLocked(this, &options);
        writing = next;
      }
    }
    if (reopen != nullptr) reopen->Start(reopen_write, reopen_options);
    if (release) {
      Release();
    } else if (next) {
      Write(options);
    }
  }

  void OnDone(const grpc::Status& status) override {
    {
      MutexLock lock(peer_->mu);
      if (lane_->stream == this) lane_->stream = nullptr;
      if (!status.ok() && !peer_->stopped && status.error_code() != grpc::StatusCode::CANCELLED) {
        SKEP_LOG(debug, "raft", "stream to peer {} at {} ended: {}", peer_->id, peer_->addr,
                 status.error_message());
      }
    }
    delete this;
  }

  void Write(const grpc::WriteOptions& options) { StartWrite(&current, options); }

  grpc::WriteOptions pending_options_;  // under peer->mu: the first write's, until Start

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

GrpcRaftTransport::Stream* GrpcRaftTransport::Peer::MaybeOpenLocked(Lane& lane) {
  if (stopped || !lane.WantsStream() || addr.empty()) return nullptr;
  const auto now = std::chrono::steady_clock::now();
  if (now < lane.retry_at) {
    if (lane.retry) return nullptr;  // the timer opens it
    lane.retry = std::make_unique<asio::steady_timer>(endpoint->executor, lane.retry_at);
    lane.retry->async_wait(
        [self = shared_from_this(), lane = &lane](const boost::system::error_code& ec) {
          if (ec) return;
          Stream* s;
          bool write;
          grpc::WriteOptions options;
          {
            MutexLock lock(self->mu);
            lane->retry.reset();
            lane->retry_at = {};
            s = self->MaybeOpenLocked(*lane);
            if (s == nullptr) return;
            write = s->writing;
            options = s->pending_options_;
          }
          s->Start(write, options);
        });
    return nullptr;
  }
  if (!channel) {
    channel = grpc::CreateCustomChannel(addr, endpoint->credentials, tls::ChannelArgs());
    stub = raftpb::Raft::NewStub(channel);
  } else {
    // A peer that restarted is reconnected to at once, not after gRPC's growing backoff.
    grpc::experimental::ChannelResetConnectionBackoff(channel.get());
  }
  auto* s = new Stream(shared_from_this(), &lane);
  if (!endpoint->self_addr.empty()) {
    s->context.AddMetadata(kFromHeader, std::to_string(endpoint->self) + " " + endpoint->self_addr);
  }
  stub->async()->Stream(&s->context, &s->ack, s);
  s->AddHold();
  lane.stream = s;
  s->writing = lane.NextLocked(s, &s->pending_options_);
  return s;
}

std::vector<GrpcRaftTransport::Stream*> GrpcRaftTransport::Peer::DetachAllLocked() {
  std::vector<Stream*> out;
  for (Lane* lane : {&small, &log}) {
    if (Stream* s = lane->DetachLocked()) out.push_back(s);
    lane->retry.reset();  // cancels it: its handler finds no timer and ec set
    lane->retry_at = {};
  }
  return out;
}

GrpcRaftTransport::GrpcRaftTransport(asio::any_io_executor executor,
                                     std::shared_ptr<grpc::ChannelCredentials> credentials,
                                     uint64_t self, std::string self_addr)
    : endpoint_(std::make_shared<Endpoint>(
          Endpoint{std::move(executor), std::move(credentials), self, std::move(self_addr)})),
      started_(std::chrono::steady_clock::now()) {}

GrpcRaftTransport::~GrpcRaftTransport() {
  Stop();
}

void GrpcRaftTransport::Drop(std::shared_ptr<Peer> p) {
  std::vector<Stream*> closing;
  {
    MutexLock lock(p->mu);
    p->stopped = true;
    closing = p->DetachAllLocked();
    p->small.queue.clear();
    p->log.queue.clear();
  }
  for (Stream* s : closing)
    s->Close();
}

void GrpcRaftTransport::Stop() {
  std::map<uint64_t, std::shared_ptr<Peer>> peers;
  {
    MutexLock lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    peers.swap(peers_);
  }
  for (auto& [id, p] : peers)
    Drop(p);
}

void GrpcRaftTransport::SetPeer(uint64_t raft_id, const std::string& addr) {
  if (UpdatePeer(raft_id, addr) && on_peer_address_) on_peer_address_();
}

bool GrpcRaftTransport::UpdatePeer(uint64_t raft_id, const std::string& addr) {
  std::shared_ptr<Peer> p;
  {
    MutexLock lock(mu_);
    if (stopped_ || addr.empty()) return false;
    auto it = peers_.find(raft_id);
    if (it == peers_.end()) {
      peers_[raft_id] = std::make_shared<Peer>(raft_id, endpoint_, addr);
      return true;
    }
    p = it->second;
  }
  // A new address: the streams to the old one go, and the next messages open new ones.
  std::vector<Stream*> closing;
  {
    MutexLock lock(p->mu);
    if (p->addr == addr) return false;
    p->addr = addr;
    p->channel.reset();
    p->stub.reset();
    closing = p->DetachAllLocked();
  }
  for (Stream* s : closing)
    s->Close();
  return true;
}

void GrpcRaftTransport::RemovePeer(uint64_t raft_id) {
  std::shared_ptr<Peer> p;
  {
    MutexLock lock(mu_);
    auto it = peers_.find(raft_id);
    if (it == peers_.end()) return;
    p = it->second;
    peers_.erase(it);
  }
  Drop(p);
}

std::string GrpcRaftTransport::PeerAddr(uint64_t raft_id) const {
  std::shared_ptr<Peer> p;
  {
    MutexLock lock(mu_);
    auto it = peers_.find(raft_id);
    if (it == peers_.end()) return "";
    p = it->second;
  }
  MutexLock plock(p->mu);
  return p->addr;
}

void GrpcRaftTransport::Send(raftpb::Message m) {
  std::shared_ptr<Peer> p;
  {
    MutexLock lock(mu_);
    auto it = peers_.find(m.to());
    if (it == peers_.end()) return;
    p = it->second;
  }
  Stream* s = nullptr;  // the lane's idle stream, which writes this message
  Stream* opened = nullptr;
  bool write = false;
  grpc::WriteOptions options;
  {
    MutexLock lock(p->mu);
    if (p->stopped) return;
    Lane& lane = p->LaneFor(m);
    if (lane.queue.size() >= kMaxQueued) lane.queue.pop_front();  // raft resends what matters
    lane.queue.push_back(std::move(m));
    if (lane.stream == nullptr) {
      opened = p->MaybeOpenLocked(lane);
      if (opened != nullptr) {
        write = opened->writing;
        options = opened->pending_options_;
      }
    } else if (!lane.stream->writing) {
      s = lane.stream;
      s->writing = lane.NextLocked(s, &options);
      if (!s->writing) s = nullptr;
    }
  }
  // The hold stays while a write is in flight, so the stream outlives this call even if it is
  // closed meanwhile.
  if (opened != nullptr) {
    opened->Start(write, options);
  } else if (s != nullptr) {
    s->Write(options);
  }
}

void GrpcRaftTransport::Heard(uint64_t raft_id) {
  MutexLock lock(mu_);
  heard_[raft_id] = std::chrono::steady_clock::now();
}

std::vector<uint64_t> GrpcRaftTransport::Silent(const std::vector<uint64_t>& peers,
                                                std::chrono::milliseconds window) const {
  MutexLock lock(mu_);
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

// Steps each message into the node on the gRPC thread that read it, once the lookup of the
// peer has let the stream in (Admit) or refused it (Refuse).
class RaftService::Reader final : public grpc::ServerReadReactor<raftpb::Message> {
 public:
  explicit Reader(RaftService* service) : service_(service) {}
  void Admit(bool known, uint64_t raft_id) {
    known_ = known;
    raft_id_ = raft_id;
    StartRead(&m_);
  }
  void Refuse(grpc::Status status) { Finish(std::move(status)); }
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
  bool known_ = false;
  uint64_t raft_id_ = 0;
  raftpb::Message m_;
};

grpc::ServerReadReactor<raftpb::Message>* RaftService::Stream(grpc::CallbackServerContext* context,
                                                              raftpb::StreamAck*) {
  auto* reader = new Reader(this);
  const tls::Peer peer = tls::PeerOf(*context);
  if (!peer.has_certificate || peer.role != pki::kManagerRole) {
    reader->Refuse(
        {grpc::StatusCode::PERMISSION_DENIED, "raft traffic needs a manager certificate"});
    return reader;
  }
  std::string announced;  // "<raft id> <address>", if the peer sent it
  auto from = context->client_metadata().find(kFromHeader);
  if (from != context->client_metadata().end())
    announced.assign(from->second.data(), from->second.size());
  asio::post(lookup_executor_, [this, reader, node_id = peer.node_id, announced] {
    const RaftPeerCheck check = lookup_ ? lookup_(node_id) : RaftPeerCheck{};
    if (check.verdict == RaftPeerCheck::Verdict::kNotManager) {
      reader->Refuse({grpc::StatusCode::PERMISSION_DENIED,
                      "node " + node_id + " is not a manager of this swarm any more"});
      return;
    }
    const bool known = check.verdict == RaftPeerCheck::Verdict::kManager;
    const size_t space = announced.find(' ');
    if (space != std::string::npos) {
      try {
        const uint64_t id = std::stoull(announced.substr(0, space));
        if (!known || id == check.raft_id) transport_->SetPeer(id, announced.substr(space + 1));
      } catch (const std::exception&) {
        // a malformed announcement is ignored; the address comes from the store then
      }
    }
    reader->Admit(known, check.raft_id);
  });
  return reader;
}

}  // namespace skep::manager
