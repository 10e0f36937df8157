#include "daemon/executor/oci_spec.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <climits>
#include <csignal>
#include <optional>
#include <sstream>

#include "daemon/executor/errors.h"

namespace skep::executor {
namespace json = boost::json;
namespace {

[[noreturn]] void Invalid(const std::string& why) {
  throw ExecutorError(ErrorKind::kInvalidArgument, why);
}

constexpr const char* kDefaultPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// containerd's default set (oci/spec.go defaultUnixCaps), which is also Docker's.
constexpr const char* kCapabilities[] = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
    "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL",    "CAP_AUDIT_WRITE"};

constexpr const char* kMaskedPaths[] = {
    "/proc/acpi",          "/proc/asound",     "/proc/kcore",       "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/sys/firmware",       "/proc/scsi"};
constexpr const char* kReadonlyPaths[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                          "/proc/sysrq-trigger"};

struct DefaultDevice {
  int64_t major;
  int64_t minor;  // -1 = every minor (the "*" wildcard)
};
// Character devices a container may use (ctr's WithDefaultUnixDevices): null, random, full,
// tty, zero, urandom, console, the /dev/pts slaves and ptmx. Everything else is denied.
constexpr DefaultDevice kAllowedDevices[] = {{1, 3}, {1, 8}, {1, 7},    {5, 0}, {1, 5},
                                             {1, 9}, {5, 1}, {136, -1}, {5, 2}};

struct PasswdEntry {
  std::string name;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string home;
};
struct GroupEntry {
  std::string name;
  uint32_t gid = 0;
  std::vector<std::string> members;
};

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t i = s.find(sep, start);
    out.emplace_back(s.substr(start, i == std::string_view::npos ? i : i - start));
    if (i == std::string_view::npos) return out;
    start = i + 1;
  }
}

// A decimal id in [0, INT32_MAX] (runc's limit), or nothing.
std::optional<uint32_t> ParseId(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v > INT32_MAX) return std::nullopt;
  return static_cast<uint32_t>(v);
}

std::vector<PasswdEntry> ParsePasswd(const std::string& text) {
  std::vector<PasswdEntry> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f = Split(line, ':');
    if (f.size() < 4) continue;
    auto uid = ParseId(f[2]);
    auto gid = ParseId(f[3]);
    if (!uid || !gid) continue;
    out.push_back({f[0], *uid, *gid, f.size() > 5 ? f[5] : ""});
  }
  return out;
}

std::vector<GroupEntry> ParseGroup(const std::string& text) {
  std::vector<GroupEntry> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f = Split(line, ':');
    if (f.size() < 3) continue;
    auto gid = ParseId(f[2]);
    if (!gid) continue;
    GroupEntry g{f[0], *gid, {}};
    if (f.size() > 3 && !f[3].empty())
      for (std::string& m : Split(f[3], ','))
        g.members.push_back(std::move(m));
    out.push_back(std::move(g));
  }
  return out;
}

json::object Mount(std::string destination, std::string type, std::string source,
                   std::vector<std::string> options) {
  json::array opts;
  for (auto& o : options)
    opts.emplace_back(std::move(o));
  return {{"destination", std::move(destination)},
          {"type", std::move(type)},
          {"source", std::move(source)},
          {"options", std::move(opts)}};
}

json::array DefaultMounts() {
  json::array m;
  m.push_back(Mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}));
  m.push_back(
      Mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}));
  m.push_back(Mount("/dev/pts", "devpts", "devpts",
                    {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}));
  m.push_back(
      Mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}));
  m.push_back(Mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}));
  m.push_back(Mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}));
  m.push_back(
      Mount("/run", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}));
  return m;
}

size_t Depth(const std::string& path) {
  return std::count(path.begin(), path.end(), '/');
}

json::array Strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v)
    a.emplace_back(s);
  return a;
}

}  // namespace

std::vector<std::string> MergeEnv(std::vector<std::string> base,
                                  const std::vector<std::string>& overrides) {
  auto key_of = [](const std::string& e) { return e.substr(0, e.find('=')); };
  for (const std::string& o : overrides) {
    std::string key = key_of(o);
    auto it = std::find_if(base.begin(), base.end(),
                           [&](const std::string& e) { return key_of(e) == key; });
    if (o.find('=') == std::string::npos) {
      base.erase(std::remove_if(base.begin(), base.end(),
                                [&](const std::string& e) { return key_of(e) == key; }),
                 base.end());
    } else if (it != base.end()) {
      *it = o;
    } else {
      base.push_back(o);
    }
  }
  return base;
}

ProcessUser ResolveUser(const std::string& user, const std::string& passwd_text,
                        const std::string& group_text) {
  std::vector<PasswdEntry> passwd = ParsePasswd(passwd_text);
  std::vector<GroupEntry> groups = ParseGroup(group_text);
  std::vector<std::string> parts = Split(user, ':');
  if (parts.size() > 2)
    Invalid(fmt::format("invalid user \"{}\": want uid[:gid] or name[:group]", user));
  if (parts.size() == 2 && (parts[0].empty() || parts[1].empty()))
    Invalid(fmt::format("invalid user \"{}\": want uid[:gid] or name[:group]", user));

  ProcessUser out;
  std::string name;  // for supplementary groups
  const PasswdEntry* entry = nullptr;
  const std::string& who = parts[0];  // empty: root
  if (auto uid = who.empty() ? std::optional<uint32_t>(0) : ParseId(who)) {
    out.uid = *uid;
    for (const auto& p : passwd)
      if (p.uid == *uid) {
        entry = &p;
        break;
      }
    // An unknown uid is allowed: gid 0, as containerd and Docker do.
  } else {
    for (const auto& p : passwd)
      if (p.name == who) {
        entry = &p;
        break;
      }
    if (entry == nullptr)
      Invalid(fmt::format("unable to find user {}: no matching entries in passwd file", who));
    out.uid = entry->uid;
  }
  if (entry != nullptr) {
    out.gid = entry->gid;
    name = entry->name;
    out.home = entry->home;
  }
  if (parts.size() == 2) {
    if (auto gid = ParseId(parts[1])) {
      out.gid = *gid;
    } else {
      auto g = std::find_if(groups.begin(), groups.end(),
                            [&](const GroupEntry& e) { return e.name == parts[1]; });
      if (g == groups.end())
        Invalid(
            fmt::format("unable to find group {}: no matching entries in group file", parts[1]));
      out.gid = g->gid;
    }
  }
  if (out.home.empty()) out.home.push_back('/');
  out.additional_gids.push_back(out.gid);
  if (!name.empty())
    for (const auto& g : groups)
      if (std::find(g.members.begin(), g.members.end(), name) != g.members.end() &&
          std::find(out.additional_gids.begin(), out.additional_gids.end(), g.gid) ==
              out.additional_gids.end())
        out.additional_gids.push_back(g.gid);
  return out;
}

int ParseSignal(const std::string& text) {
  static const std::pair<const char*, int> kSignals[] = {
      {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"ILL", SIGILL},
      {"TRAP", SIGTRAP},     {"ABRT", SIGABRT}, {"BUS", SIGBUS},     {"FPE", SIGFPE},
      {"KILL", SIGKILL},     {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},   {"USR2", SIGUSR2},
      {"PIPE", SIGPIPE},     {"ALRM", SIGALRM}, {"TERM", SIGTERM},   {"CHLD", SIGCHLD},
      {"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN},
      {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},
      {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
      {"PWR", SIGPWR},       {"SYS", SIGSYS}};
  std::string s;
  for (char c : text)
    s += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (auto n = ParseId(s); n && *n >= 1 && *n <= 64) return static_cast<int>(*n);
  if (s.rfind("SIG", 0) == 0) s = s.substr(3);
  for (const auto& [name, number] : kSignals)
    if (s == name) return number;
  Invalid(fmt::format("invalid stop signal \"{}\": want a name like SIGTERM or a number", text));
}

int StopSignal(const ImageInfo& image, const ContainerSpec& spec) {
  if (!spec.stop_signal.empty()) return ParseSignal(spec.stop_signal);
  if (!image.stop_signal.empty()) return ParseSignal(image.stop_signal);
  return SIGTERM;
}

std::string BuildOciSpec(const std::string& id, const ImageInfo& image, const ContainerSpec& spec,
                         const std::string& cgroup_parent) {
  // argv: see the header for Docker's rule.
  std::vector<std::string> args;
  if (!spec.command.empty()) {
    args = spec.command;
    args.insert(args.end(), spec.args.begin(), spec.args.end());
  } else {
    args = image.entrypoint;
    const auto& tail = spec.args.empty() ? image.cmd : spec.args;
    args.insert(args.end(), tail.begin(), tail.end());
  }
  if (args.empty())
    Invalid(
        fmt::format("no command for container {}: the image {} has no Entrypoint or Cmd and "
                    "the spec gives none",
                    id, image.name));

  std::string cwd = !spec.dir.empty()            ? spec.dir
                    : !image.working_dir.empty() ? image.working_dir
                                                 : "/";
  if (cwd[0] != '/') Invalid(fmt::format("working directory \"{}\" is not an absolute path", cwd));

  ProcessUser user =
      ResolveUser(!spec.user.empty() ? spec.user : image.user, image.passwd, image.group);
  std::string hostname = !spec.hostname.empty() ? spec.hostname : id.substr(0, 12);

  std::vector<std::string> base;
  bool image_sets_path = std::any_of(image.env.begin(), image.env.end(),
                                     [](const std::string& e) { return e.rfind("PATH=", 0) == 0; });
  if (!image_sets_path) base.emplace_back(kDefaultPath);
  base.push_back("HOSTNAME=" + hostname);
  base.insert(base.end(), image.env.begin(), image.env.end());
  std::vector<std::string> env = MergeEnv(std::move(base), spec.env);
  if (std::none_of(env.begin(), env.end(),
                   [](const std::string& e) { return e.rfind("HOME=", 0) == 0; }))
    env.push_back("HOME=" + user.home);

  json::array caps;
  for (const char* c : kCapabilities)
    caps.emplace_back(c);
  json::array gids;
  for (uint32_t g : user.additional_gids)
    gids.emplace_back(g);
  json::object process{
      {"terminal", false},
      {"user", {{"uid", user.uid}, {"gid", user.gid}, {"additionalGids", std::move(gids)}}},
      {"args", Strings(args)},
      {"env", Strings(env)},
      {"cwd", cwd},
      {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
      {"rlimits", json::array{{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}}},
      {"noNewPrivileges", true}};

  // Mounts: the defaults, minus any the spec replaces, then the spec's (parents first).
  std::vector<MountSpec> mounts = spec.mounts;
  auto file_bind = [&](const std::string& source, const char* target) {
    if (!source.empty()) mounts.push_back({MountSpec::Type::kBind, source, target, true, 0, 0});
  };
  file_bind(spec.resolv_conf_path, "/etc/resolv.conf");
  file_bind(spec.hosts_path, "/etc/hosts");
  file_bind(spec.hostname_path, "/etc/hostname");
  std::stable_sort(mounts.begin(), mounts.end(), [](const MountSpec& a, const MountSpec& b) {
    return Depth(a.target) < Depth(b.target);
  });
  json::array all_mounts;
  for (json::value& m : DefaultMounts()) {
    std::string dest(m.as_object().at("destination").as_string());
    if (std::none_of(mounts.begin(), mounts.end(),
                     [&](const MountSpec& s) { return s.target == dest; }))
      all_mounts.push_back(std::move(m));
  }
  for (const MountSpec& m : mounts) {
    if (m.target.empty() || m.target[0] != '/')
      Invalid(fmt::format("mount target \"{}\" is not an absolute path", m.target));
    if (m.type == MountSpec::Type::kTmpfs) {
      std::vector<std::string> opts{"nosuid", "nodev", fmt::format("mode={:o}", m.tmpfs_mode)};
      if (m.tmpfs_size_bytes > 0) opts.push_back(fmt::format("size={}", m.tmpfs_size_bytes));
      if (m.readonly) opts.push_back("ro");
      all_mounts.push_back(Mount(m.target, "tmpfs", "tmpfs", std::move(opts)));
    } else {
      if (m.source.empty() || m.source[0] != '/')
        Invalid(fmt::format("mount source \"{}\" for {} is not an absolute host path", m.source,
                            m.target));
      all_mounts.push_back(
          Mount(m.target, "bind", m.source, {"rbind", "rprivate", m.readonly ? "ro" : "rw"}));
    }
  }

  json::array devices{{{"allow", false}, {"access", "rwm"}}};
  for (const DefaultDevice& d : kAllowedDevices) {
    json::object rule{{"allow", true}, {"type", "c"}, {"major", d.major}, {"access", "rwm"}};
    if (d.minor >= 0) rule["minor"] = d.minor;
    devices.push_back(std::move(rule));
  }
  json::object resources{{"devices", std::move(devices)}};
  if (spec.memory_bytes > 0) resources["memory"] = {{"limit", spec.memory_bytes}};
  if (spec.nano_cpus > 0) {
    constexpr int64_t kPeriod = 100000;  // microseconds, the kernel's default
    int64_t quota = std::max<int64_t>(spec.nano_cpus * kPeriod / 1000000000, 1000);
    resources["cpu"] = {{"quota", quota}, {"period", kPeriod}};
  }
  if (spec.pids_limit > 0) resources["pids"] = {{"limit", spec.pids_limit}};

  json::array namespaces;
  for (const char* ns : {"pid", "ipc", "uts", "mount"})
    namespaces.push_back(json::object{{"type", ns}});
  json::object net{{"type", "network"}};
  if (!spec.netns_path.empty()) net["path"] = spec.netns_path;
  namespaces.push_back(std::move(net));

  json::array masked, readonly;
  for (const char* p : kMaskedPaths)
    masked.emplace_back(p);
  for (const char* p : kReadonlyPaths)
    readonly.emplace_back(p);

  json::object root{{"ociVersion", "1.0.2"},
                    {"process", std::move(process)},
                    {"root", {{"path", "rootfs"}}},
                    {"hostname", hostname},
                    {"mounts", std::move(all_mounts)},
                    {"linux",
                     {{"resources", std::move(resources)},
                      {"cgroupsPath", cgroup_parent + "/" + id},
                      {"namespaces", std::move(namespaces)},
                      {"maskedPaths", std::move(masked)},
                      {"readonlyPaths", std::move(readonly)}}}};
  if (!spec.labels.empty()) {
    json::object annotations;
    for (const auto& [k, v] : spec.labels)
      annotations[k] = v;
    root["annotations"] = std::move(annotations);
  }
  return json::serialize(root);
}

}  // namespace skep::executor
