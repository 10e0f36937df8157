// The Debian package on machines that have never seen skep, installed by the cloud-init user
// data of deploy/cloud-init: two fresh Debian 12 roots from Debian's archive
// (deploy/debian-root.sh), each with a network namespace on a bridge of their own, the
// package made from this build tree by deploy/package.sh. Needs root and Debian's archive.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tests/integration/lab.h"

namespace skep::testing {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string LastLine(const std::string& text) {
  std::string t = text;
  while (!t.empty() && t.back() == '\n')
    t.pop_back();
  const auto nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

// The value of KEY= in a systemd unit's text ("" when absent).
std::string UnitSetting(const std::string& unit, const std::string& key) {
  std::istringstream in(unit);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
  }
  return "";
}

// Replaces every ${NAME} of `vars` in `text`, as `envsubst '$NAME ...'` does.
std::string Substitute(std::string text, const std::map<std::string, std::string>& vars) {
  for (const auto& [name, value] : vars) {
    const std::string key = "${" + name + "}";
    for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size()))
      text.replace(at, key.size(), value);
  }
  return text;
}

// A bridge on the host (no address of its own) that the machines' eth0 are plugged into.
class Wire {
 public:
  Wire() : name_("skpkg" + std::to_string(getpid())) {
    Run({"ip", "link", "del", name_});
    REQUIRE(Run({"ip", "link", "add", name_, "type", "bridge"}).code == 0);
    REQUIRE(Run({"ip", "link", "set", name_, "up"}).code == 0);
  }
  ~Wire() { Run({"ip", "link", "del", name_}); }
  Wire(const Wire&) = delete;
  Wire& operator=(const Wire&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// A fresh Debian 12 root with /proc, /sys and /dev, an empty /run, apt's downloads kept in
// /var/cache/skep/apt-archives (shared by the roots, and by later runs), and a network
// namespace whose eth0, on `wire`, has `address`. No init system runs in it: what systemd
// would start, the test starts. Everything is undone at the end, also when a check fails.
class DebianRoot {
 public:
  DebianRoot(const std::string& name, const Wire& wire, std::string address)
      : dir_(fs::path("/var/tmp") / ("skep-package-" + name + "-" + std::to_string(getpid()))),
        netns_("skpkg-" + name + "-" + std::to_string(getpid())),
        address_(std::move(address)) {
    Teardown();
    const Output made = Run({SKEP_SOURCE_DIR "/deploy/debian-root.sh", dir_.string()});
    INFO(made.text());
    REQUIRE(made.code == 0);
    const std::string root = dir_.string();
    fs::create_directories("/var/cache/skep/apt-archives/partial");
    REQUIRE(Run({"mount", "-t", "proc", "proc", root + "/proc"}).code == 0);
    for (const char* dir : {"/sys", "/dev"}) {
      REQUIRE(Run({"mount", "--rbind", dir, root + dir}).code == 0);
      REQUIRE(Run({"mount", "--make-rslave", root + dir}).code == 0);
    }
    REQUIRE(Run({"mount", "-t", "tmpfs", "tmpfs", root + "/run"}).code == 0);
    REQUIRE(Run({"mount", "--bind", "/var/cache/skep/apt-archives",
                 root + "/var/cache/apt/archives"})
                .code == 0);
    fs::copy_file("/etc/resolv.conf", dir_ / "etc/resolv.conf",
                  fs::copy_options::overwrite_existing);
    const std::string veth = "vp" + name + std::to_string(getpid());
    REQUIRE(Run({"ip", "netns", "add", netns_}).code == 0);
    REQUIRE(Run({"ip", "-n", netns_, "link", "set", "lo", "up"}).code == 0);
    REQUIRE(Run({"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns",
                 netns_})
                .code == 0);
    REQUIRE(Run({"ip", "link", "set", veth, "master", wire.name(), "up"}).code == 0);
    REQUIRE(Run({"ip", "-n", netns_, "addr", "add", address_ + "/24", "dev", "eth0"}).code == 0);
    REQUIRE(Run({"ip", "-n", netns_, "link", "set", "eth0", "up"}).code == 0);
    // A default route, so that skepd's default advertise address is eth0's, as on EC2.
    REQUIRE(Run({"ip", "-n", netns_, "route", "add", "default", "dev", "eth0"}).code == 0);
  }
  ~DebianRoot() { Teardown(); }
  DebianRoot(const DebianRoot&) = delete;
  DebianRoot& operator=(const DebianRoot&) = delete;

  const fs::path& dir() const { return dir_; }
  const std::string& address() const { return address_; }

  // A shell command inside the root (chroot): in its namespace when `in_netns`, or else on
  // the host's network (which reaches Debian's archive).
  Output Sh(const std::string& script, bool in_netns = false) const {
    std::vector<std::string> argv;
    if (in_netns) argv = {"ip", "netns", "exec", netns_};
    argv.insert(argv.end(), {"chroot", dir_.string(), "/bin/sh", "-c", script});
    return Run(argv, {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"},
                      {"DEBIAN_FRONTEND", "noninteractive"}, {"LC_ALL", "C"}});
  }
  Output Skep(const std::string& args) const { return Sh("skep " + args, true); }

  // What systemd does at boot and on the package's `deb-systemd-invoke start`: containerd,
  // then skepd as skepd.service says (ExecStart, with EnvironmentFile's flags), until it
  // answers on its control socket.
  void StartServices() const {
    const std::string unit = Slurp(dir_ / "lib/systemd/system/skepd.service");
    const std::string exec_start = UnitSetting(unit, "ExecStart");
    REQUIRE(exec_start.rfind("/usr/bin/skepd", 0) == 0);
    REQUIRE(UnitSetting(unit, "EnvironmentFile") == "-/etc/default/skepd");
    REQUIRE(Sh("containerd >/var/log/containerd.log 2>&1 &", true).code == 0);
    REQUIRE(Sh(". /etc/default/skepd; " + exec_start + " >/var/log/skepd.log 2>&1 &", true).code ==
            0);
    Output ls;
    const bool serving = Eventually([&] {
      ls = Skep("node ls");
      return ls.text().find("skep swarm init") != std::string::npos;
    });
    INFO(ls.text() << Slurp(dir_ / "var/log/skepd.log"));
    REQUIRE(serving);
  }

  // Ends every process started in the namespace (skepd, containerd and their tasks).
  void KillAll() const {
    Run({"sh", "-c", "ip netns pids " + netns_ + " 2>/dev/null | xargs -r kill -9"});
    Eventually([&] { return Run({"ip", "netns", "pids", netns_}).out.empty(); });
  }

 private:
  void Teardown() const {
    KillAll();
    Run({"ip", "netns", "del", netns_});
    if (fs::exists(dir_)) {
      // Every mount under the root, deepest first: /proc, /sys, /dev, /run, apt's cache, and
      // the task namespaces skepd bound under its state.
      Run({"sh", "-c", "grep -o ' " + dir_.string() +
                           "/[^ ]*' /proc/self/mounts | sort -r | xargs -r umount -l"});
      fs::remove_all(dir_);
    }
  }

  fs::path dir_;
  std::string netns_;
  std::string address_;
};

// The commands of a cloud-config's runcmd, one line each, as cloud-init itself renders them
// (its own shellify, run by the python of `root`, where cloud-init is installed).
std::vector<std::string> RunCommands(const DebianRoot& root, const std::string& user_data) {
  const Output o = root.Sh("python3 -c 'import sys, yaml; from cloudinit import util; "
                           "sys.stdout.write(util.shellify(yaml.safe_load(open(\"" +
                           user_data + "\"))[\"runcmd\"], add_header=False))'");
  INFO(o.text());
  REQUIRE(o.code == 0);
  std::vector<std::string> lines;
  std::istringstream in(o.out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

// Runs user data's commands on `root` as cloud-init would, except that there is no systemd:
// the download and apt run on the host's network, StartServices stands in for the unit's
// start by the package, and the rest (skep's own commands) runs in the node's namespace.
void RunUserData(const DebianRoot& root, const std::vector<std::string>& commands) {
  for (const std::string& command : commands) {
    const bool swarm = command.find("skep") != std::string::npos &&
                       command.find("skep.deb") == std::string::npos;
    const Output o = root.Sh(command, swarm);
    INFO(command << "\n" << o.text());
    REQUIRE(o.code == 0);
    if (command.find("apt-get install") != std::string::npos) root.StartServices();
  }
}

}  // namespace

TEST_CASE("the amd64 package installs on fresh Debian 12 machines by cloud-init's user data, "
          "and keeps its state until purged",
          "[package]") {
  REQUIRE(getuid() == 0);
  Wire wire;
  DebianRoot manager("m", wire, "192.0.2.10");
  DebianRoot worker("w", wire, "192.0.2.20");

  // The package, from this build tree.
  std::string deb;
  {
    const Output pkg = Run({SKEP_SOURCE_DIR "/deploy/package.sh", "--build", SKEP_BINARY_DIR,
                            "--out", (manager.dir() / "tmp").string()});
    INFO(pkg.text());
    REQUIRE(pkg.code == 0);
    deb = "/tmp/" + fs::path(LastLine(pkg.out)).filename().string();
    fs::copy_file(manager.dir().string() + deb, worker.dir().string() + deb);
  }

  // curl, as Debian's cloud images have it; cloud-init, for its schema check and its own
  // rendering of the commands.
  {
    Output o = manager.Sh("apt-get update -qq && apt-get install -y -qq --no-install-recommends "
                          "curl ca-certificates cloud-init");
    INFO(o.text());
    REQUIRE(o.code == 0);
    o = worker.Sh("apt-get update -qq && apt-get install -y -qq --no-install-recommends curl");
    REQUIRE(o.code == 0);
  }
  for (const char* file : {"manager.yaml", "worker.yaml"}) {
    fs::copy_file(fs::path(SKEP_SOURCE_DIR "/deploy/cloud-init") / file, manager.dir() / "tmp" / file);
    const Output schema = manager.Sh(std::string("cloud-init schema --config-file /tmp/") + file);
    INFO(file << ": " << schema.text());
    CHECK(schema.code == 0);
  }

  // The first manager: user data without a token. apt resolves every dependency from
  // Debian's archive (the user data leaves recommends out: Depends alone must be enough).
  const std::string url = "file://" + deb;
  {
    std::ofstream(manager.dir() / "tmp/user-data.yaml")
        << Substitute(Slurp(SKEP_SOURCE_DIR "/deploy/cloud-init/manager.yaml"),
                      {{"SKEP_DEB_URL", url}, {"SKEP_TOKEN", ""}, {"SKEP_MANAGER", ""}});
    RunUserData(manager, RunCommands(manager, "/tmp/user-data.yaml"));
  }
  for (const char* program : {"/usr/bin/skepd", "/usr/bin/skep"}) {
    const Output ldd = manager.Sh(std::string("ldd ") + program);
    INFO(ldd.text());
    CHECK(ldd.code == 0);
    CHECK(ldd.out.find("not found") == std::string::npos);
  }
  CHECK(manager.Sh("skepd --version").out.find("(linux/amd64)") != std::string::npos);
  // Enabled: a link in multi-user.target.wants (absolute, so not followed from out here).
  CHECK(fs::is_symlink(manager.dir() / "etc/systemd/system/multi-user.target.wants/skepd.service"));
  CHECK(fs::exists(manager.dir() / "usr/share/bash-completion/completions/skep"));
  // systemd accepts the unit as installed (its binary, its dependencies on containerd's unit).
  const Output verify = Run({"systemd-analyze", "verify", "--man=no", "--recursive-errors=no",
                             "--root=" + manager.dir().string(), "/lib/systemd/system/skepd.service"});
  INFO(verify.text());
  CHECK(verify.code == 0);

  // A worker: user data with the worker token and the manager's private address.
  const std::string token = [&] {
    std::string t = manager.Skep("swarm join-token -q worker").out;
    return t.substr(0, t.find('\n'));
  }();
  REQUIRE(token.rfind("SWMTKN-1-", 0) == 0);
  {
    const std::string user_data =
        Substitute(Slurp(SKEP_SOURCE_DIR "/deploy/cloud-init/worker.yaml"),
                   {{"SKEP_DEB_URL", url}, {"SKEP_TOKEN", token}, {"SKEP_MANAGER", manager.address()}});
    std::ofstream(manager.dir() / "tmp/worker-data.yaml") << user_data;
    RunUserData(worker, RunCommands(manager, "/tmp/worker-data.yaml"));
  }
  Output ls;
  const bool ready = Eventually([&] {
    ls = manager.Skep("node ls");
    std::istringstream in(ls.out);
    int ready_rows = 0;
    for (std::string line; std::getline(in, line);)
      ready_rows += line.find(" Ready ") != std::string::npos;
    return ls.code == 0 && ready_rows == 2 && ls.out.find("Leader") != std::string::npos;
  });
  INFO(ls.text() << Slurp(worker.dir() / "var/log/skepd.log"));
  CHECK(ready);

  // Removing keeps the node's state; purging deletes it.
  worker.KillAll();
  const Output removed = worker.Sh("apt-get remove -y -qq skep");
  INFO(removed.text());
  REQUIRE(removed.code == 0);
  CHECK_FALSE(fs::exists(worker.dir() / "usr/bin/skepd"));
  CHECK(fs::exists(worker.dir() / "var/lib/skep/certificates"));
  CHECK(fs::exists(worker.dir() / "etc/default/skepd"));
  const Output purged = worker.Sh("apt-get purge -y -qq skep");
  INFO(purged.text());
  REQUIRE(purged.code == 0);
  CHECK_FALSE(fs::exists(worker.dir() / "var/lib/skep"));
  CHECK_FALSE(fs::exists(worker.dir() / "etc/default/skepd"));
  CHECK_FALSE(
      fs::is_symlink(worker.dir() / "etc/systemd/system/multi-user.target.wants/skepd.service"));
}

}  // namespace skep::testing
