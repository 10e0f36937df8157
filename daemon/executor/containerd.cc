#include "daemon/executor/containerd.h"

#include <boost/json.hpp>
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <regex>

#include "daemon/executor/containerd_internal.h"
#include "daemon/executor/errors.h"

namespace skep::executor {

std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

int64_t UnixNanos(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000000000 + t.nanos();
}

std::string RandomHex(size_t bytes) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string out;
  for (size_t i = 0; i < bytes; ++i)
    out += fmt::format("{:02x}", static_cast<unsigned>(rng() & 0xff));
  return out;
}

namespace {

constexpr std::chrono::seconds kShortCall{30};
constexpr std::chrono::seconds kTaskCall{120};  // shim start, runc create, mounts
constexpr const char* kRuntime = "io.containerd.runc.v2";
constexpr const char* kSpecTypeUrl = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

TaskStatus StatusOf(const ::containerd::v1::types::Process& p) {
  TaskStatus s;
  switch (p.status()) {
    case ::containerd::v1::types::CREATED:
      s.state = TaskState::kCreated;
      break;
    case ::containerd::v1::types::RUNNING:
      s.state = TaskState::kRunning;
      break;
    case ::containerd::v1::types::STOPPED:
      s.state = TaskState::kStopped;
      break;
    case ::containerd::v1::types::PAUSED:
    case ::containerd::v1::types::PAUSING:
      s.state = TaskState::kPaused;
      break;
    default:
      s.state = TaskState::kUnknown;
      break;
  }
  s.pid = p.pid();
  s.exit_code = p.exit_status();
  if (p.has_exited_at()) s.exited_at_unix_nanos = UnixNanos(p.exited_at());
  return s;
}

void CheckId(const std::string& id) {
  static const std::regex kId("[A-Za-z0-9]+([._-][A-Za-z0-9]+)*");
  if (id.size() > 76 || !std::regex_match(id, kId))
    throw ExecutorError(
        ErrorKind::kInvalidArgument,
        fmt::format("invalid container id \"{}\": want letters and digits separated "
                    "by single '.', '_' or '-', at most 76 characters",
                    id));
}

// The shim appends to stdio files but does not create them (a URI, file:// or binary://, is
// the shim's to open).
void EnsureFile(const std::string& path) {
  if (path.empty() || path.find("://") != std::string::npos) return;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0)
    throw ExecutorError(ErrorKind::kFailed,
                        fmt::format("cannot create log file {}: {}", path, std::strerror(errno)));
  ::close(fd);
}

}  // namespace

void LogWarn(const std::string& msg) {
  std::string quoted = "\"";
  for (char c : msg) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c == '\n' ? ' ' : c;
  }
  spdlog::warn("component=executor msg={}", quoted + '"');
}

const char* TaskStateName(TaskState s) {
  switch (s) {
    case TaskState::kNone:
      return "none";
    case TaskState::kCreated:
      return "created";
    case TaskState::kRunning:
      return "running";
    case TaskState::kPaused:
      return "paused";
    case TaskState::kStopped:
      return "stopped";
    case TaskState::kUnknown:
      return "unknown";
  }
  return "unknown";
}

Containerd::Impl::Impl(const std::string& socket_path, std::string ns_name)
    : socket(socket_path), ns(std::move(ns_name)) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  args.SetMaxSendMessageSize(16 << 20);
  // Reconnect quickly after a containerd restart (the default backoff grows to minutes).
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  channel =
      grpc::CreateCustomChannel("unix://" + socket_path, grpc::InsecureChannelCredentials(), args);
  containers = cdapi::containers::Containers::NewStub(channel);
  content = cdapi::content::Content::NewStub(channel);
  diff = cdapi::diff::Diff::NewStub(channel);
  events = cdapi::events::Events::NewStub(channel);
  images = cdapi::images::Images::NewStub(channel);
  leases = cdapi::leases::Leases::NewStub(channel);
  snapshots = cdapi::snapshots::Snapshots::NewStub(channel);
  tasks = cdapi::tasks::Tasks::NewStub(channel);
  version = cdapi::version::Version::NewStub(channel);
}

Containerd::Impl::~Impl() {
  StopExits();
}

std::unique_ptr<grpc::ClientContext> Containerd::Impl::Context(std::chrono::seconds timeout,
                                                               const std::string& lease) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("containerd-namespace", ns);
  if (!lease.empty()) ctx->AddMetadata("containerd-lease", lease);
  if (timeout.count() > 0) ctx->set_deadline(std::chrono::system_clock::now() + timeout);
  return ctx;
}

void Containerd::Impl::Fail(const char* rpc, const std::string& what, const grpc::Status& s) const {
  ErrorKind kind = ErrorKind::kFailed;
  switch (s.error_code()) {
    case grpc::StatusCode::NOT_FOUND:
      kind = ErrorKind::kNotFound;
      break;
    case grpc::StatusCode::ALREADY_EXISTS:
      kind = ErrorKind::kAlreadyExists;
      break;
    case grpc::StatusCode::FAILED_PRECONDITION:
      kind = ErrorKind::kFailedPrecondition;
      break;
    case grpc::StatusCode::INVALID_ARGUMENT:
      kind = ErrorKind::kInvalidArgument;
      break;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      kind = ErrorKind::kUnavailable;
      break;
    default:
      break;
  }
  std::string msg = s.error_message();
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE)
    msg = fmt::format("containerd at {} is unavailable: {}", socket, msg);
  else if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
    msg = "no answer before the deadline: " + msg;
  throw ExecutorError(kind, fmt::format("containerd {} {}: {}", rpc, what, msg));
}

std::string Containerd::Impl::CreateLease(std::chrono::hours expire) {
  cdapi::leases::CreateRequest req;
  req.set_id("skep-" + RandomHex(8));
  // GC drops the lease (and what only it holds) if we die before deleting it.
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() + expire);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  (*req.mutable_labels())["containerd.io/gc.expire"] = buf;
  cdapi::leases::CreateResponse resp;
  auto ctx = Context(kShortCall);
  Check(leases->Create(ctx.get(), req, &resp), "Leases.Create", req.id());
  return req.id();
}

void Containerd::Impl::DeleteLease(const std::string& id) noexcept {
  cdapi::leases::DeleteRequest req;
  req.set_id(id);
  google::protobuf::Empty resp;
  auto ctx = Context(kShortCall);
  grpc::Status s = leases->Delete(ctx.get(), req, &resp);
  if (!s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND)
    LogWarn(fmt::format("containerd Leases.Delete {}: {} (it expires by itself)", id,
                        s.error_message()));
}

bool Containerd::Impl::SnapshotExists(const std::string& key) {
  cdapi::snapshots::StatSnapshotRequest req;
  req.set_snapshotter(kSnapshotter);
  req.set_key(key);
  cdapi::snapshots::StatSnapshotResponse resp;
  auto ctx = Context(kShortCall);
  grpc::Status s = snapshots->Stat(ctx.get(), req, &resp);
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) return false;
  Check(s, "Snapshots.Stat", key);
  return true;
}

void Containerd::Impl::RemoveSnapshot(const std::string& key) noexcept {
  cdapi::snapshots::RemoveSnapshotRequest req;
  req.set_snapshotter(kSnapshotter);
  req.set_key(key);
  google::protobuf::Empty resp;
  auto ctx = Context(kShortCall);
  grpc::Status s = snapshots->Remove(ctx.get(), req, &resp);
  if (!s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND)
    LogWarn(fmt::format("containerd Snapshots.Remove {}: {}", key, s.error_message()));
}

std::unique_lock<std::mutex> Containerd::Impl::LockKey(const std::string& key) {
  std::shared_ptr<std::mutex> m;
  {
    MutexLock lock(locks_mu);
    auto& slot = locks[key];
    if (!slot) slot = std::make_shared<std::mutex>();
    m = slot;  // entries are never erased, so the mutex outlives the lock
  }
  return std::unique_lock(*m);
}

Containerd::Containerd(const std::string& socket_path, std::string ns)
    : impl_(std::make_unique<Impl>(socket_path, std::move(ns))) {}

Containerd::~Containerd() = default;

std::string Containerd::Version() {
  google::protobuf::Empty req;
  cdapi::version::VersionResponse resp;
  auto ctx = impl_->Context(kShortCall);
  impl_->Check(impl_->version->Version(ctx.get(), req, &resp), "Version", impl_->socket);
  return resp.version();
}

ImageInfo Containerd::Pull(const std::string& ref, Registry& registry,
                           const PullProgress& progress) {
  return impl_->Pull(ref, registry, progress);
}

void Containerd::CreateContainer(const ContainerRequest& r) {
  CheckId(r.id);
  if (r.image.chain_id.empty())
    throw ExecutorError(
        ErrorKind::kInvalidArgument,
        fmt::format("container {}: image {} has no unpacked layers", r.id, r.image.name));
  {
    cdapi::containers::GetContainerRequest req;
    req.set_id(r.id);
    cdapi::containers::GetContainerResponse resp;
    auto ctx = impl_->Context(kShortCall);
    grpc::Status s = impl_->containers->Get(ctx.get(), req, &resp);
    if (s.ok())
      throw ExecutorError(ErrorKind::kAlreadyExists,
                          fmt::format("container {} already exists", r.id));
    if (s.error_code() != grpc::StatusCode::NOT_FOUND) impl_->Fail("Containers.Get", r.id, s);
  }
  Impl::LeaseGuard lease(*impl_, std::chrono::hours(1));
  cdapi::snapshots::PrepareSnapshotRequest prep;
  prep.set_snapshotter(kSnapshotter);
  prep.set_key(r.id);
  prep.set_parent(r.image.chain_id);
  for (int attempt = 0;; ++attempt) {
    cdapi::snapshots::PrepareSnapshotResponse resp;
    auto ctx = impl_->Context(kShortCall, lease.id());
    grpc::Status s = impl_->snapshots->Prepare(ctx.get(), prep, &resp);
    // A snapshot without a container is what a create that failed halfway leaves: replace it.
    if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS && attempt == 0) {
      impl_->RemoveSnapshot(r.id);
      continue;
    }
    impl_->Check(s, "Snapshots.Prepare", r.id);
    break;
  }
  cdapi::containers::CreateContainerRequest req;
  auto* c = req.mutable_container();
  c->set_id(r.id);
  c->set_image(r.image.name);
  for (const auto& [k, v] : r.labels)
    (*c->mutable_labels())[k] = v;
  c->mutable_runtime()->set_name(kRuntime);
  c->mutable_spec()->set_type_url(kSpecTypeUrl);
  c->mutable_spec()->set_value(r.spec_json);
  c->set_snapshotter(kSnapshotter);
  c->set_snapshot_key(r.id);
  cdapi::containers::CreateContainerResponse resp;
  auto ctx = impl_->Context(kShortCall, lease.id());
  grpc::Status s = impl_->containers->Create(ctx.get(), req, &resp);
  if (!s.ok()) {
    impl_->RemoveSnapshot(r.id);
    impl_->Fail("Containers.Create", r.id, s);
  }
}

Containerd::ExecResult Containerd::Exec(const std::string& id, const std::string& exec_id,
                                        const std::vector<std::string>& argv,
                                        std::chrono::milliseconds timeout,
                                        const std::string& scratch) {
  // The container's process as its spec says, with the probe's arguments.
  cdapi::containers::GetContainerRequest greq;
  greq.set_id(id);
  cdapi::containers::GetContainerResponse gresp;
  {
    auto ctx = impl_->Context(kShortCall);
    impl_->Check(impl_->containers->Get(ctx.get(), greq, &gresp), "Containers.Get", id);
  }
  boost::json::object process;
  try {
    const auto spec = boost::json::parse(gresp.container().spec().value());
    if (const auto* p = spec.as_object().if_contains("process")) process = p->as_object();
  } catch (const std::exception&) {
  }
  boost::json::array args;
  for (const auto& a : argv)
    args.push_back(boost::json::string(a));
  process["args"] = std::move(args);
  process["terminal"] = false;
  process.erase("consoleSize");

  const std::string out = scratch + "/" + exec_id + ".out";
  ::unlink(out.c_str());
  EnsureFile(out);
  cdapi::tasks::ExecProcessRequest ereq;
  ereq.set_container_id(id);
  ereq.set_exec_id(exec_id);
  ereq.set_stdout("file://" + out);
  ereq.set_stderr("file://" + out);
  ereq.mutable_spec()->set_type_url("types.containerd.io/opencontainers/runtime-spec/1/Process");
  ereq.mutable_spec()->set_value(boost::json::serialize(process));
  google::protobuf::Empty empty;
  {
    auto ctx = impl_->Context(kShortCall);
    impl_->Check(impl_->tasks->Exec(ctx.get(), ereq, &empty), "Tasks.Exec", id);
  }
  auto remove = [&] {
    cdapi::tasks::DeleteProcessRequest dreq;
    dreq.set_container_id(id);
    dreq.set_exec_id(exec_id);
    cdapi::tasks::DeleteResponse dresp;
    auto ctx = impl_->Context(kShortCall);
    impl_->tasks->DeleteProcess(ctx.get(), dreq, &dresp);
  };
  // Waiting is registered before the start, so that a quick exit is not missed.
  cdapi::tasks::WaitRequest wreq;
  wreq.set_container_id(id);
  wreq.set_exec_id(exec_id);
  cdapi::tasks::WaitResponse wresp;
  auto wctx = impl_->Context(std::chrono::duration_cast<std::chrono::seconds>(timeout) +
                             std::chrono::seconds(1));
  wctx->set_deadline(std::chrono::system_clock::now() + timeout);
  grpc::CompletionQueue cq;
  auto pending = impl_->tasks->AsyncWait(wctx.get(), wreq, &cq);
  grpc::Status wstatus;
  pending->Finish(&wresp, &wstatus, reinterpret_cast<void*>(1));
  cdapi::tasks::StartRequest sreq;
  sreq.set_container_id(id);
  sreq.set_exec_id(exec_id);
  cdapi::tasks::StartResponse sresp;
  grpc::Status started;
  {
    auto ctx = impl_->Context(kShortCall);
    started = impl_->tasks->Start(ctx.get(), sreq, &sresp);
  }
  if (!started.ok()) wctx->TryCancel();
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  ExecResult result;
  if (!started.ok()) {
    remove();
    ::unlink(out.c_str());
    impl_->Fail("Tasks.Start (exec)", id, started);
  }
  if (wstatus.ok()) {
    result.exit_code = static_cast<int>(wresp.exit_status());
  } else {
    // Timed out: the probe is killed.
    cdapi::tasks::KillRequest kreq;
    kreq.set_container_id(id);
    kreq.set_exec_id(exec_id);
    kreq.set_signal(9);
    auto ctx = impl_->Context(kShortCall);
    impl_->tasks->Kill(ctx.get(), kreq, &empty);
    cdapi::tasks::WaitResponse ignored;
    auto again = impl_->Context(std::chrono::seconds(5));
    impl_->tasks->Wait(again.get(), wreq, &ignored);
  }
  remove();
  {
    std::ifstream in(out, std::ios::binary);
    result.output.resize(4096);
    in.read(result.output.data(), static_cast<std::streamsize>(result.output.size()));
    result.output.resize(static_cast<size_t>(in.gcount()));
  }
  ::unlink(out.c_str());
  return result;
}

uint32_t Containerd::StartTask(const std::string& id, const std::string& stdout_path,
                               const std::string& stderr_path) {
  EnsureFile(stdout_path);
  EnsureFile(stderr_path);
  cdapi::snapshots::MountsRequest mreq;
  mreq.set_snapshotter(kSnapshotter);
  mreq.set_key(id);
  cdapi::snapshots::MountsResponse mounts;
  {
    auto ctx = impl_->Context(kShortCall);
    impl_->Check(impl_->snapshots->Mounts(ctx.get(), mreq, &mounts), "Snapshots.Mounts", id);
  }
  cdapi::tasks::CreateTaskRequest creq;
  creq.set_container_id(id);
  *creq.mutable_rootfs() = mounts.mounts();
  creq.set_stdout(stdout_path);
  creq.set_stderr(stderr_path);
  cdapi::tasks::CreateTaskResponse cresp;
  {
    auto ctx = impl_->Context(kTaskCall);
    impl_->Check(impl_->tasks->Create(ctx.get(), creq, &cresp), "Tasks.Create", id);
  }
  cdapi::tasks::StartRequest sreq;
  sreq.set_container_id(id);
  cdapi::tasks::StartResponse sresp;
  auto ctx = impl_->Context(kTaskCall);
  grpc::Status s = impl_->tasks->Start(ctx.get(), sreq, &sresp);
  if (!s.ok()) {
    cdapi::tasks::DeleteTaskRequest dreq;
    dreq.set_container_id(id);
    cdapi::tasks::DeleteResponse dresp;
    auto dctx = impl_->Context(kTaskCall);
    grpc::Status ds = impl_->tasks->Delete(dctx.get(), dreq, &dresp);
    if (!ds.ok() && ds.error_code() != grpc::StatusCode::NOT_FOUND)
      LogWarn(fmt::format("containerd Tasks.Delete {} after a failed start: {}", id,
                          ds.error_message()));
    impl_->Fail("Tasks.Start", id, s);
  }
  return sresp.pid();
}

void Containerd::Kill(const std::string& id, int signal, bool all) {
  cdapi::tasks::KillRequest req;
  req.set_container_id(id);
  req.set_signal(static_cast<uint32_t>(signal));
  req.set_all(all);
  google::protobuf::Empty resp;
  auto ctx = impl_->Context(kShortCall);
  impl_->Check(impl_->tasks->Kill(ctx.get(), req, &resp), "Tasks.Kill",
               fmt::format("{} signal {}", id, signal));
}

TaskStatus Containerd::GetTaskStatus(const std::string& id) {
  cdapi::tasks::GetRequest req;
  req.set_container_id(id);
  cdapi::tasks::GetResponse resp;
  auto ctx = impl_->Context(kShortCall);
  grpc::Status s = impl_->tasks->Get(ctx.get(), req, &resp);
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) return {};
  impl_->Check(s, "Tasks.Get", id);
  return StatusOf(resp.process());
}

void Containerd::Delete(const std::string& id) {
  {
    cdapi::tasks::DeleteTaskRequest req;
    req.set_container_id(id);
    cdapi::tasks::DeleteResponse resp;
    auto ctx = impl_->Context(kTaskCall);
    grpc::Status s = impl_->tasks->Delete(ctx.get(), req, &resp);
    if (!s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND)
      impl_->Fail("Tasks.Delete", id, s);
  }
  {
    cdapi::containers::DeleteContainerRequest req;
    req.set_id(id);
    google::protobuf::Empty resp;
    auto ctx = impl_->Context(kShortCall);
    grpc::Status s = impl_->containers->Delete(ctx.get(), req, &resp);
    if (!s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND)
      impl_->Fail("Containers.Delete", id, s);
  }
  cdapi::snapshots::RemoveSnapshotRequest req;
  req.set_snapshotter(kSnapshotter);
  req.set_key(id);
  google::protobuf::Empty resp;
  auto ctx = impl_->Context(kShortCall);
  grpc::Status s = impl_->snapshots->Remove(ctx.get(), req, &resp);
  if (!s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND)
    impl_->Fail("Snapshots.Remove", id, s);
}

std::vector<ContainerRecord> Containerd::List(const std::string& label_key,
                                              const std::string& label_value) {
  cdapi::containers::ListContainersRequest req;
  if (!label_key.empty())
    req.add_filters(fmt::format("labels.{}=={}", Quoted(label_key), Quoted(label_value)));
  cdapi::containers::ListContainersResponse resp;
  {
    auto ctx = impl_->Context(kShortCall);
    impl_->Check(impl_->containers->List(ctx.get(), req, &resp), "Containers.List",
                 label_key.empty() ? "(all)" : label_key + "=" + label_value);
  }
  cdapi::tasks::ListTasksRequest treq;
  cdapi::tasks::ListTasksResponse tresp;
  {
    auto ctx = impl_->Context(kShortCall);
    impl_->Check(impl_->tasks->List(ctx.get(), treq, &tresp), "Tasks.List", impl_->ns);
  }
  // Tasks.List describes each task by its init process, whose id is the container's (and
  // whose container_id is left empty).
  std::map<std::string, const ::containerd::v1::types::Process*> by_id;
  for (const auto& p : tresp.tasks())
    by_id[p.id()] = &p;
  std::vector<ContainerRecord> out;
  for (const auto& c : resp.containers()) {
    ContainerRecord r;
    r.id = c.id();
    r.image = c.image();
    r.labels.insert(c.labels().begin(), c.labels().end());
    if (auto it = by_id.find(c.id()); it != by_id.end()) {
      r.task = StatusOf(*it->second);
      r.stdout_path = it->second->stdout();
      r.stderr_path = it->second->stderr();
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace skep::executor
