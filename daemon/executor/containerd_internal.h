// Containerd::Impl, shared by containerd.cc (containers, tasks, events), containerd_pull.cc
// (pull and unpack) and rootfs_files.cc. Not a public header: it brings in gRPC and the
// generated containerd API.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "daemon/common/mutex.h"
#include "daemon/executor/containerd.h"
#include "github.com/containerd/containerd/api/events/task.pb.h"
#include "github.com/containerd/containerd/api/services/containers/v1/containers.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/content/v1/content.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/diff/v1/diff.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/events/v1/events.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/images/v1/images.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/leases/v1/leases.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/tasks/v1/tasks.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/version/v1/version.grpc.pb.h"

namespace skep::executor {

namespace cdapi {
namespace containers = ::containerd::services::containers::v1;
namespace content = ::containerd::services::content::v1;
namespace diff = ::containerd::services::diff::v1;
namespace events = ::containerd::services::events::v1;
namespace images = ::containerd::services::images::v1;
namespace leases = ::containerd::services::leases::v1;
namespace snapshots = ::containerd::services::snapshots::v1;
namespace tasks = ::containerd::services::tasks::v1;
namespace version = ::containerd::services::version::v1;
using Mount = ::containerd::types::Mount;
}  // namespace cdapi

inline constexpr const char* kSnapshotter = "overlayfs";

// Logs through spdlog in skepd's key=value style (this library does not link skepd's logger).
void LogWarn(const std::string& msg);
// A string quoted for containerd's filter syntax.
std::string Quoted(const std::string& s);
int64_t UnixNanos(const google::protobuf::Timestamp& t);
std::string RandomHex(size_t bytes);

struct Containerd::Impl {
  Impl(const std::string& socket_path, std::string ns);
  ~Impl();

  std::string socket;
  std::string ns;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<cdapi::containers::Containers::Stub> containers;
  std::unique_ptr<cdapi::content::Content::Stub> content;
  std::unique_ptr<cdapi::diff::Diff::Stub> diff;
  std::unique_ptr<cdapi::events::Events::Stub> events;
  std::unique_ptr<cdapi::images::Images::Stub> images;
  std::unique_ptr<cdapi::leases::Leases::Stub> leases;
  std::unique_ptr<cdapi::snapshots::Snapshots::Stub> snapshots;
  std::unique_ptr<cdapi::tasks::Tasks::Stub> tasks;
  std::unique_ptr<cdapi::version::Version::Stub> version;

  // A context carrying the namespace (and the lease, when given) with a deadline.
  std::unique_ptr<grpc::ClientContext> Context(std::chrono::seconds timeout,
                                               const std::string& lease = {}) const;
  // "containerd <rpc> <what>: <containerd's message>", with the kind from the status code.
  [[noreturn]] void Fail(const char* rpc, const std::string& what, const grpc::Status& s) const;
  void Check(const grpc::Status& s, const char* rpc, const std::string& what) const {
    if (!s.ok()) Fail(rpc, what, s);
  }

  // Leases: everything a pull or a create writes is held by one until it is referenced.
  std::string CreateLease(std::chrono::hours expire);
  void DeleteLease(const std::string& id) noexcept;
  class LeaseGuard {
   public:
    LeaseGuard(Impl& impl, std::chrono::hours expire)
        : impl_(impl), id_(impl.CreateLease(expire)) {}
    ~LeaseGuard() { impl_.DeleteLease(id_); }
    const std::string& id() const { return id_; }

   private:
    Impl& impl_;
    std::string id_;
  };

  bool SnapshotExists(const std::string& key);
  void RemoveSnapshot(const std::string& key) noexcept;

  // In-process mutual exclusion per key (an image name, a blob digest), so that two pulls of
  // the same thing in this process wait for each other instead of racing for containerd's
  // ingest locks.
  std::unique_lock<std::mutex> LockKey(const std::string& key);

  // Pull and unpack (containerd_pull.cc).
  ImageInfo Pull(const std::string& ref, Registry& registry, const PullProgress& progress);

  // The files at `paths` in the image whose top snapshot is `chain_id` (empty when absent),
  // through a read-only temporary mount of a view snapshot (rootfs_files.cc).
  std::vector<std::string> ReadRootfsFiles(const std::string& chain_id,
                                           const std::vector<std::string>& paths);

  Mutex locks_mu;
  std::map<std::string, std::shared_ptr<std::mutex>> locks SKEP_GUARDED_BY(locks_mu);

  // The exit subscription (containerd_events.cc), once SubscribeExits was called.
  class ExitSubscription;
  std::shared_ptr<ExitSubscription> exits;
  void StopExits();
};

}  // namespace skep::executor
