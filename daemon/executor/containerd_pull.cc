// Pull and unpack, as containerd's own client does it (pull.go, unpacker.go):
//   1. resolve the reference at the registry (unless a digest reference is already here);
//   2. under a lease (so that GC leaves half-pulled content alone), walk index -> manifest for
//      this platform -> config and layers, writing every blob that is missing through
//      Content.Write with refs "index-/manifest-/config-/layer-<digest>";
//   3. unpack each layer whose snapshot (named by its chain ID) is missing: Prepare
//      "extract-<unique> <chainID>" on the parent chain, Diff.Apply the layer, Commit;
//   4. set the GC labels that keep the tree alive from the image record (index -> manifest ->
//      config and layers, config -> top snapshot), create or update the image, drop the lease.
#include <fmt/format.h>

#include <random>
#include <thread>

#include "daemon/executor/containerd_internal.h"
#include "daemon/executor/errors.h"
#include "daemon/executor/image_ref.h"
#include "daemon/executor/manifest.h"
#include "daemon/executor/registry.h"

namespace skep::executor {
namespace {

using Labels = std::map<std::string, std::string>;
using Impl = Containerd::Impl;

constexpr std::chrono::seconds kShortCall{30};
constexpr std::chrono::seconds kLongCall{3600};  // a layer download or unpack
constexpr size_t kChunk = 1 << 20;               // containerd's own write size
constexpr int64_t kMaxConfigBytes = 8 << 20;

std::string Unique() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}", rng());
}

std::string HumanBytes(int64_t n) {
  if (n < 1000) return fmt::format("{}B", n);
  if (n < 1000 * 1000) return fmt::format("{:.1f}kB", n / 1e3);
  if (n < 1000LL * 1000 * 1000) return fmt::format("{:.1f}MB", n / 1e6);
  return fmt::format("{:.2f}GB", n / 1e9);
}

::containerd::types::Descriptor ToProto(const Descriptor& d) {
  ::containerd::types::Descriptor p;
  p.set_media_type(d.media_type);
  p.set_digest(d.digest);
  p.set_size(d.size);
  return p;
}

// One Content.Write stream: STAT (which tells whether the blob exists or how much of it is
// already ingested), WRITE chunks at the current offset, COMMIT with the expected digest.
class ContentWriter {
 public:
  ContentWriter(Impl& impl, const std::string& lease, std::string ref, Descriptor desc)
      : impl_(impl), lease_(lease), ref_(std::move(ref)), desc_(std::move(desc)) {}
  ~ContentWriter() {
    if (stream_ && !finished_) ctx_->TryCancel();
  }

  // False when the blob is already in the store (now also held by our lease).
  bool Open() {
    // Another client may hold the ref's ingest lock ("ref ... locked"): back off and retry,
    // bounded (about 15 s), as containerd's own client does.
    auto backoff = std::chrono::milliseconds(50);
    for (int attempt = 0;; ++attempt) {
      stream_.reset();  // the previous attempt's (finished) stream goes before its context
      ctx_ = impl_.Context(kLongCall, lease_);
      stream_ = impl_.content->Write(ctx_.get());
      finished_ = false;
      cdapi::content::WriteContentRequest req;
      req.set_action(cdapi::content::STAT);
      req.set_ref(ref_);
      req.set_total(desc_.size);
      req.set_expected(desc_.digest);
      cdapi::content::WriteContentResponse resp;
      if (stream_->Write(req) && stream_->Read(&resp)) {
        offset_ = resp.offset();
        return true;
      }
      grpc::Status s = Finish();
      if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS) return false;
      bool locked = s.error_code() == grpc::StatusCode::UNAVAILABLE &&
                    s.error_message().find("locked") != std::string::npos;
      if (!locked || attempt >= 20) impl_.Fail("Content.Write", ref_, s);
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
    }
  }

  int64_t offset() const { return offset_ + static_cast<int64_t>(buffer_.size()); }

  // `at` is the blob offset of `data`: the current end, or 0 to start the ingest over.
  void Write(int64_t at, std::string_view data) {
    if (at != offset()) {
      if (at != 0)
        throw ExecutorError(
            ErrorKind::kFailed,
            fmt::format("blob {}: got data at {}, want it at {}", desc_.digest, at, offset()));
      buffer_.clear();
      offset_ = 0;  // a WRITE at offset 0 truncates the ingest
    }
    buffer_.append(data);
    if (buffer_.size() >= kChunk) Flush();
  }

  void Commit(const Labels& labels) {
    Flush();
    cdapi::content::WriteContentRequest req;
    req.set_action(cdapi::content::COMMIT);
    req.set_total(desc_.size);
    req.set_offset(offset_);
    req.set_expected(desc_.digest);
    for (const auto& [k, v] : labels)
      (*req.mutable_labels())[k] = v;
    cdapi::content::WriteContentResponse resp = Send(req);
    if (resp.digest() != desc_.digest)
      throw ExecutorError(
          ErrorKind::kFailed,
          fmt::format("containerd Content.Write {}: committed digest {}", ref_, resp.digest()));
    stream_->WritesDone();
    // The server answers a commit twice (once in its loop, once on the way out); gRPC's Finish
    // waits for every message to be read.
    while (stream_->Read(&resp)) {
    }
    grpc::Status s = Finish();
    if (!s.ok() && s.error_code() != grpc::StatusCode::ALREADY_EXISTS)
      impl_.Fail("Content.Write", ref_, s);
  }

 private:
  void Flush() {
    if (buffer_.empty()) return;
    cdapi::content::WriteContentRequest req;
    req.set_action(cdapi::content::WRITE);
    req.set_offset(offset_);
    req.set_data(buffer_);
    int64_t want = offset_ + static_cast<int64_t>(buffer_.size());
    cdapi::content::WriteContentResponse resp = Send(req);
    if (resp.offset() != want)
      throw ExecutorError(
          ErrorKind::kFailed,
          fmt::format("containerd Content.Write {}: offset {} after a write, want {}", ref_,
                      resp.offset(), want));
    offset_ = want;
    buffer_.clear();
  }

  cdapi::content::WriteContentResponse Send(const cdapi::content::WriteContentRequest& req) {
    cdapi::content::WriteContentResponse resp;
    if (stream_->Write(req) && stream_->Read(&resp)) return resp;
    impl_.Fail("Content.Write", ref_, Finish());
  }

  grpc::Status Finish() {
    finished_ = true;
    grpc::Status s = stream_->Finish();
    return s;
  }

  Impl& impl_;
  const std::string& lease_;
  std::string ref_;
  Descriptor desc_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<cdapi::content::WriteContentRequest,
                                           cdapi::content::WriteContentResponse>>
      stream_;
  bool finished_ = false;
  int64_t offset_ = 0;  // what containerd has
  std::string buffer_;  // what it will get next, at offset_
};

// The image's tree as far as it is walked.
struct Tree {
  Descriptor target;
  std::optional<size_t> chosen;  // position of the platform manifest in the index
  Descriptor manifest_desc;
  Manifest manifest;
  ImageInfo info;
  std::vector<std::string> diff_ids;
  std::vector<std::string> chain;
};

class Puller {
 public:
  Puller(Impl& impl, Registry& registry, ImageRef ref, const PullProgress& progress)
      : impl_(impl), registry_(registry), ref_(std::move(ref)), progress_(progress) {}

  // The image as it is, when containerd has all of it: an image record with `target_digest`
  // as its target, or (for a digest reference) the content and snapshots under another name,
  // in which case the record is added.
  std::optional<ImageInfo> Local(const std::string& target_digest) {
    cdapi::images::GetImageRequest req;
    req.set_name(ref_.String());
    cdapi::images::GetImageResponse resp;
    auto ctx = impl_.Context(kShortCall);
    grpc::Status s = impl_.images->Get(ctx.get(), req, &resp);
    if (!s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND)
      impl_.Fail("Images.Get", req.name(), s);
    try {
      Descriptor target;
      bool save = false;
      if (s.ok()) {
        const auto& t = resp.image().target();
        if (t.digest() != target_digest) return std::nullopt;
        target = {t.media_type(), t.digest(), t.size()};
      } else if (target_digest == ref_.digest) {
        std::string bytes = Small({"", ref_.digest, 0}, "", false);
        target = {ManifestMediaType(bytes, ""), ref_.digest, static_cast<int64_t>(bytes.size())};
        save = true;
      } else {
        return std::nullopt;
      }
      Tree tree = Walk(target, false);
      if (!impl_.SnapshotExists(tree.chain.back())) return std::nullopt;
      if (save) SaveImage(target);
      return Finish(tree);
    } catch (const ExecutorError& e) {
      if (e.kind() == ErrorKind::kNotFound) return std::nullopt;  // not all here: pull
      throw;
    }
  }

  ImageInfo Fetch(const Descriptor& target) {
    Impl::LeaseGuard lease(impl_, std::chrono::hours(24));
    lease_ = lease.id();
    Tree t = Walk(target, true);
    const std::vector<Descriptor>& layers = t.manifest.layers;
    // Snapshots exist bottom-up, so everything below the highest existing one exists too.
    size_t first_missing = 0;
    for (size_t i = layers.size(); i > 0; --i)
      if (impl_.SnapshotExists(t.chain[i - 1])) {
        first_missing = i;
        break;
      }
    std::vector<bool> download(layers.size(), false);
    for (size_t i = first_missing; i < layers.size(); ++i) {
      download[i] = !ContentExists(layers[i].digest);
      if (download[i]) {
        ++layers_total_;
        bytes_total_ += layers[i].size;
      }
    }
    for (size_t i = first_missing; i < layers.size(); ++i) {
      if (download[i]) Download(layers[i]);
      Unpack(t, i);
    }
    Labels config_labels{
        {fmt::format("containerd.io/gc.ref.snapshot.{}", kSnapshotter), t.chain.back()}};
    Label(t.manifest.config.digest, config_labels);
    Labels manifest_labels{{"containerd.io/gc.ref.content.config", t.manifest.config.digest}};
    for (size_t i = 0; i < layers.size(); ++i)
      manifest_labels[fmt::format("containerd.io/gc.ref.content.l.{}", i)] = layers[i].digest;
    Label(t.manifest_desc.digest, manifest_labels);
    if (t.chosen)
      Label(t.target.digest, {{fmt::format("containerd.io/gc.ref.content.m.{}", *t.chosen),
                               t.manifest_desc.digest}});
    SaveImage(t.target);
    ImageInfo info = Finish(t);
    if (progress_)
      progress_(fmt::format("pulled {} ({}, {} layers, {} downloaded)", info.name, info.digest,
                            layers.size(), HumanBytes(bytes_done_)));
    return info;
  }

 private:
  Tree Walk(const Descriptor& target, bool fetch) {
    Tree t;
    t.target = target;
    std::string bytes =
        Small(target, IsIndexType(target.media_type) ? "index-" : "manifest-", fetch);
    t.manifest_desc = target;
    if (IsIndexType(target.media_type)) {
      std::vector<IndexEntry> index = ParseIndex(bytes);
      t.chosen = SelectManifest(index, HostPlatform());
      t.manifest_desc = index[*t.chosen].descriptor;
      if (t.manifest_desc.media_type.empty())
        t.manifest_desc.media_type = std::string(media::kOciManifest);
      bytes = Small(t.manifest_desc, "manifest-", fetch);
    } else if (!IsManifestType(target.media_type)) {
      throw ExecutorError(ErrorKind::kFailed, fmt::format("{} is a \"{}\", not an image",
                                                          target.digest, target.media_type));
    }
    t.manifest = ParseManifest(bytes);
    if (t.manifest.layers.empty())
      throw ExecutorError(ErrorKind::kFailed,
                          fmt::format("manifest {} has no layers", t.manifest_desc.digest));
    if (t.manifest.config.size > kMaxConfigBytes)
      throw ExecutorError(
          ErrorKind::kFailed,
          fmt::format("image config {} is {} bytes, more than the {} allowed",
                      t.manifest.config.digest, t.manifest.config.size, kMaxConfigBytes));
    std::string config = Small(t.manifest.config, "config-", fetch);
    t.diff_ids = ParseImageConfig(config, t.info);
    if (t.diff_ids.size() != t.manifest.layers.size())
      throw ExecutorError(
          ErrorKind::kFailed,
          fmt::format("image config {} lists {} diff IDs for {} layers", t.manifest.config.digest,
                      t.diff_ids.size(), t.manifest.layers.size()));
    t.chain = ChainIds(t.diff_ids);
    return t;
  }

  ImageInfo Finish(Tree& t) {
    ImageInfo info = std::move(t.info);
    info.name = ref_.String();
    info.target_digest = t.target.digest;
    info.digest = t.manifest_desc.digest;
    info.chain_id = t.chain.back();
    std::vector<std::string> files =
        impl_.ReadRootfsFiles(info.chain_id, {"/etc/passwd", "/etc/group"});
    info.passwd = std::move(files[0]);
    info.group = std::move(files[1]);
    return info;
  }

  bool ContentExists(const std::string& digest) {
    cdapi::content::InfoRequest req;
    req.set_digest(digest);
    cdapi::content::InfoResponse resp;
    auto ctx = impl_.Context(kShortCall, lease_);
    grpc::Status s = impl_.content->Info(ctx.get(), req, &resp);
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) return false;
    impl_.Check(s, "Content.Info", digest);
    return true;
  }

  // A small blob (index, manifest, config): from the content store, else (when `fetch`) from
  // the registry, stored on the way. Absent and not fetched: ExecutorError(kNotFound).
  std::string Small(const Descriptor& d, const char* ref_prefix, bool fetch) {
    cdapi::content::ReadContentRequest req;
    req.set_digest(d.digest);
    auto ctx = impl_.Context(kShortCall, lease_);
    auto reader = impl_.content->Read(ctx.get(), req);
    std::string data;
    cdapi::content::ReadContentResponse chunk;
    while (reader->Read(&chunk))
      data += chunk.data();
    grpc::Status s = reader->Finish();
    if (s.ok()) return data;
    if (s.error_code() != grpc::StatusCode::NOT_FOUND || !fetch)
      impl_.Fail("Content.Read", d.digest, s);
    auto lock = impl_.LockKey("blob " + d.digest);
    if (IsIndexType(d.media_type) || IsManifestType(d.media_type)) {
      data = registry_.FetchManifest(ref_, d);
    } else {
      data.clear();
      registry_.FetchBlob(ref_, d, 0, [&](int64_t at, std::string_view c) {
        if (at == 0) data.clear();
        if (static_cast<int64_t>(data.size() + c.size()) > kMaxConfigBytes)
          throw ExecutorError(ErrorKind::kFailed, fmt::format("blob {} is larger than {} bytes",
                                                              d.digest, kMaxConfigBytes));
        data.append(c);
      });
      if (std::string got = Sha256Digest(data); got != d.digest)
        throw ExecutorError(
            ErrorKind::kFailed,
            fmt::format("blob {} from {}: the data has digest {}", d.digest, ref_.domain, got));
    }
    ContentWriter w(impl_, lease_, ref_prefix + d.digest,
                    {d.media_type, d.digest, static_cast<int64_t>(data.size())});
    if (w.Open()) {
      if (w.offset() < static_cast<int64_t>(data.size()))
        w.Write(w.offset(), std::string_view(data).substr(static_cast<size_t>(w.offset())));
      w.Commit({});
    }
    return data;
  }

  void Say() {
    if (progress_)
      progress_(fmt::format("pulling {}/{} layers ({} of {})",
                            std::min(layers_done_ + 1, layers_total_), layers_total_,
                            HumanBytes(bytes_done_), HumanBytes(bytes_total_)));
    last_said_ = bytes_done_;
  }

  void Download(const Descriptor& layer) {
    auto lock = impl_.LockKey("blob " + layer.digest);
    ContentWriter w(impl_, lease_, "layer-" + layer.digest, layer);
    int64_t base = bytes_done_;
    if (w.Open()) {
      bytes_done_ = base + w.offset();
      Say();
      const int64_t step = std::max<int64_t>(bytes_total_ / 10, 512 * 1024);
      if (w.offset() < layer.size || layer.size == 0)
        registry_.FetchBlob(ref_, layer, w.offset(), [&](int64_t at, std::string_view chunk) {
          w.Write(at, chunk);
          bytes_done_ = base + w.offset();
          if (bytes_done_ - last_said_ >= step) Say();
        });
      w.Commit({});
    }
    bytes_done_ = base + layer.size;
    ++layers_done_;
    if (layers_done_ == layers_total_) Say();
  }

  void Unpack(const Tree& t, size_t i) {
    const std::string& chain_id = t.chain[i];
    auto lock = impl_.LockKey("snapshot " + chain_id);
    if (impl_.SnapshotExists(chain_id)) return;  // unpacked meanwhile
    if (progress_) progress_(fmt::format("unpacking layer {}/{}", i + 1, t.chain.size()));
    Labels labels{{"containerd.io/snapshot.ref", chain_id}};
    std::string key;
    cdapi::snapshots::PrepareSnapshotResponse prepared;
    for (int attempt = 0;; ++attempt) {
      key = fmt::format("extract-{} {}", Unique(), chain_id);
      cdapi::snapshots::PrepareSnapshotRequest req;
      req.set_snapshotter(kSnapshotter);
      req.set_key(key);
      if (i > 0) req.set_parent(t.chain[i - 1]);
      for (const auto& [k, v] : labels)
        (*req.mutable_labels())[k] = v;
      auto ctx = impl_.Context(kShortCall, lease_);
      grpc::Status s = impl_.snapshots->Prepare(ctx.get(), req, &prepared);
      if (s.ok()) break;
      if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
        if (impl_.SnapshotExists(chain_id)) return;  // another client committed it
        if (attempt < 2) continue;
      }
      impl_.Fail("Snapshots.Prepare", key, s);
    }
    cdapi::diff::ApplyRequest areq;
    *areq.mutable_diff() = ToProto(t.manifest.layers[i]);
    *areq.mutable_mounts() = prepared.mounts();
    cdapi::diff::ApplyResponse aresp;
    {
      auto ctx = impl_.Context(kLongCall, lease_);
      grpc::Status s = impl_.diff->Apply(ctx.get(), areq, &aresp);
      if (!s.ok()) {
        impl_.RemoveSnapshot(key);
        impl_.Fail("Diff.Apply", t.manifest.layers[i].digest, s);
      }
    }
    if (aresp.applied().digest() != t.diff_ids[i]) {
      impl_.RemoveSnapshot(key);
      throw ExecutorError(
          ErrorKind::kFailed,
          fmt::format("layer {} unpacks to {}, but the image config says {}",
                      t.manifest.layers[i].digest, aresp.applied().digest(), t.diff_ids[i]));
    }
    cdapi::snapshots::CommitSnapshotRequest creq;
    creq.set_snapshotter(kSnapshotter);
    creq.set_name(chain_id);
    creq.set_key(key);
    for (const auto& [k, v] : labels)
      (*creq.mutable_labels())[k] = v;
    google::protobuf::Empty empty;
    auto ctx = impl_.Context(kShortCall, lease_);
    grpc::Status s = impl_.snapshots->Commit(ctx.get(), creq, &empty);
    if (!s.ok()) {
      impl_.RemoveSnapshot(key);
      if (s.error_code() != grpc::StatusCode::ALREADY_EXISTS)
        impl_.Fail("Snapshots.Commit", chain_id, s);
    }
    Label(t.manifest.layers[i].digest, {{"containerd.io/uncompressed", t.diff_ids[i]}});
  }

  void Label(const std::string& digest, const Labels& labels) {
    cdapi::content::UpdateRequest req;
    req.mutable_info()->set_digest(digest);
    for (const auto& [k, v] : labels) {
      (*req.mutable_info()->mutable_labels())[k] = v;
      req.mutable_update_mask()->add_paths("labels." + k);
    }
    cdapi::content::UpdateResponse resp;
    auto ctx = impl_.Context(kShortCall, lease_);
    impl_.Check(impl_.content->Update(ctx.get(), req, &resp), "Content.Update", digest);
  }

  void SaveImage(const Descriptor& target) {
    cdapi::images::Image image;
    image.set_name(ref_.String());
    *image.mutable_target() = ToProto(target);
    cdapi::images::CreateImageRequest req;
    *req.mutable_image() = image;
    cdapi::images::CreateImageResponse resp;
    auto ctx = impl_.Context(kShortCall, lease_);
    grpc::Status s = impl_.images->Create(ctx.get(), req, &resp);
    if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
      cdapi::images::UpdateImageRequest ureq;
      *ureq.mutable_image() = image;
      ureq.mutable_update_mask()->add_paths("target");
      cdapi::images::UpdateImageResponse uresp;
      auto uctx = impl_.Context(kShortCall, lease_);
      impl_.Check(impl_.images->Update(uctx.get(), ureq, &uresp), "Images.Update", image.name());
      return;
    }
    impl_.Check(s, "Images.Create", image.name());
  }

  Impl& impl_;
  Registry& registry_;
  ImageRef ref_;
  const PullProgress& progress_;
  std::string lease_;
  int64_t layers_total_ = 0, layers_done_ = 0;
  int64_t bytes_total_ = 0, bytes_done_ = 0, last_said_ = 0;
};

}  // namespace

ImageInfo Containerd::Impl::Pull(const std::string& ref_text, Registry& registry,
                                 const PullProgress& progress) {
  ImageRef ref = ParseImageRef(ref_text);
  std::string name = ref.String();
  auto lock = LockKey("image " + name);
  try {
    Puller puller(*this, registry, ref, progress);
    // A digest names the same bytes forever: no need to ask the registry when we have them.
    if (!ref.digest.empty())
      if (auto local = puller.Local(ref.digest)) return *local;
    Descriptor target = registry.Resolve(ref);
    if (auto local = puller.Local(target.digest)) {
      if (progress) progress(fmt::format("{} is up to date ({})", name, local->digest));
      return *local;
    }
    return puller.Fetch(target);
  } catch (const ExecutorError& e) {
    throw ExecutorError(e.kind(), fmt::format("pull {}: {}", name, e.what()));
  }
}

}  // namespace skep::executor
