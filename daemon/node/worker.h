// The worker: runs the tasks the managers assign to this node as containers through
// containerd, and reports what becomes of them. The managers decide; the worker never restarts
// a task on its own: a task that exits is reported, and the orchestrator makes its replacement.
//
// It keeps the tasks it was given, with their last status, in <data-dir>/tasks.pb, and labels
// every container with its task, so that after a restart of skepd it re-attaches to the
// containers still running (same pids) and learns of those that exited meanwhile. A container
// whose task the managers no longer list (the node was down and its tasks moved) is stopped and
// removed once the first list after a (re)connection arrives. A task's stdout and stderr go to
// <data-dir>/tasks/<id>/log through the logger the shim runs (daemon/executor/logfile.h); the
// directory stays while the task is in its service's history.
//
// State lives on one strand; containerd and registry calls, which block, run on a small pool
// and post their outcome back. Status updates go to the leader in batches, and again after a
// reconnection until one is accepted. Its parts: the task lifecycle (worker.cc), starting a
// container (task_starter.h), health checks (health_check.h), the overlay networks, service
// mesh and DNS of its tasks (task_networks.h, task_dns.h), and the reports
// (status_reporter.h).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/executor/logfile.h"
#include "daemon/executor/registry.h"
#include "dispatcher.pb.h"

namespace skep::gossip {
class Agent;
}

namespace skep::node {

struct WorkerOptions {
  std::string data_dir;
  std::string containerd_socket = "/run/containerd/containerd.sock";
  std::string containerd_namespace = "skep";
  executor::RegistryConfig registry;
  // The task's logger, which containerd's shim runs (this skepd; see daemon/executor/logfile.h).
  std::string logger_binary;
  executor::LogFileOptions logs;
  // This node's underlay address, the VTEP of its overlay networks (none: no overlay).
  std::string vtep;
  std::string node_id;
  // The gossip layer, which carries the overlay networks' endpoint tables; it outlives the
  // worker. None: no overlay peers.
  gossip::Agent* gossip = nullptr;
};

class Worker {
 public:
  // `report(updates, done)` sends a batch of status updates to the leader and calls `done` with
  // whether it was taken; it must not block.
  using Report = std::function<void(std::vector<api::TaskStatusUpdate>, std::function<void(bool)>)>;
  Worker(WorkerOptions options, Report report);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Loads the task store and re-attaches to containerd. Does not fail when containerd is
  // down: tasks are rejected with containerd's error until it is back.
  void Start();
  void Stop();
  // The complete list of the node's tasks, from a session message, and the ended tasks still in
  // the history, whose logs stay (every other task directory goes).
  void Assign(std::vector<api::Task> tasks, std::vector<std::string> kept = {});
  // What changed since: tasks added or changed, and those that are no longer the node's.
  void Update(std::vector<api::Task> changed, std::vector<std::string> removed,
              std::vector<std::string> kept);
  // The registry logins of the services whose tasks are here, by service ID (from a session
  // message, before its task list): the pulls of those tasks' images use them.
  void SetRegistryAuth(std::map<std::string, api::RegistryAuth> auth);
  // The overlay networks of the node's tasks and the ingress network, the swarm's VXLAN port
  // and the node's own addresses (on ingress); applied before the task lists that follow.
  void SetNetworks(std::vector<api::Network> networks, uint16_t data_path_port,
                   std::vector<api::NetworkAttachment> node_attachments);
  // The node leaves the swarm: every container is stopped and removed. Returns once they are,
  // or after `timeout`.
  void Leave(std::chrono::milliseconds timeout);

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace skep::node
