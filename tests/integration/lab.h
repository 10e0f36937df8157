// Integration tests run real skepd processes in network namespaces through deploy/lab.sh.
// Each test gets a lab of its own (name and subnet) and tears it down afterwards.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace skep::testing {

struct Output {
  int code = -1;
  std::string out;
  std::string err;
  std::string text() const { return out + err; }
};

// Runs argv (no shell) and collects its output.
Output Run(const std::vector<std::string>& argv,
           const std::map<std::string, std::string>& env = {});

class Lab {
 public:
  // Brings up `managers` + `workers` nodes: m1 inits, the rest join.
  // `init_args`: more flags for m1's `swarm init`. `data_net` (a /24 prefix such as
  // "10.90.35"): every node also has an eth1 there and carries its overlay traffic on it.
  Lab(const std::string& name, int subnet, int managers, int workers,
      std::vector<std::string> init_args = {}, std::string data_net = "");
  ~Lab();
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  // `skep ARGS` on NODE.
  Output Skep(const std::string& node, const std::vector<std::string>& args) const;
  Output Lab_(const std::vector<std::string>& args) const;  // deploy/lab.sh ARGS
  // ARGV in the container of task TASK (its full ID) on NODE, through containerd (ctr).
  Output Exec(const std::string& node, const std::string& task,
              const std::vector<std::string>& argv) const;
  // The full ID of a running task of SERVICE (the first, when there are several).
  std::string RunningTask(const std::string& service) const;
  void Kill(const std::string& node) const;
  void Stop(const std::string& node) const;  // SIGTERM, waits for the exit
  void Start(const std::string& node) const;
  void Cut(const std::string& node) const;  // all of NODE's traffic dropped (nftables)
  void Heal(const std::string& node) const;

  std::string Ip(const std::string& node) const;
  std::string Root() const { return root_; }
  // NODE's containerd socket, and its tasks in skep's namespace (ctr tasks ls): container
  // (task) ID -> "PID STATUS".
  std::string ContainerdSocket(const std::string& node) const;
  std::map<std::string, std::string> Containers(const std::string& node) const;
  std::string CertDir(const std::string& node) const;

  // `skep node ls` rows on NODE, keyed by hostname: ID, STATUS, AVAILABILITY, MANAGER STATUS.
  struct Row {
    std::string id, hostname, status, availability, manager_status, version;
    bool self = false;
  };
  std::map<std::string, Row> Nodes(const std::string& node) const;
  std::string Leader(const std::string& via) const;  // hostname of the Leader row, or ""
  // The end of every node's skepd log, for failure messages.
  std::string Logs(size_t lines = 25) const;

 private:
  std::map<std::string, std::string> Env() const;
  std::string name_;
  int subnet_;
  std::string init_args_;
  std::string data_net_;
  std::string root_;
};

// Polls `pred` every 100 ms until it holds or `timeout` passes.
bool Eventually(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout = std::chrono::seconds(20));
// Polls `pred` every 100 ms for `window`: false as soon as it does not hold. For "nothing
// happens": an observation that fails the moment something does, not one look after a sleep.
bool Throughout(const std::function<bool()>& pred, std::chrono::milliseconds window);

}  // namespace skep::testing
