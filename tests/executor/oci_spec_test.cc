#include <catch2/catch.hpp>
#include <csignal>

#include <boost/json.hpp>

#include "daemon/executor/errors.h"
#include "daemon/executor/oci_spec.h"

using namespace skep::executor;
namespace json = boost::json;

namespace {

const char* kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "# a comment\n"
    "www:x:1000:1000:www:/home/www:/bin/sh\n"
    "broken line\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const char* kGroup =
    "root:x:0:\n"
    "staff:x:50:www,other\n"
    "www:x:1000:\n"
    "video:x:44:www\n"
    "nogroup:x:65534:\n";

ImageInfo Image() {
  ImageInfo i;
  i.name = "docker.io/skep/web:1";
  i.entrypoint = {"/entry"};
  i.cmd = {"serve", "80"};
  i.env = {"PATH=/usr/bin:/bin", "MODE=prod", "KEEP=1"};
  i.working_dir = "/srv";
  i.passwd = kPasswd;
  i.group = kGroup;
  return i;
}

json::object Build(const ImageInfo& image, const ContainerSpec& spec,
                   const std::string& id = "web.1.abcdef0123456789") {
  return json::parse(BuildOciSpec(id, image, spec)).as_object();
}

std::vector<std::string> Strings(const json::value& v) {
  std::vector<std::string> out;
  for (const auto& s : v.as_array())
    out.emplace_back(s.as_string());
  return out;
}

std::vector<std::string> Args(const json::object& s) {
  return Strings(s.at("process").at("args"));
}
std::vector<std::string> Env(const json::object& s) {
  return Strings(s.at("process").at("env"));
}

const json::object* MountAt(const json::object& s, const std::string& dest) {
  for (const auto& m : s.at("mounts").as_array())
    if (m.at("destination").as_string() == dest) return &m.as_object();
  return nullptr;
}

}  // namespace

TEST_CASE("argv is the Entrypoint plus the args or the Cmd when none are given", "[oci_spec]") {
  ContainerSpec spec;
  CHECK(Args(Build(Image(), spec)) == std::vector<std::string>{"/entry", "serve", "80"});
  spec.args = {"check"};
  CHECK(Args(Build(Image(), spec)) == std::vector<std::string>{"/entry", "check"});
}

TEST_CASE("a command replaces the Entrypoint and drops the image's Cmd", "[oci_spec]") {
  ContainerSpec spec;
  spec.command = {"sh", "-c"};
  CHECK(Args(Build(Image(), spec)) == std::vector<std::string>{"sh", "-c"});
  spec.args = {"echo hi"};
  CHECK(Args(Build(Image(), spec)) == std::vector<std::string>{"sh", "-c", "echo hi"});
  ImageInfo cmd_only = Image();
  cmd_only.entrypoint.clear();
  CHECK(Args(Build(cmd_only, ContainerSpec{})) == std::vector<std::string>{"serve", "80"});
}

TEST_CASE("a container with no command at all is refused", "[oci_spec]") {
  ImageInfo empty = Image();
  empty.entrypoint.clear();
  empty.cmd.clear();
  CHECK_THROWS_WITH(BuildOciSpec("c1", empty, ContainerSpec{}),
                    Catch::Contains("has no Entrypoint or Cmd"));
}

TEST_CASE("the spec's env overrides the image's by key and a bare key unsets", "[oci_spec]") {
  ContainerSpec spec;
  spec.env = {"MODE=dev", "NEW=x", "KEEP", "HOME=/data"};
  spec.hostname = "web-1";
  CHECK(Env(Build(Image(), spec)) == std::vector<std::string>{"HOSTNAME=web-1",
                                                              "PATH=/usr/bin:/bin", "MODE=dev",
                                                              "NEW=x", "HOME=/data"});
  CHECK(MergeEnv({"A=1", "B=2", "A=3"}, {"A"}) == std::vector<std::string>{"B=2"});
  CHECK(MergeEnv({"A=1"}, {"A=x=y"}) == std::vector<std::string>{"A=x=y"});
}

TEST_CASE("an image without env gets the default PATH and HOME comes from passwd", "[oci_spec]") {
  ImageInfo image = Image();
  image.env.clear();
  ContainerSpec spec;
  spec.user = "www";
  std::vector<std::string> env = Env(Build(image, spec, "0123456789abcdef"));
  CHECK(env == std::vector<std::string>{
                   "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "HOSTNAME=0123456789ab", "HOME=/home/www"});
}

TEST_CASE("the working dir is the spec's or the image's or /", "[oci_spec]") {
  ContainerSpec spec;
  CHECK(Build(Image(), spec).at("process").at("cwd") == "/srv");
  spec.dir = "/tmp";
  CHECK(Build(Image(), spec).at("process").at("cwd") == "/tmp");
  ImageInfo image = Image();
  image.working_dir.clear();
  CHECK(Build(image, ContainerSpec{}).at("process").at("cwd") == "/");
  spec.dir = "relative";
  CHECK_THROWS_WITH(BuildOciSpec("c", Image(), spec), Catch::Contains("not an absolute path"));
}

TEST_CASE("users resolve as uid or uid:gid or name or name:group", "[oci_spec]") {
  ProcessUser root = ResolveUser("", kPasswd, kGroup);
  CHECK(root.uid == 0);
  CHECK(root.gid == 0);
  CHECK(root.additional_gids == std::vector<uint32_t>{0});
  CHECK(root.home == "/root");

  ProcessUser www = ResolveUser("www", kPasswd, kGroup);
  CHECK(www.uid == 1000);
  CHECK(www.gid == 1000);
  CHECK(www.additional_gids == std::vector<uint32_t>{1000, 50, 44});  // primary, then memberships

  ProcessUser by_uid = ResolveUser("1000", kPasswd, kGroup);
  CHECK(by_uid.gid == 1000);
  CHECK(by_uid.additional_gids == std::vector<uint32_t>{1000, 50, 44});

  ProcessUser unknown_uid = ResolveUser("4242", kPasswd, kGroup);
  CHECK(unknown_uid.uid == 4242);
  CHECK(unknown_uid.gid == 0);  // as containerd and Docker do
  CHECK(unknown_uid.home == "/");

  ProcessUser pair = ResolveUser("1000:44", kPasswd, kGroup);
  CHECK(pair.uid == 1000);
  CHECK(pair.gid == 44);
  ProcessUser named = ResolveUser("www:staff", kPasswd, kGroup);
  CHECK(named.uid == 1000);
  CHECK(named.gid == 50);
  ProcessUser mixed = ResolveUser("nobody:1000", kPasswd, kGroup);
  CHECK(mixed.uid == 65534);
  CHECK(mixed.gid == 1000);
  // No passwd file at all: numeric forms still work.
  CHECK(ResolveUser("7:8", "", "").gid == 8);
}

TEST_CASE("unknown user and group names are errors that say which", "[oci_spec]") {
  CHECK_THROWS_WITH(ResolveUser("ghost", kPasswd, kGroup),
                    "unable to find user ghost: no matching entries in passwd file");
  CHECK_THROWS_WITH(ResolveUser("www:ghosts", kPasswd, kGroup),
                    "unable to find group ghosts: no matching entries in group file");
  CHECK_THROWS_WITH(ResolveUser("a:b:c", kPasswd, kGroup),
                    Catch::Contains("invalid user \"a:b:c\""));
  CHECK_THROWS_WITH(ResolveUser("www:", kPasswd, kGroup), Catch::Contains("invalid user"));
}

TEST_CASE("the spec's user (else the image's) lands in process.user", "[oci_spec]") {
  ImageInfo image = Image();
  image.user = "nobody";
  json::object s = Build(image, ContainerSpec{});
  CHECK(s.at("process").at("user").at("uid") == 65534);
  ContainerSpec spec;
  spec.user = "www:staff";
  s = Build(image, spec);
  CHECK(s.at("process").at("user").at("uid") == 1000);
  CHECK(s.at("process").at("user").at("gid") == 50);
  CHECK(s.at("process").at("user").at("additionalGids") == json::array{50, 44});  // staff, video
}

TEST_CASE("bind and volume and tmpfs mounts become OCI mounts with parents first", "[oci_spec]") {
  ContainerSpec spec;
  spec.mounts = {{MountSpec::Type::kBind, "/host/conf", "/etc/app/conf", true, 0, 0},
                 {MountSpec::Type::kVolume, "/var/lib/skep/volumes/data", "/data", false, 0, 0},
                 {MountSpec::Type::kTmpfs, "", "/scratch", false, 64 << 20, 01777},
                 {MountSpec::Type::kTmpfs, "", "/run", false, 0, 0755}};
  spec.resolv_conf_path = "/var/lib/skep/c1/resolv.conf";
  json::object s = Build(Image(), spec);
  const json::object* conf = MountAt(s, "/etc/app/conf");
  REQUIRE(conf != nullptr);
  CHECK(conf->at("type") == "bind");
  CHECK(conf->at("source") == "/host/conf");
  CHECK(Strings(conf->at("options")) == std::vector<std::string>{"rbind", "rprivate", "ro"});
  const json::object* data = MountAt(s, "/data");
  REQUIRE(data != nullptr);
  CHECK(Strings(data->at("options")) == std::vector<std::string>{"rbind", "rprivate", "rw"});
  const json::object* scratch = MountAt(s, "/scratch");
  REQUIRE(scratch != nullptr);
  CHECK(scratch->at("type") == "tmpfs");
  CHECK(Strings(scratch->at("options")) ==
        std::vector<std::string>{"nosuid", "nodev", "mode=1777", "size=67108864"});
  // A spec mount replaces the default at the same place.
  const json::object* run = MountAt(s, "/run");
  REQUIRE(run != nullptr);
  CHECK(Strings(run->at("options")) == std::vector<std::string>{"nosuid", "nodev", "mode=755"});
  int runs = 0;
  for (const auto& m : s.at("mounts").as_array())
    runs += m.at("destination") == "/run";
  CHECK(runs == 1);
  const json::object* resolv = MountAt(s, "/etc/resolv.conf");
  REQUIRE(resolv != nullptr);
  CHECK(resolv->at("source") == "/var/lib/skep/c1/resolv.conf");
  // Defaults are there.
  for (const char* d : {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"})
    CHECK(MountAt(s, d) != nullptr);
  // /data (depth 1) comes before /etc/app/conf (depth 3).
  std::vector<std::string> order;
  for (const auto& m : s.at("mounts").as_array())
    order.emplace_back(m.at("destination").as_string());
  CHECK(std::find(order.begin(), order.end(), "/data") <
        std::find(order.begin(), order.end(), "/etc/app/conf"));

  ContainerSpec bad;
  bad.mounts = {{MountSpec::Type::kBind, "relative", "/x", false, 0, 0}};
  CHECK_THROWS_WITH(BuildOciSpec("c", Image(), bad), Catch::Contains("not an absolute host path"));
  bad.mounts = {{MountSpec::Type::kTmpfs, "", "x", false, 0, 0}};
  CHECK_THROWS_WITH(BuildOciSpec("c", Image(), bad), Catch::Contains("mount target \"x\""));
}

TEST_CASE("cpu and memory and pids limits become cgroup resources", "[oci_spec]") {
  ContainerSpec spec;
  spec.nano_cpus = 1500000000;  // 1.5 CPUs
  spec.memory_bytes = 256 << 20;
  spec.pids_limit = 100;
  json::object s = Build(Image(), spec, "web.1");
  const json::object& r = s.at("linux").at("resources").as_object();
  CHECK(r.at("cpu").at("period") == 100000);
  CHECK(r.at("cpu").at("quota") == 150000);
  CHECK(r.at("memory").at("limit") == 256 << 20);
  CHECK(r.at("pids").at("limit") == 100);
  CHECK(s.at("linux").at("cgroupsPath") == "/skep/web.1");
  json::object unlimited = Build(Image(), ContainerSpec{});
  CHECK_FALSE(unlimited.at("linux").at("resources").as_object().contains("cpu"));
  CHECK_FALSE(unlimited.at("linux").at("resources").as_object().contains("memory"));
}

TEST_CASE("devices are denied except the default character devices", "[oci_spec]") {
  json::object s = Build(Image(), ContainerSpec{});
  const json::array& devices = s.at("linux").at("resources").at("devices").as_array();
  REQUIRE(devices.size() > 1);
  CHECK(devices[0].at("allow") == false);
  CHECK(devices[0].at("access") == "rwm");
  CHECK_FALSE(devices[0].as_object().contains("major"));
  auto allowed = [&](int64_t major, int64_t minor) {
    for (const auto& d : devices)
      if (d.at("allow") == true && d.at("type") == "c" && d.at("major") == major &&
          (!d.as_object().contains("minor") || d.at("minor") == minor))
        return true;
    return false;
  };
  CHECK(allowed(1, 3));        // null
  CHECK(allowed(1, 5));        // zero
  CHECK(allowed(1, 7));        // full
  CHECK(allowed(1, 8));        // random
  CHECK(allowed(1, 9));        // urandom
  CHECK(allowed(5, 0));        // tty
  CHECK(allowed(5, 2));        // ptmx
  CHECK(allowed(136, 4));      // pts
  CHECK_FALSE(allowed(8, 0));  // a disk
}

TEST_CASE("the spec has containerd's defaults for caps and masked paths and rlimits and namespaces",
          "[oci_spec]") {
  json::object s = Build(Image(), ContainerSpec{});
  std::vector<std::string> caps = Strings(s.at("process").at("capabilities").at("bounding"));
  CHECK(caps.size() == 14);
  CHECK(std::find(caps.begin(), caps.end(), "CAP_NET_BIND_SERVICE") != caps.end());
  CHECK(std::find(caps.begin(), caps.end(), "CAP_SYS_ADMIN") == caps.end());
  CHECK(Strings(s.at("process").at("capabilities").at("effective")) == caps);
  CHECK(s.at("process").at("noNewPrivileges") == true);
  CHECK(s.at("process").at("rlimits").at(0).at("type") == "RLIMIT_NOFILE");
  std::vector<std::string> masked = Strings(s.at("linux").at("maskedPaths"));
  CHECK(std::find(masked.begin(), masked.end(), "/proc/kcore") != masked.end());
  std::vector<std::string> ro = Strings(s.at("linux").at("readonlyPaths"));
  CHECK(std::find(ro.begin(), ro.end(), "/proc/sys") != ro.end());
  CHECK(s.at("root").at("path") == "rootfs");
  const json::array& ns = s.at("linux").at("namespaces").as_array();
  CHECK(ns.size() == 5);
  CHECK_FALSE(ns.back().as_object().contains("path"));
  ContainerSpec joined;
  joined.netns_path = "/var/run/netns/skep-c1";
  json::object j = Build(Image(), joined);
  CHECK(j.at("linux").at("namespaces").as_array().back().at("path") == "/var/run/netns/skep-c1");
}

TEST_CASE("labels become annotations and the hostname defaults to the short id", "[oci_spec]") {
  ContainerSpec spec;
  spec.labels = {{"com.docker.swarm.task.id", "abc"}};
  json::object s = Build(Image(), spec, "0123456789abcdefXYZ");
  CHECK(s.at("annotations").at("com.docker.swarm.task.id") == "abc");
  CHECK(s.at("hostname") == "0123456789ab");
}

TEST_CASE("stop signals are parsed from names and numbers", "[oci_spec]") {
  CHECK(ParseSignal("SIGTERM") == SIGTERM);
  CHECK(ParseSignal("term") == SIGTERM);
  CHECK(ParseSignal("SIGQUIT") == SIGQUIT);
  CHECK(ParseSignal("9") == SIGKILL);
  CHECK_THROWS_WITH(ParseSignal("SIGNOPE"), Catch::Contains("invalid stop signal \"SIGNOPE\""));
  ImageInfo image = Image();
  CHECK(StopSignal(image, ContainerSpec{}) == SIGTERM);
  image.stop_signal = "SIGINT";
  CHECK(StopSignal(image, ContainerSpec{}) == SIGINT);
  ContainerSpec spec;
  spec.stop_signal = "SIGUSR1";
  CHECK(StopSignal(image, spec) == SIGUSR1);
}
