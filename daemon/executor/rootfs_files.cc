// Reading a few files of an image's rootfs (its /etc/passwd and /etc/group, to resolve USER
// names), the way containerd's WithUser does: a view snapshot on the image's top layer,
// mounted read-only in a temporary directory on this host (skepd and containerd share the
// machine, and skepd runs as root), read, unmounted. This sees exactly what the container will
// (overlay whiteouts included) and works for any snapshotter, at the cost of one mount; reading
// the layer tars instead would mean gunzipping and replaying every layer.
//
// Nothing stays mounted: the mount is detached before the temporary directory is removed, on
// every path out. The view snapshot is removed at once and is also held by a short lease, so
// a crash in between leaves nothing that GC will not collect.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "daemon/executor/containerd_internal.h"
#include "daemon/executor/errors.h"

namespace skep::executor {
namespace {

constexpr std::chrono::seconds kShortCall{30};
constexpr size_t kMaxFileBytes = 1 << 20;

struct MountFlag {
  const char* name;
  bool clear;
  unsigned long flag;
};
constexpr MountFlag kFlags[] = {
    {"ro", false, MS_RDONLY},
    {"rw", true, MS_RDONLY},
    {"bind", false, MS_BIND},
    {"rbind", false, MS_BIND | MS_REC},
    {"nosuid", false, MS_NOSUID},
    {"suid", true, MS_NOSUID},
    {"nodev", false, MS_NODEV},
    {"dev", true, MS_NODEV},
    {"noexec", false, MS_NOEXEC},
    {"exec", true, MS_NOEXEC},
    {"noatime", false, MS_NOATIME},
    {"relatime", false, MS_RELATIME},
    {"strictatime", false, MS_STRICTATIME},
    {"nodiratime", false, MS_NODIRATIME},
    {"sync", false, MS_SYNCHRONOUS},
    {"async", true, MS_SYNCHRONOUS},
    {"dirsync", false, MS_DIRSYNC},
};

// A temporary directory with the snapshot's mounts on it; unmounts and removes itself.
class TempMount {
 public:
  explicit TempMount(const google::protobuf::RepeatedPtrField<cdapi::Mount>& mounts) {
    char tmpl[] = "/tmp/skep-rootfs-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr)
      throw ExecutorError(ErrorKind::kFailed,
                          fmt::format("mkdtemp /tmp: {}", std::strerror(errno)));
    dir_ = tmpl;
    try {
      for (const cdapi::Mount& m : mounts)
        MountOne(m);
    } catch (...) {
      Release();
      throw;
    }
  }
  ~TempMount() { Release(); }
  const std::string& dir() const { return dir_; }

 private:
  void MountOne(const cdapi::Mount& m) {
    unsigned long flags = MS_RDONLY;  // always read-only, whatever the snapshot says
    std::string data;
    for (const std::string& o : m.options()) {
      const MountFlag* f = nullptr;
      for (const MountFlag& k : kFlags)
        if (o == k.name) f = &k;
      if (f == nullptr) {
        if (o.find("private") != std::string::npos || o.find("shared") != std::string::npos ||
            o.find("slave") != std::string::npos)
          continue;  // propagation is set on the mount point, not here
        data += (data.empty() ? "" : ",") + o;
      } else if (!f->clear) {
        flags |= f->flag;
      } else if (f->flag != MS_RDONLY) {
        flags &= ~f->flag;
      }
    }
    if (m.type() == "overlay" && data.size() >= 4000) data = ShortenLowerdirs(data);
    if (::mount(m.source().c_str(), dir_.c_str(), m.type().c_str(), flags,
                data.empty() ? nullptr : data.c_str()) != 0)
      throw ExecutorError(ErrorKind::kFailed, fmt::format("mount {} ({}) on {}: {}", m.source(),
                                                          m.type(), dir_, std::strerror(errno)));
    mounted_ = true;
    // A bind mount ignores MS_RDONLY until remounted.
    if ((flags & MS_BIND) &&
        ::mount("", dir_.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0)
      throw ExecutorError(ErrorKind::kFailed,
                          fmt::format("remount {} read-only: {}", dir_, std::strerror(errno)));
  }

  // overlay's mount data must fit in a page: with many layers, point lowerdir at short
  // symlinks to the layer directories instead (the kernel resolves them at mount time).
  std::string ShortenLowerdirs(const std::string& data) {
    links_ = dir_ + ".l";
    std::filesystem::create_directory(links_);
    std::string out;
    size_t start = 0;
    while (start <= data.size()) {
      size_t comma = data.find(',', start);
      std::string opt = data.substr(start, comma == std::string::npos ? comma : comma - start);
      if (opt.rfind("lowerdir=", 0) == 0) {
        std::string dirs = opt.substr(9), shortened;
        size_t i = 0, n = 0;
        while (i <= dirs.size()) {
          size_t colon = dirs.find(':', i);
          std::string target = dirs.substr(i, colon == std::string::npos ? colon : colon - i);
          std::string link = fmt::format("{}/{}", links_, n++);
          std::filesystem::create_directory_symlink(target, link);
          shortened += (shortened.empty() ? "" : ":") + link;
          if (colon == std::string::npos) break;
          i = colon + 1;
        }
        opt = "lowerdir=" + shortened;
      }
      out += (out.empty() ? "" : ",") + opt;
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return out;
  }

  void Release() noexcept {
    if (mounted_ && ::umount2(dir_.c_str(), MNT_DETACH) != 0)
      LogWarn(fmt::format("umount {}: {}", dir_, std::strerror(errno)));
    mounted_ = false;
    // rmdir, never a recursive remove: if the unmount failed, the image's files are below.
    if (!dir_.empty() && ::rmdir(dir_.c_str()) != 0)
      LogWarn(fmt::format("rmdir {}: {}", dir_, std::strerror(errno)));
    dir_.clear();
    if (!links_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(links_, ec);  // symlinks only
      links_.clear();
    }
  }

  std::string dir_;
  std::string links_;
  bool mounted_ = false;
};

// The file at `path` below `root`, without following symlinks out of the rootfs: absolute
// links are resolved against `root`, at most 16 hops. Missing or not a regular file: empty.
std::string ReadInRoot(const std::string& root, std::string path) {
  namespace fs = std::filesystem;
  for (int hop = 0; hop < 16; ++hop) {
    fs::path p = fs::path(root) / fs::path(path).relative_path();
    std::error_code ec;
    fs::file_status st = fs::symlink_status(p, ec);
    if (ec || !fs::exists(st)) return {};
    if (fs::is_symlink(st)) {
      fs::path target = fs::read_symlink(p, ec);
      if (ec) return {};
      path = target.is_absolute()
                 ? target.string()
                 : (fs::path(path).parent_path() / target).lexically_normal().string();
      continue;
    }
    if (!fs::is_regular_file(st)) return {};
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return {};
    std::string out;
    char buf[8192];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0 && out.size() < kMaxFileBytes)
      out.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return out;
  }
  return {};
}

}  // namespace

std::vector<std::string> Containerd::Impl::ReadRootfsFiles(const std::string& chain_id,
                                                           const std::vector<std::string>& paths) {
  LeaseGuard lease(*this, std::chrono::hours(1));
  std::string key = "skep-view-" + lease.id();
  cdapi::snapshots::ViewSnapshotRequest req;
  req.set_snapshotter(kSnapshotter);
  req.set_key(key);
  req.set_parent(chain_id);
  cdapi::snapshots::ViewSnapshotResponse resp;
  {
    auto ctx = Context(kShortCall, lease.id());
    Check(snapshots->View(ctx.get(), req, &resp), "Snapshots.View", chain_id);
  }
  std::vector<std::string> out;
  try {
    TempMount mount(resp.mounts());
    for (const std::string& p : paths)
      out.push_back(ReadInRoot(mount.dir(), p));
  } catch (...) {
    RemoveSnapshot(key);
    throw;
  }
  RemoveSnapshot(key);
  return out;
}

}  // namespace skep::executor
