#include "tests/integration/lab.h"

#include <cstdlib>

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

namespace skep::testing {

Output Run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    for (const auto& [k, v] : env)
      setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  Output o;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? o.out : o.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return o;
}

bool Eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pred();
}

bool Throughout(const std::function<bool()>& pred, std::chrono::milliseconds window) {
  const auto deadline = std::chrono::steady_clock::now() + window;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!pred()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pred();
}

Lab::Lab(const std::string& name, int subnet, int managers, int workers,
         std::vector<std::string> init_args, std::string data_net)
    : name_(name), subnet_(subnet), data_net_(std::move(data_net)),
      root_("/var/lib/skep-lab/" + name) {
  for (const auto& a : init_args)
    init_args_ += (init_args_.empty() ? "" : " ") + a;
  const Output o =
      Lab_({"up", "--managers", std::to_string(managers), "--workers", std::to_string(workers)});
  if (o.code != 0) {
    // The nodes' logs go with the lab: their last lines come with the failure.
    const std::string logs = Logs(12);
    if (std::getenv("SKEP_LAB_KEEP") == nullptr) Lab_({"down"});
    throw std::runtime_error("lab up failed: " + o.text() + "\n" + logs);
  }
}

Lab::~Lab() {
  if (std::getenv("SKEP_LAB_KEEP") != nullptr) return;  // to look at a failure: lab.sh down later
  Lab_({"down"});
}

std::map<std::string, std::string> Lab::Env() const {
  return {{"SKEP_LAB", name_},
          {"SKEP_LAB_NET", "10.89." + std::to_string(subnet_)},
          {"SKEP_LAB_NO_BUILD", "1"},
          {"SKEP_LAB_NO_SERVICE", "1"},
          {"SKEP_LAB_INIT_ARGS", init_args_},
          {"SKEP_LAB_DATA_NET", data_net_},
          {"SKEP_LAB_BIN", SKEP_BINARY_DIR "/daemon"}};
}

Output Lab::Lab_(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {SKEP_SOURCE_DIR "/deploy/lab.sh"};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv, Env());
}

Output Lab::Skep(const std::string& node, const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"exec", node, "--", "skep"};
  argv.insert(argv.end(), args.begin(), args.end());
  return Lab_(argv);
}

Output Lab::Exec(const std::string& node, const std::string& task,
                 const std::vector<std::string>& argv) const {
  static int next = 0;
  std::vector<std::string> cmd = {"ctr", "-a", root_ + "/" + node + "/containerd/containerd.sock",
                                  "-n", "skep", "tasks", "exec", "--exec-id",
                                  "test" + std::to_string(getpid()) + "-" + std::to_string(++next),
                                  task};
  cmd.insert(cmd.end(), argv.begin(), argv.end());
  return Run(cmd);
}

std::string Lab::RunningTask(const std::string& service) const {
  std::string out = Skep("m1", {"service", "ps", "-q", "--no-trunc", "--filter",
                                "desired-state=running", service})
                        .out;
  return out.substr(0, out.find('\n'));
}

void Lab::Kill(const std::string& node) const {
  Lab_({"kill", node});
}
void Lab::Stop(const std::string& node) const {
  const Output o = Lab_({"stop", node});
  if (o.code != 0) throw std::runtime_error("cannot stop " + node + ": " + o.text());
}
void Lab::Start(const std::string& node) const {
  const Output o = Lab_({"start", node});
  if (o.code != 0) throw std::runtime_error("cannot start " + node + ": " + o.text());
}
void Lab::Cut(const std::string& node) const {
  Lab_({"cut", node});
}
void Lab::Heal(const std::string& node) const {
  Lab_({"heal", node});
}

std::string Lab::Ip(const std::string& node) const {
  const int n = std::stoi(node.substr(1));
  return "10.89." + std::to_string(subnet_) + "." +
         std::to_string(node[0] == 'm' ? 10 + n : 100 + n);
}

std::string Lab::CertDir(const std::string& node) const {
  return root_ + "/" + node + "/data/certificates";
}

std::map<std::string, Lab::Row> Lab::Nodes(const std::string& node) const {
  std::map<std::string, Row> rows;
  const Output o = Skep(node, {"node", "ls"});
  if (o.code != 0) return rows;
  std::istringstream in(o.out);
  std::string line;
  std::getline(in, line);  // header
  const size_t host_col = line.find("HOSTNAME"), status_col = line.find("STATUS"),
               avail_col = line.find("AVAILABILITY"), mgr_col = line.find("MANAGER STATUS"),
               ver_col = line.find("ENGINE VERSION");
  auto field = [](const std::string& l, size_t from, size_t to) {
    std::string f = from < l.size()
                        ? l.substr(from, to == std::string::npos ? std::string::npos : to - from)
                        : "";
    while (!f.empty() && f.back() == ' ')
      f.pop_back();
    return f;
  };
  while (std::getline(in, line)) {
    Row r;
    std::string id = field(line, 0, host_col);
    r.self = id.size() > 2 && id.substr(id.size() - 2) == " *";
    r.id = r.self ? id.substr(0, id.size() - 2) : id;
    r.hostname = field(line, host_col, status_col);
    r.status = field(line, status_col, avail_col);
    r.availability = field(line, avail_col, mgr_col);
    r.manager_status = field(line, mgr_col, ver_col);
    r.version = field(line, ver_col, std::string::npos);
    rows[r.hostname] = r;
  }
  return rows;
}

std::string Lab::Leader(const std::string& via) const {
  for (const auto& [host, r] : Nodes(via)) {
    if (r.manager_status == "Leader") return host;
  }
  return "";
}

std::string Lab::ContainerdSocket(const std::string& node) const {
  return root_ + "/" + node + "/containerd/containerd.sock";
}

std::map<std::string, std::string> Lab::Containers(const std::string& node) const {
  const Output o = Run({"ctr", "-a", ContainerdSocket(node), "-n", "skep", "tasks", "ls"});
  std::map<std::string, std::string> out;
  std::istringstream in(o.out);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, pid, status;
    ls >> id >> pid >> status;
    if (!id.empty()) out[id] = pid + " " + status;
  }
  return out;
}

std::string Lab::Logs(size_t lines) const {
  std::string out;
  for (const char* n : {"m1", "m2", "m3", "m4", "m5", "w1", "w2", "w3"}) {
    const Output o = Run({"tail", "-n", std::to_string(lines), root_ + "/" + n + "/skepd.log"});
    if (o.code != 0) continue;
    out += "---- " + std::string(n) + "\n";
    std::istringstream in(o.out);
    std::string line;
    while (std::getline(in, line)) {
      if (line.find("component=grpc") == std::string::npos) out += line + "\n";
    }
  }
  return out;
}

}  // namespace skep::testing
