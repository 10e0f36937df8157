// A client of containerd 1.6's native gRPC API: pull and unpack images, create containers,
// run and signal their tasks, report their exits, list them again after a restart of skepd.
// Every method blocks and is thread-safe (the caller runs them off its serializer). Errors
// are ExecutorError naming the RPC and carrying containerd's message, e.g.
//   containerd Tasks.Start web.1: failed to create shim task: ...
// Everything lives in one containerd namespace; containers use the overlayfs snapshotter and
// runc (io.containerd.runc.v2) with the cgroupfs driver.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "daemon/executor/image.h"

namespace skep::executor {

class Registry;

struct ContainerRequest {
  std::string id;  // [A-Za-z0-9]+([._-][A-Za-z0-9]+)*, at most 76 characters
  ImageInfo image;
  std::string spec_json;  // from BuildOciSpec
  std::map<std::string, std::string> labels;
};

enum class TaskState { kNone, kCreated, kRunning, kPaused, kStopped, kUnknown };
const char* TaskStateName(TaskState s);

struct TaskStatus {
  TaskState state = TaskState::kNone;  // kNone: the container has no task
  uint32_t pid = 0;
  uint32_t exit_code = 0;  // when stopped; 128+signal for a signal death
  int64_t exited_at_unix_nanos = 0;
};

struct ContainerRecord {
  std::string id;
  std::string image;
  std::map<std::string, std::string> labels;
  TaskStatus task;
  std::string stdout_path;
  std::string stderr_path;
};

// A progress line for humans: "pulling 2/3 layers (1.2MB of 3.4MB)".
using PullProgress = std::function<void(const std::string& line)>;
// A task's init process exited.
using ExitCallback = std::function<void(const std::string& container_id, uint32_t exit_code,
                                        int64_t exited_at_unix_nanos)>;
// The kernel killed a process of the container for want of memory (its cgroup's limit).
using OomCallback = std::function<void(const std::string& container_id)>;

class Containerd {
 public:
  // socket_path: containerd's gRPC socket, e.g. /run/containerd/containerd.sock.
  // Connecting is lazy: a containerd that is down makes calls fail with kUnavailable.
  Containerd(const std::string& socket_path, std::string ns);
  ~Containerd();  // stops the exit subscription
  Containerd(const Containerd&) = delete;
  Containerd& operator=(const Containerd&) = delete;

  // containerd's version ("1.6.20~ds1"); a cheap liveness check.
  std::string Version();

  // Pulls `ref` through `registry` and unpacks it into snapshots (everything already present
  // is skipped: blobs, snapshots, the image record), then reads the rootfs's /etc/passwd and
  // /etc/group through a read-only temporary mount of a view snapshot.
  ImageInfo Pull(const std::string& ref, Registry& registry, const PullProgress& progress = {});

  // The rootfs snapshot (parent: image.chain_id) and the container record.
  void CreateContainer(const ContainerRequest& request);
  // Creates and starts the task; stdout/stderr are existing regular files the shim appends
  // to. Returns the pid. A task that fails to start is deleted again.
  uint32_t StartTask(const std::string& id, const std::string& stdout_path,
                     const std::string& stderr_path);
  // Signals the task's init process, or with `all` every process in the container.
  void Kill(const std::string& id, int signal, bool all = false);
  TaskStatus GetTaskStatus(const std::string& id);

  // Calls `on_exit` for every init process that exits, on a strand of `executor` (the
  // subscription is a stream on gRPC's callback API; its timers run there too). The
  // subscription reconnects when containerd goes away; after each (re)subscription every task
  // already stopped is reported too, so exits are delivered at least once, possibly twice.
  // `on_oom`, if given, hears of every out-of-memory kill in a container (before or after its
  // exit: the events are not ordered). Call once; nothing is called once this object is gone.
  void SubscribeExits(boost::asio::any_io_executor executor, ExitCallback on_exit,
                      OomCallback on_oom = nullptr);
  // Ends the exit subscription: once it returns no callback runs. Call while the executor's
  // io_context still runs (the destructor calls it too).
  void StopExits();

  // Runs `argv` in the running container `id` (containerd's exec: the container's own process
  // settings, environment and user, with these arguments), waits at most `timeout` (then kills
  // it), and returns its exit code (-1 when it timed out) and the start of its output (stdout
  // and stderr, at most 4 KiB). `exec_id` names the process; `scratch` is a directory for its
  // output file. Throws ExecutorError when the process cannot be started.
  struct ExecResult {
    int exit_code = -1;
    std::string output;
  };
  ExecResult Exec(const std::string& id, const std::string& exec_id,
                  const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                  const std::string& scratch);

  // Deletes the task (which must not be running), the container and its snapshot. Parts
  // already gone are skipped.
  void Delete(const std::string& id);

  // The containers whose label `key` is `value` (every container when key is empty), with
  // their task's status.
  std::vector<ContainerRecord> List(const std::string& label_key = {},
                                    const std::string& label_value = {});

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace skep::executor
