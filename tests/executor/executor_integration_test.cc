// The executor against real parts: a private containerd and a docker-registry on loopback,
// started by deploy/containerd.sh and deploy/registry.sh in a temporary directory, with the
// test images built by deploy/images.sh. Needs root (containerd, mounts, cgroups).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "daemon/executor/containerd.h"
#include "daemon/executor/errors.h"
#include "daemon/executor/oci_spec.h"
#include "daemon/executor/registry.h"

using namespace skep::executor;
namespace fs = std::filesystem;

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs a shell command; throws with its output when it fails.
std::string Sh(const std::string& cmd) {
  std::string out_file = fs::temp_directory_path() / ("skep-exec-sh-" + std::to_string(::getpid()));
  int rc = std::system(("(" + cmd + ") >" + out_file + " 2>&1").c_str());
  std::string out = ReadFile(out_file);
  fs::remove(out_file);
  if (rc != 0)
    throw std::runtime_error("`" + cmd + "` failed (" + std::to_string(rc) + "): " + out);
  return out;
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Mount points under `prefix` (our temporary directories must hold none once stopped).
std::vector<std::string> MountsUnder(const std::string& prefix) {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, dev, root, point;
    f >> id >> parent >> dev >> root >> point;
    if (point.rfind(prefix, 0) == 0) out.push_back(point);
  }
  return out;
}

// A private containerd and registry with the test images; everything is stopped and removed
// when it goes out of scope, also when a test fails.
class Lab {
 public:
  Lab() {
    char tmpl[] = "/tmp/skep-exec-XXXXXX";
    dir = ::mkdtemp(tmpl);
    socket = dir + "/containerd/containerd.sock";
    registry = "127.0.0.1:" + std::to_string(FreePort());
    try {
      Sh(Script("registry.sh") + " start " + dir + "/registry " + registry);
      Sh(Script("containerd.sh") + " start " + dir + "/containerd");
      Sh(Script("images.sh") + " " + registry);
    } catch (...) {
      Stop();
      throw;
    }
  }
  ~Lab() { Stop(); }

  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    std::system((Script("containerd.sh") + " stop " + dir + "/containerd >/dev/null 2>&1").c_str());
    std::system((Script("registry.sh") + " stop " + dir + "/registry >/dev/null 2>&1").c_str());
    // Never remove a tree that still has something mounted in it.
    if (MountsUnder(dir + "/").empty()) fs::remove_all(dir);
  }

  static std::string Script(const std::string& name) {
    return std::string(SKEP_SOURCE_DIR) + "/deploy/" + name;
  }

  RegistryConfig Config() const {
    RegistryConfig c;
    c.insecure = {registry};
    return c;
  }
  std::string Ref(const std::string& name) const { return registry + "/skep/" + name; }
  std::string Ctr(const std::string& args) const {
    return Sh("ctr --address " + socket + " -n skep " + args);
  }

  std::string dir, socket, registry;

 private:
  bool stopped_ = false;
};

// Collects exit notifications; Wait gives up after a minute (a failure bound, not a timing check).
// Where the exit subscriptions run: one io_context for the whole test run, never stopped (a
// subscription is stopped by its client's destructor, on the io_context's thread).
boost::asio::any_io_executor Events() {
  static auto* io = [] {
    auto* io = new boost::asio::io_context;
    static auto guard = boost::asio::make_work_guard(*io);
    std::thread([io] { io->run(); }).detach();
    return io;
  }();
  return io->get_executor();
}

class Exits {
 public:
  ExitCallback Callback() {
    return [this](const std::string& id, uint32_t code, int64_t at) {
      std::lock_guard lock(mu_);
      codes_[id] = code;
      times_[id] = at;
      cv_.notify_all();
    };
  }
  std::optional<uint32_t> Wait(const std::string& id) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(60), [&] { return codes_.count(id) > 0; }))
      return std::nullopt;
    return codes_[id];
  }
  int64_t Time(const std::string& id) {
    std::lock_guard lock(mu_);
    return times_[id];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, uint32_t> codes_;
  std::map<std::string, int64_t> times_;
};

bool IsRoot() {
  if (::geteuid() == 0) return true;
  WARN("skipped: the executor integration tests need root");
  return false;
}

struct Run {
  std::string id;
  std::string stdout_path, stderr_path;
  uint32_t pid = 0;
};

Run Start(Containerd& cd, Lab& lab, const std::string& id, const ImageInfo& image,
          const ContainerSpec& spec, std::map<std::string, std::string> labels = {}) {
  Run r{id, lab.dir + "/" + id + ".out", lab.dir + "/" + id + ".err", 0};
  cd.CreateContainer({id, image, BuildOciSpec(id, image, spec), std::move(labels)});
  r.pid = cd.StartTask(id, r.stdout_path, r.stderr_path);
  return r;
}

// The page a web container serves on port 80 in its network namespace, fetched with the
// host's busybox wget; empty if it does not answer within 10 s (a bounded wait for httpd).
std::string WebPage(uint32_t pid) {
  for (int i = 0; i < 100; ++i) {
    try {
      return Sh("nsenter -t " + std::to_string(pid) + " -n busybox wget -qO- http://127.0.0.1/");
    } catch (const std::exception&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  return {};
}

ContainerSpec Shell(const std::string& script) {
  ContainerSpec s;
  s.command = {"sh", "-c", script};
  return s;
}

}  // namespace

TEST_CASE("an image pulls and unpacks with its config and a second pull skips everything",
          "[integration]") {
  if (!IsRoot()) return;
  Lab lab;
  Registry registry(lab.Config());
  Containerd cd(lab.socket, "skep");
  std::vector<std::string> lines;
  ImageInfo web =
      cd.Pull(lab.Ref("web:1"), registry, [&](const std::string& l) { lines.push_back(l); });
  CHECK(web.name == lab.Ref("web:1"));
  CHECK(web.digest.rfind("sha256:", 0) == 0);
  CHECK(web.target_digest == web.digest);  // skopeo pushed a single manifest
  CHECK(web.chain_id.rfind("sha256:", 0) == 0);
  CHECK(web.entrypoint == std::vector<std::string>{"/usr/local/bin/web-entrypoint"});
  CHECK(web.cmd.empty());
  CHECK(web.exposed_ports == std::vector<std::string>{"80/tcp"});
  CHECK(web.stop_signal == "SIGTERM");
  CHECK(web.labels.at("org.skep.web.version") == "v1");
  CHECK_THAT(web.passwd, Catch::Contains("www:x:1000:1000"));
  CHECK_THAT(web.group, Catch::Contains("staff:x:50:www"));
  std::string all;
  for (const auto& l : lines)
    all += l + "\n";
  CHECK_THAT(all, Catch::Contains("pulling 2/2 layers"));
  CHECK_THAT(all, Catch::Contains("pulled " + web.name));
  // containerd has the image, and our temporary rootfs mounts are gone.
  CHECK_THAT(lab.Ctr("images ls -q"), Catch::Contains(web.name));
  CHECK(MountsUnder("/tmp/skep-rootfs-").empty());

  // A synchronous garbage collection keeps the whole image: the labels hold it together.
  lab.Ctr("leases create --id gc-now");
  lab.Ctr("leases delete --sync gc-now");
  std::string content = lab.Ctr("content ls");
  CHECK_THAT(content, Catch::Contains("containerd.io/gc.ref.content.l.1="));
  CHECK_THAT(content, Catch::Contains("containerd.io/gc.ref.snapshot.overlayfs=" + web.chain_id));
  CHECK_THAT(lab.Ctr("snapshots ls"), Catch::Contains(web.chain_id));

  SECTION("an index resolves to the manifest for this platform") {
    ImageInfo multi = cd.Pull(lab.Ref("multi:1"), registry);
    ImageInfo busybox = cd.Pull(lab.Ref("busybox:1"), registry);
    CHECK(multi.target_digest != multi.digest);  // the index, then the chosen manifest
    CHECK(multi.digest == busybox.digest);       // listed second, after web:1 for another platform
    CHECK(multi.cmd == std::vector<std::string>{"sh"});
    CHECK(multi.labels.count("org.skep.web.version") == 0);
    CHECK_THAT(lab.Ctr("content ls"),
               Catch::Contains("containerd.io/gc.ref.content.m.1=" + multi.digest));
  }
  SECTION("the same image again is found up to date and nothing is downloaded") {
    lines.clear();
    ImageInfo again =
        cd.Pull(lab.Ref("web:1"), registry, [&](const std::string& l) { lines.push_back(l); });
    CHECK(again.digest == web.digest);
    CHECK(again.chain_id == web.chain_id);
    CHECK(again.passwd == web.passwd);
    REQUIRE(lines.size() == 1);
    CHECK_THAT(lines[0], Catch::Contains("is up to date"));
    // By digest it needs no registry at all.
    Registry unreachable(RegistryConfig{{"127.0.0.1:1"}, {}, {}, {}, std::chrono::seconds(5)});
    ImageInfo pinned = cd.Pull(lab.Ref("web@" + web.digest), unreachable);
    CHECK(pinned.chain_id == web.chain_id);
  }
  SECTION("an image sharing the base layer downloads only its own layer") {
    lines.clear();
    ImageInfo v2 =
        cd.Pull(lab.Ref("web:2"), registry, [&](const std::string& l) { lines.push_back(l); });
    CHECK(v2.digest != web.digest);
    CHECK(v2.labels.at("org.skep.web.version") == "v2");
    std::string text;
    for (const auto& l : lines)
      text += l + "\n";
    CHECK_THAT(text, Catch::Contains("pulling 1/1 layers"));
    CHECK_THAT(text, !Catch::Contains("unpacking layer 1/2"));
    CHECK_THAT(text, Catch::Contains("unpacking layer 2/2"));
  }
  lab.Stop();
  CHECK(MountsUnder(lab.dir + "/").empty());
}

TEST_CASE("a command's output lands in the stdout file and its exit code is reported",
          "[integration]") {
  if (!IsRoot()) return;
  Lab lab;
  Registry registry(lab.Config());
  Containerd cd(lab.socket, "skep");
  Exits exits;
  cd.SubscribeExits(Events(), exits.Callback());
  ImageInfo busybox = cd.Pull(lab.Ref("busybox:1"), registry);
  Run r = Start(cd, lab, "exit3", busybox, Shell("echo out; echo err >&2; exit 3"));
  CHECK(r.pid > 0);
  REQUIRE(exits.Wait("exit3") == 3u);
  CHECK(exits.Time("exit3") > 0);
  CHECK(ReadFile(r.stdout_path) == "out\n");
  CHECK(ReadFile(r.stderr_path) == "err\n");
  TaskStatus st = cd.GetTaskStatus("exit3");
  CHECK(st.state == TaskState::kStopped);
  CHECK(st.exit_code == 3);
  cd.Delete("exit3");
  // The test image that fails does so with its own Cmd.
  ImageInfo fail = cd.Pull(lab.Ref("fail:1"), registry);
  Start(cd, lab, "fail", fail, ContainerSpec{});
  REQUIRE(exits.Wait("fail") == 1u);
  cd.Delete("fail");
  lab.Stop();
  CHECK(MountsUnder(lab.dir + "/").empty());
}

TEST_CASE("the spec's env and working dir and user are applied in the container", "[integration]") {
  if (!IsRoot()) return;
  Lab lab;
  Registry registry(lab.Config());
  Containerd cd(lab.socket, "skep");
  Exits exits;
  cd.SubscribeExits(Events(), exits.Callback());
  ImageInfo busybox = cd.Pull(lab.Ref("busybox:1"), registry);
  ContainerSpec spec =
      Shell("id -u; id -g; id -G; pwd; echo \"$GREETING\"; echo \"$HOME\"; echo \"$HOSTNAME\"");
  spec.user = "www";
  spec.dir = "/tmp";
  spec.env = {"GREETING=hello"};
  spec.hostname = "box-1";
  Run r = Start(cd, lab, "whoami", busybox, spec);
  REQUIRE(exits.Wait("whoami") == 0u);
  CHECK(ReadFile(r.stdout_path) == "1000\n1000\n1000 50\n/tmp\nhello\n/home/www\nbox-1\n");
  CHECK(ReadFile(r.stderr_path).empty());
  cd.Delete("whoami");
}

TEST_CASE("a bind mount and a tmpfs mount are visible in the container", "[integration]") {
  if (!IsRoot()) return;
  Lab lab;
  Registry registry(lab.Config());
  Containerd cd(lab.socket, "skep");
  Exits exits;
  cd.SubscribeExits(Events(), exits.Callback());
  ImageInfo busybox = cd.Pull(lab.Ref("busybox:1"), registry);
  fs::create_directories(lab.dir + "/host");
  std::ofstream(lab.dir + "/host/hello") << "from host\n";
  ContainerSpec spec = Shell(
      "cat /data/hello; if touch /data/new 2>/dev/null; then echo writable; else echo read-only; "
      "fi; "
      "grep ' /scratch ' /proc/mounts | cut -d' ' -f3; echo x >/scratch/f && cat /scratch/f");
  spec.mounts = {{MountSpec::Type::kBind, lab.dir + "/host", "/data", true, 0, 0},
                 {MountSpec::Type::kTmpfs, "", "/scratch", false, 1 << 20, 01777}};
  Run r = Start(cd, lab, "mounts", busybox, spec);
  REQUIRE(exits.Wait("mounts") == 0u);
  CHECK(ReadFile(r.stdout_path) == "from host\nread-only\ntmpfs\nx\n");
  CHECK_FALSE(fs::exists(lab.dir + "/host/new"));
  cd.Delete("mounts");
}

TEST_CASE("SIGTERM stops a container that handles it but one that ignores it needs SIGKILL",
          "[integration]") {
  if (!IsRoot()) return;
  Lab lab;
  Registry registry(lab.Config());
  Containerd cd(lab.socket, "skep");
  Exits exits;
  cd.SubscribeExits(Events(), exits.Callback());
  ImageInfo stubborn = cd.Pull(lab.Ref("stubborn:1"), registry);
  ImageInfo web = cd.Pull(lab.Ref("web:1"), registry);

  Run s = Start(cd, lab, "stubborn", stubborn, ContainerSpec{});
  CHECK(cd.GetTaskStatus("stubborn").state == TaskState::kRunning);
  cd.Kill("stubborn", SIGTERM);
  TaskStatus after_term = cd.GetTaskStatus("stubborn");
  CHECK(after_term.state == TaskState::kRunning);
  CHECK(after_term.pid == s.pid);
  cd.Kill("stubborn", SIGKILL, true);
  REQUIRE(exits.Wait("stubborn") == 137u);  // 128 + SIGKILL
  CHECK(cd.GetTaskStatus("stubborn").exit_code == 137);

  // The web entrypoint traps TERM before it serves the page (pid 1 of a namespace has no
  // default signal actions, so without the trap TERM would do nothing).
  Run w = Start(cd, lab, "web", web, ContainerSpec{});
  REQUIRE(WebPage(w.pid) == "web v1 on web\n");  // hostname: the first 12 characters of the id
  cd.Kill("web", SIGTERM);
  REQUIRE(exits.Wait("web") == 0u);
  cd.Delete("web");
  cd.Delete("stubborn");
}

TEST_CASE("a second client finds the running container with the same pid and its exit",
          "[integration]") {
  if (!IsRoot()) return;
  Lab lab;
  Registry registry(lab.Config());
  Run r;
  {
    Containerd first(lab.socket, "skep");
    ImageInfo web = first.Pull(lab.Ref("web:1"), registry);
    ContainerSpec spec;
    spec.hostname = "web-reattach";
    r = Start(first, lab, "reattach", web, spec, {{"skep.test", "reattach"}, {"skep.slot", "1"}});
    // One that exits while the first client is still there.
    Exits first_exits;
    first.SubscribeExits(Events(), first_exits.Callback());
    ImageInfo busybox = first.Pull(lab.Ref("busybox:1"), registry);
    Start(first, lab, "quick", busybox, Shell("exit 5"), {{"skep.test", "quick"}});
    REQUIRE(first_exits.Wait("quick") == 5u);
  }  // skepd "restarts": the first client is gone, the containers stay
  Containerd second(lab.socket, "skep");
  Exits exits;
  second.SubscribeExits(Events(), exits.Callback());
  // A task that stopped before the subscription is reported once the subscription is up.
  REQUIRE(exits.Wait("quick") == 5u);
  second.Delete("quick");
  std::vector<ContainerRecord> found = second.List("skep.test", "reattach");
  REQUIRE(found.size() == 1);
  CHECK(found[0].id == "reattach");
  CHECK(found[0].image == lab.Ref("web:1"));
  CHECK(found[0].labels.at("skep.slot") == "1");
  CHECK(found[0].task.state == TaskState::kRunning);
  CHECK(found[0].task.pid == r.pid);
  CHECK(found[0].stdout_path == r.stdout_path);
  CHECK(second.List("skep.test", "other").empty());
  CHECK(second.List().size() == 1);

  // The container serves its page, named after its own hostname.
  CHECK(WebPage(r.pid) == "web v1 on web-reattach\n");

  second.Kill("reattach", SIGKILL, true);
  REQUIRE(exits.Wait("reattach") == 137u);
  second.Delete("reattach");
}

TEST_CASE("the exit subscription reconnects after containerd restarts", "[integration]") {
  if (!IsRoot()) return;
  Lab lab;
  Registry registry(lab.Config());
  Containerd cd(lab.socket, "skep");
  Exits exits;
  cd.SubscribeExits(Events(), exits.Callback());
  ImageInfo stubborn = cd.Pull(lab.Ref("stubborn:1"), registry);
  Run r = Start(cd, lab, "survivor", stubborn, ContainerSpec{});
  // Stop containerd alone (its shims and containers keep running), then start it again.
  std::string pid = ReadFile(lab.dir + "/containerd/containerd.pid");
  pid.erase(pid.find_last_not_of(" \n") + 1);
  Sh("kill -TERM " + pid + "; for i in $(seq 100); do kill -0 " + pid +
     " 2>/dev/null || exit 0; sleep 0.1; done; exit 1");
  Sh(Lab::Script("containerd.sh") + " start " + lab.dir + "/containerd");
  CHECK(lab.Ctr("tasks ls").find(std::to_string(r.pid)) != std::string::npos);
  lab.Ctr("tasks kill --all --signal SIGKILL survivor");
  REQUIRE(exits.Wait("survivor") == 137u);
  cd.Delete("survivor");
}

TEST_CASE("Delete removes the task and the container and its snapshot and may be repeated",
          "[integration]") {
  if (!IsRoot()) return;
  Lab lab;
  Registry registry(lab.Config());
  Containerd cd(lab.socket, "skep");
  Exits exits;
  cd.SubscribeExits(Events(), exits.Callback());
  ImageInfo busybox = cd.Pull(lab.Ref("busybox:1"), registry);

  Start(cd, lab, "running", busybox, Shell("sleep 600"));
  try {
    cd.Delete("running");
    FAIL("deleting a running task must fail");
  } catch (const ExecutorError& e) {
    CHECK_THAT(e.what(), Catch::StartsWith("containerd Tasks.Delete running: "));
  }
  cd.Kill("running", SIGKILL, true);
  REQUIRE(exits.Wait("running") == 137u);
  cd.Delete("running");
  CHECK(cd.List().empty());
  CHECK(cd.GetTaskStatus("running").state == TaskState::kNone);
  CHECK(lab.Ctr("snapshots ls").find("running") == std::string::npos);
  CHECK(lab.Ctr("containers ls -q").find("running") == std::string::npos);
  CHECK_NOTHROW(cd.Delete("running"));
  CHECK_NOTHROW(cd.Delete("never-existed"));

  // A created container can be created again under the same id only after Delete.
  cd.CreateContainer({"again", busybox, BuildOciSpec("again", busybox, Shell("true")), {}});
  try {
    cd.CreateContainer({"again", busybox, BuildOciSpec("again", busybox, Shell("true")), {}});
    FAIL("expected AlreadyExists");
  } catch (const ExecutorError& e) {
    CHECK(e.kind() == ErrorKind::kAlreadyExists);
  }
  cd.Delete("again");
  CHECK_THROWS_WITH(cd.CreateContainer({"bad id!", busybox, "{}", {}}),
                    Catch::Contains("invalid container id"));
  lab.Stop();
  CHECK(MountsUnder(lab.dir + "/").empty());
}

TEST_CASE("pull errors carry the registry's answer or name the unreachable host", "[integration]") {
  if (!IsRoot()) return;
  Lab lab;
  Registry registry(lab.Config());
  Containerd cd(lab.socket, "skep");
  try {
    cd.Pull(lab.Ref("web:9"), registry);
    FAIL("expected an error");
  } catch (const ExecutorError& e) {
    CHECK(e.kind() == ErrorKind::kNotFound);
    CHECK_THAT(e.what(), Catch::StartsWith("pull " + lab.Ref("web:9") +
                                           ": manifest unknown: manifest unknown"));
  }
  try {
    cd.Pull(lab.Ref("nosuch:1"), registry);
    FAIL("expected an error");
  } catch (const ExecutorError& e) {
    CHECK(e.kind() == ErrorKind::kNotFound);
    CHECK_THAT(e.what(), Catch::Contains("name unknown") || Catch::Contains("manifest unknown"));
  }
  std::string closed = "127.0.0.1:" + std::to_string(FreePort());
  Registry nowhere(RegistryConfig{{closed}, {}, {}, {}, std::chrono::seconds(5)});
  try {
    cd.Pull(closed + "/skep/web:1", nowhere);
    FAIL("expected an error");
  } catch (const ExecutorError& e) {
    CHECK(e.kind() == ErrorKind::kUnavailable);
    CHECK(std::string(e.what()) == "pull " + closed + "/skep/web:1: cannot reach registry " +
                                       closed + ": connection refused");
  }
  // A docker.io name goes to the mirror first.
  RegistryConfig mirrored;
  mirrored.mirrors = {"http://" + lab.registry};
  Registry mirror(mirrored);
  ImageInfo via_mirror = cd.Pull("skep/busybox:1", mirror);
  CHECK(via_mirror.name == "docker.io/skep/busybox:1");
  CHECK_FALSE(via_mirror.chain_id.empty());
}

TEST_CASE("a registry with Basic auth refuses anonymous pulls and serves with credentials",
          "[integration]") {
  if (!IsRoot()) return;
  Lab lab;
  // A second registry that wants user "skep", password "secret" (bcrypt, cost 4).
  std::string dir = lab.dir + "/authreg";
  fs::create_directories(dir);
  std::ofstream(dir + "/htpasswd")
      << "skep:$2b$04$mX66baKeZcqfwNDwHzMUg.0I.1kd8ulW8xxR.SrwRy6.eUQ8n3YHi\n";
  std::string addr = "127.0.0.1:" + std::to_string(FreePort());
  struct Stop {
    std::string dir;
    ~Stop() {
      std::system((Lab::Script("registry.sh") + " stop " + dir + " >/dev/null 2>&1").c_str());
    }
  } stop{dir};
  Sh("SKEP_REGISTRY_HTPASSWD=" + dir + "/htpasswd " + Lab::Script("registry.sh") + " start " + dir +
     " " + addr);
  Sh("skopeo copy --quiet --src-tls-verify=false --dest-tls-verify=false --dest-creds skep:secret "
     "docker://" +
     lab.Ref("busybox:1") + " docker://" + addr + "/skep/busybox:1");

  Containerd cd(lab.socket, "skep");
  RegistryConfig anonymous;
  anonymous.insecure = {addr};
  Registry anon(anonymous);
  try {
    cd.Pull(addr + "/skep/busybox:1", anon);
    FAIL("expected an error");
  } catch (const ExecutorError& e) {
    CHECK(e.kind() == ErrorKind::kUnauthorized);
    CHECK_THAT(e.what(), Catch::Contains("unauthorized: authentication required"));
  }
  RegistryConfig wrong = anonymous;
  wrong.credentials[addr] = {"skep", "wrong"};
  Registry bad(wrong);
  CHECK_THROWS_WITH(cd.Pull(addr + "/skep/busybox:1", bad), Catch::Contains("unauthorized"));
  RegistryConfig right = anonymous;
  right.credentials[addr] = {"skep", "secret"};
  Registry good(right);
  ImageInfo image = cd.Pull(addr + "/skep/busybox:1", good);
  CHECK(image.cmd == std::vector<std::string>{"sh"});
}

TEST_CASE("an HTTPS registry is trusted through the given CA and refused without it",
          "[integration]") {
  if (!IsRoot()) return;
  Lab lab;
  std::string dir = lab.dir + "/tlsreg";
  fs::create_directories(dir);
  std::ofstream(dir + "/san.ext") << "subjectAltName=IP:127.0.0.1\n";
  Sh("cd " + dir +
     " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key"
     " -out ca.crt -days 1 -subj /CN=skep-test-ca"
     " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key"
     " -out server.csr -subj /CN=127.0.0.1"
     " && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt"
     " -days 1 -extfile san.ext");
  std::string addr = "127.0.0.1:" + std::to_string(FreePort());
  struct Stop {
    std::string dir;
    ~Stop() {
      std::system((Lab::Script("registry.sh") + " stop " + dir + " >/dev/null 2>&1").c_str());
    }
  } stop{dir};
  Sh("SKEP_REGISTRY_TLS_CERT=" + dir + "/server.crt SKEP_REGISTRY_TLS_KEY=" + dir + "/server.key " +
     Lab::Script("registry.sh") + " start " + dir + " " + addr);
  Sh("skopeo copy --quiet --src-tls-verify=false --dest-tls-verify=false docker://" +
     lab.Ref("busybox:1") + " docker://" + addr + "/skep/busybox:1");

  Containerd cd(lab.socket, "skep");
  Registry system_cas(RegistryConfig{});
  try {
    cd.Pull(addr + "/skep/busybox:1", system_cas);
    FAIL("expected an error");
  } catch (const ExecutorError& e) {
    CHECK(e.kind() == ErrorKind::kUnavailable);
    CHECK_THAT(e.what(), Catch::Contains("registry " + addr +
                                         ": TLS handshake failed: certificate verify failed"));
  }
  RegistryConfig with_ca;
  with_ca.ca_file = dir + "/ca.crt";
  Registry trusted(with_ca);
  ImageInfo image = cd.Pull(addr + "/skep/busybox:1", trusted);
  CHECK(image.name == addr + "/skep/busybox:1");
  CHECK(image.cmd == std::vector<std::string>{"sh"});
}
