// Tasks as real containers: every lab node runs its own containerd, images come from the lab's
// registry, and the checks look at containerd itself (ctr) as well as at `service ps`.
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "tests/integration/lab.h"

using namespace skep::testing;
using namespace std::chrono_literals;

namespace {

struct Row {
  std::string id, slot, node, desired, state, error;
};

std::vector<Row> Tasks(const Lab& lab, const std::string& service, bool running_only = false) {
  std::vector<std::string> args{"service", "ps", "--no-trunc", "--format",
                                "{{.ID}}|{{.Name}}|{{.Node}}|{{.DesiredState}}|{{.CurrentState}}|"
                                "{{.Error}}"};
  if (running_only) {
    args.push_back("--filter");
    args.push_back("desired-state=running");
  }
  args.push_back(service);
  std::vector<Row> rows;
  std::istringstream in(lab.Skep("m1", args).out);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    std::string part;
    while (std::getline(ls, part, '|'))
      f.push_back(part);
    f.resize(6);
    std::string slot = f[1].substr(f[1].find_last_of(' ') + 1);
    rows.push_back({f[0], slot, f[2], f[3], f[4].substr(0, f[4].find(' ')), f[5]});
  }
  return rows;
}

// Running containers of a service's current tasks, by node, as containerd reports them.
std::map<std::string, std::set<std::string>> RunningOn(const Lab& lab,
                                                       const std::vector<std::string>& nodes) {
  std::map<std::string, std::set<std::string>> out;
  for (const auto& n : nodes) {
    for (const auto& [id, st] : lab.Containers(n)) {
      if (st.find("RUNNING") != std::string::npos) out[n].insert(id);
    }
  }
  return out;
}

bool AllRunning(const std::vector<Row>& rows, size_t n) {
  if (rows.size() != n) return false;
  for (const auto& r : rows) {
    if (r.state != "Running") return false;
  }
  return true;
}

// Every task of a service, a line each (ID, node, desired and current state, error), for a
// failure's message.
std::string TaskLines(const Lab& lab, const std::string& service) {
  std::string out;
  for (const auto& r : Tasks(lab, service))
    out += r.id + " " + r.node + " " + r.desired + " " + r.state + " " + r.error + "\n";
  return out;
}

}  // namespace

TEST_CASE("tasks run as containers where the constraints allow, and follow node failures",
          "[integration]") {
  Lab lab("ittask", 13, 1, 2);
  const std::vector<std::string> all{"m1", "w1", "w2"};
  Output o = lab.Skep("m1", {"service", "create", "--name", "web", "--replicas", "3",
                             "--constraint", "node.role==worker", "skep/web:1"});
  INFO(o.text() << lab.Logs(10));
  REQUIRE(o.code == 0);  // without -d: it returns once converged
  CHECK(o.out.find("verify: Service converged") != std::string::npos);
  // The tag was resolved once, at create: every replica runs the same image.
  const Output image = lab.Skep("m1", {"service", "inspect", "--format",
                                       "{{.Spec.TaskTemplate.ContainerSpec.Image}}", "web"});
  CHECK(image.out.rfind("skep/web:1@sha256:", 0) == 0);
  auto rows = Tasks(lab, "web", true);
  REQUIRE(AllRunning(rows, 3));
  auto running = RunningOn(lab, all);
  CHECK(running["m1"].empty());
  size_t containers = 0;
  for (const auto& r : rows) {
    CHECK((r.node == "w1" || r.node == "w2"));
    CHECK(running[r.node].count(r.id) == 1);  // the task's own container runs there
    ++containers;
  }
  CHECK(running["w1"].size() + running["w2"].size() == containers);
  // Each task's httpd answers on its own address, from its node.
  const Output addrs = lab.Skep("m1", {"service", "ps", "--filter", "desired-state=running",
                                       "--format", "{{.Node}} {{.Addr}}", "web"});
  std::istringstream in(addrs.out);
  std::string node, addr;
  int answered = 0;
  while (in >> node >> addr) {
    const Output page =
        lab.Lab_({"exec", node, "--", "curl", "-s", "-m", "5", "http://" + addr + "/"});
    INFO(node << " " << addr << ": " << page.text());
    CHECK(page.out.rfind("web v1 on ", 0) == 0);
    ++answered;
  }
  CHECK(answered == 3);

  // A restart of a worker's skepd keeps the same containers (same pids).
  const auto before = lab.Containers("w1");
  lab.Stop("w1");
  lab.Start("w1");
  CHECK(Eventually([&] { return lab.Nodes("m1").at("w1").status == "Ready"; }));
  const auto after = lab.Containers("w1");
  if (after != before) {
    // Which containers changed, and what the nodes said meanwhile.
    auto show = [](const std::map<std::string, std::string>& m) {
      std::string out;
      for (const auto& [id, what] : m)
        out += "  " + id + " " + what + "\n";
      return out;
    };
    FAIL_CHECK("w1's containers changed across its restart; before:\n"
               << show(before) << "after:\n" << show(after) << TaskLines(lab, "web")
               << lab.Logs(40));
  }
  CHECK(AllRunning(Tasks(lab, "web", true), 3));

  // kill -9 of a worker's skepd: its tasks run elsewhere; back, its old containers stop and
  // no slot has two running tasks.
  lab.Kill("w2");
  const bool moved = Eventually([&] {
    auto now = Tasks(lab, "web", true);
    if (!AllRunning(now, 3)) return false;
    for (const auto& r : now) {
      if (r.node != "w1") return false;
    }
    return true;
  });
  if (!moved) {
    // What the nodes said meanwhile, for a failure that does not show alone.
    // Whether each skepd still runs (a crash and a hang look alike in the logs).
    FAIL_CHECK("the tasks did not all move to w1:\n"
               << TaskLines(lab, "web") << lab.Lab_({"status"}).text() << lab.Logs(60));
  }
  lab.Start("w2");
  CHECK(Eventually([&] { return RunningOn(lab, {"w2"})["w2"].empty(); }));
  std::map<std::string, int> per_slot;
  for (const auto& r : Tasks(lab, "web", true))
    ++per_slot[r.slot];
  CHECK(per_slot.size() == 3);
  for (const auto& [slot, n] : per_slot)
    CHECK(n == 1);
  CHECK(RunningOn(lab, all)["w1"].size() == 3);

  // Removing the service stops its containers.
  REQUIRE(lab.Skep("m1", {"service", "rm", "web"}).code == 0);
  CHECK(Eventually([&] {
    auto r = RunningOn(lab, all);
    return r["w1"].empty() && r["w2"].empty() && r["m1"].empty();
  }));
}

TEST_CASE("a failing task restarts as its policy says, and a missing image is rejected",
          "[integration]") {
  Lab lab("itrestartp", 14, 1, 1);
  Output o = lab.Skep(
      "m1", {"service", "create", "-d", "--name", "fail", "--restart-condition", "on-failure",
             "--restart-max-attempts", "3", "--restart-delay", "500ms", "skep/fail:1"});
  REQUIRE(o.code == 0);
  // The image exits 1 after a second: exactly 3 restarts, then the slot stays failed.
  CHECK(Eventually(
      [&] {
        auto rows = Tasks(lab, "fail");
        if (rows.size() != 4) return false;
        for (const auto& r : rows) {
          if (r.state != "Failed" || r.error != "\"task: non-zero exit (1)\"") return false;
        }
        return true;
      },
      60s));
  // Nothing more comes: the current task is the last one and no container runs.
  CHECK(Tasks(lab, "fail", true).size() == 1);
  CHECK(Tasks(lab, "fail").size() == 4);

  o = lab.Skep("m1", {"service", "create", "-d", "--name", "nope", "--restart-condition", "none",
                      "skep/nosuch:1"});
  REQUIRE(o.code == 0);
  Row rejected;
  CHECK(Eventually(
      [&] {
        auto rows = Tasks(lab, "nope");
        if (rows.empty() || rows[0].state != "Rejected") return false;
        rejected = rows[0];
        return true;
      },
      60s));
  INFO(rejected.error);
  CHECK(rejected.error.find("manifest unknown") != std::string::npos);
}

namespace {

// The image each running current task of a service was made from, by slot.
std::map<std::string, std::string> Images(const Lab& lab, const std::string& service) {
  const Output o = lab.Skep("m1", {"service", "ps", "--filter", "desired-state=running", "--format",
                                   "{{.Name}} {{.Image}} {{.CurrentState}}", service});
  std::map<std::string, std::string> out;
  std::istringstream in(o.out);
  std::string name, image, state;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    ls >> name >> image >> state;
    if (state == "Running") out[name] = image;
  }
  return out;
}

std::string UpdateState(const Lab& lab, const std::string& service) {
  return lab.Skep("m1", {"service", "inspect", "--format", "{{.UpdateStatus.State}}", service}).out;
}

}  // namespace

TEST_CASE("rolling updates replace every slot, pause on failure, and roll back", "[integration]") {
  Lab lab("itupdate", 15, 1, 2);
  REQUIRE(lab.Skep("m1", {"service", "create", "--name", "web", "--replicas", "3", "skep/web:1"})
              .code == 0);
  Output o = lab.Skep("m1", {"service", "update", "--image", "skep/web:2", "--update-parallelism",
                             "1", "--update-monitor", "1s", "web"});
  INFO(o.text());
  CHECK(o.code == 0);
  CHECK(o.out.find("verify: Service converged") != std::string::npos);
  auto images = Images(lab, "web");
  REQUIRE(images.size() == 3);
  for (const auto& [slot, image] : images)
    CHECK(image == "skep/web:2");
  // Every slot was replaced exactly once: one old task each in its history.
  auto rows = Tasks(lab, "web");
  CHECK(rows.size() == 6);
  CHECK(UpdateState(lab, "web") == "completed\n");

  // An update to an image that fails pauses (the default failure action), and says so. The
  // monitor period is long so that the failure is seen within it however late its exit is
  // reported.
  o = lab.Skep("m1",
               {"service", "update", "--image", "skep/fail:1", "--update-monitor", "30s", "web"});
  INFO(o.text() << lab.Skep("m1", {"service", "ps", "web"}).out);
  CHECK(o.code == 1);
  CHECK(UpdateState(lab, "web") == "paused\n");
  const Output inspect =
      lab.Skep("m1", {"service", "inspect", "--format", "{{.UpdateStatus.Message}}", "web"});
  CHECK(inspect.out.find("update paused due to failure or early termination of task") == 0);
  // Only the first slot was touched: the others still run web:2.
  images = Images(lab, "web");
  CHECK(images.size() >= 2);

  // service rollback goes back to the spec before.
  o = lab.Skep("m1", {"service", "rollback", "web"});
  CHECK(o.code == 0);
  CHECK(Eventually([&] {
    auto im = Images(lab, "web");
    return im.size() == 3 && im.begin()->second == "skep/web:2" &&
           UpdateState(lab, "web") == "rollback_completed\n";
  }));

  // With --update-failure-action rollback, a failing update undoes itself.
  o = lab.Skep("m1", {"service", "update", "--image", "skep/fail:1", "--update-failure-action",
                      "rollback", "--update-monitor", "30s", "web"});
  CHECK(o.code == 1);
  CHECK(Eventually(
      [&] {
        auto im = Images(lab, "web");
        bool all_v2 = im.size() == 3;
        for (const auto& [slot, image] : im)
          all_v2 &= image == "skep/web:2";
        return all_v2 && UpdateState(lab, "web") == "rollback_completed\n";
      },
      60s));
}

TEST_CASE("a rolling update survives the loss of the leader", "[integration]") {
  Lab lab("itupleader", 16, 3, 2);
  REQUIRE(lab.Skep("m1", {"service", "create", "--name", "web", "--replicas", "4", "--constraint",
                          "node.role==worker", "skep/web:1"})
              .code == 0);
  REQUIRE(lab.Skep("m1", {"service", "update", "-d", "--image", "skep/web:2",
                          "--update-parallelism", "1", "--update-monitor", "1s", "web"})
              .code == 0);
  // Once the update is under way (one slot done), the leader dies.
  CHECK(Eventually([&] {
    int v2 = 0;
    for (const auto& [slot, image] : Images(lab, "web"))
      v2 += image == "skep/web:2";
    return v2 >= 1;
  }));
  const std::string leader = lab.Leader("m2");
  REQUIRE_FALSE(leader.empty());
  lab.Kill(leader);
  const std::string via = leader == "m2" ? "m3" : "m2";
  auto images = [&] {
    const Output o = lab.Skep(via, {"service", "ps", "--filter", "desired-state=running",
                                    "--format", "{{.Name}} {{.Image}} {{.CurrentState}}", "web"});
    std::map<std::string, std::string> out;
    std::istringstream in(o.out);
    std::string name, image, state;
    while (in >> name >> image >> state) {
      std::string rest;
      std::getline(in, rest);
      if (state == "Running") out[name] = image;
    }
    return out;
  };
  CHECK(Eventually(
      [&] {
        auto im = images();
        bool all_v2 = im.size() == 4;
        for (const auto& [slot, image] : im)
          all_v2 &= image == "skep/web:2";
        return all_v2 &&
               lab.Skep(via, {"service", "inspect", "--format", "{{.UpdateStatus.State}}", "web"})
                       .out == "completed\n";
      },
      60s));
  // Every slot went to the new spec exactly once: one new task and one old one per slot.
  const Output all = lab.Skep(via, {"service", "ps", "--format", "{{.Name}}", "web"});
  CHECK(std::count(all.out.begin(), all.out.end(), '\n') == 8);
}

TEST_CASE("tasks reach the outside, and a host-mode port publishes a task on its node",
          "[integration]") {
  Lab lab("itnet", 17, 1, 1);
  REQUIRE(lab.Skep("m1", {"service", "create", "--name", "pub", "--constraint", "node.hostname==w1",
                          "--publish", "mode=host,published=8080,target=80", "skep/web:2"})
              .code == 0);
  const Output ps = lab.Skep("m1", {"service", "ps", "--format", "{{.Ports}}", "pub"});
  CHECK(ps.out == "*:8080->80/tcp\n");
  // From another node, on the node's own address.
  const Output page =
      lab.Lab_({"exec", "m1", "--", "curl", "-s", "-m", "5", "http://" + lab.Ip("w1") + ":8080/"});
  INFO(page.text());
  CHECK(page.out.rfind("web v2 on ", 0) == 0);
  // A second task wanting the same host port on the same node cannot be placed.
  REQUIRE(lab.Skep("m1", {"service", "create", "-d", "--name", "pub2", "--constraint",
                          "node.hostname==w1", "--publish", "mode=host,published=8080,target=80",
                          "skep/web:2"})
              .code == 0);
  CHECK(Eventually([&] {
    auto rows = Tasks(lab, "pub2");
    return !rows.empty() && rows[0].state == "Pending" &&
           rows[0].error.find("host-mode port 8080/tcp in use on 1 node") != std::string::npos;
  }));

  // Out: a task reaches an address beyond its node (the lab's bridge) through the NAT.
  REQUIRE(lab.Skep("m1", {"service", "create", "--name", "out", "--constraint", "node.hostname==w1",
                          "skep/busybox:1", "sh", "-c",
                          "printf 'GET /v2/ HTTP/1.0\\r\\n\\r\\n' | nc " +
                              lab.Ip("m1").substr(0, lab.Ip("m1").rfind('.')) +
                              ".1 5000 | head -1; sleep 600"})
              .code == 0);
  std::string log;
  CHECK(Eventually([&] {
    log = lab.Skep("m1", {"service", "logs", "--raw", "out"}).out;
    return log.find("HTTP/1.0 200 OK") != std::string::npos;
  }));
  INFO(log);
}

namespace {

// `service logs` lines: prefix (task name, ID and node) -> the lines after the bar.
std::map<std::string, std::vector<std::string>> ByPrefix(const std::string& out) {
  std::map<std::string, std::vector<std::string>> by;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    const size_t bar = line.find("    | ");
    if (bar == std::string::npos) {
      by["?"].push_back(line);
      continue;
    }
    std::string prefix = line.substr(0, bar);
    prefix.erase(prefix.find_last_not_of(' ') + 1);
    by[prefix].push_back(line.substr(bar + 6));
  }
  return by;
}

}  // namespace

TEST_CASE("service logs gathers every task's lines from its node, and follows new ones",
          "[integration]") {
  Lab lab("itlogs", 18, 2, 1);
  // Each task says who it is, then counts on stdout and stderr.
  const std::string script =
      "echo \"start $(hostname)\"; i=0; while true; do echo \"out $i\"; echo \"err $i\" >&2; "
      "i=$((i+1)); sleep 0.2; done";
  REQUIRE(lab.Skep("m1", {"service", "create", "--name", "talk", "--replicas", "2",
                          "--replicas-max-per-node", "1", "skep/busybox:1", "sh", "-c", script})
              .code == 0);
  const auto rows = Tasks(lab, "talk", true);
  REQUIRE(rows.size() == 2);
  // The prefix Docker prints: service.slot.task-id@node, the ID cut to 12 characters.
  std::map<std::string, std::string> prefix_of;  // task ID -> prefix
  for (const auto& r : rows)
    prefix_of[r.id] =
        "talk." + r.slot.substr(r.slot.find('.') + 1) + "." + r.id.substr(0, 12) + "@" + r.node;

  // Through the follower m2, which relays the leader's stream.
  Output o;
  std::map<std::string, std::vector<std::string>> by;
  REQUIRE(Eventually([&] {
    o = lab.Skep("m2", {"service", "logs", "talk"});
    by = ByPrefix(o.out);
    for (const auto& [id, p] : prefix_of) {
      if (by[p].size() < 5) return false;
    }
    return o.code == 0;
  }));
  INFO(o.text());
  for (const auto& [id, p] : prefix_of) {
    const auto& lines = by[p];
    CHECK(lines.front() == "start " + id.substr(0, 12));  // the container's hostname
    for (size_t i = 1; i < lines.size(); ++i)
      CHECK(lines[i] == "out " + std::to_string(i - 1));  // in order, none lost
  }
  CHECK(by.count("?") == 0);
  CHECK(o.err.find("err 0") != std::string::npos);  // stderr stays stderr

  // --tail, -t, and one task by its ID.
  const std::string one = rows[0].id;
  o = lab.Skep("m1", {"service", "logs", "--tail", "3", "-t", one});
  INFO(o.text());
  REQUIRE(o.code == 0);
  std::istringstream tail(o.out + o.err);
  std::string line;
  int lines = 0;
  while (std::getline(tail, line)) {
    ++lines;
    // 2026-12-01T11:41:19.970101440Z talk.1.xxxx@node    | out 12
    REQUIRE(line.size() > 31);
    CHECK(line[4] == '-');
    CHECK(line[10] == 'T');
    CHECK(line[29] == 'Z');
    CHECK(line.substr(31, prefix_of[one].size()) == prefix_of[one]);
  }
  CHECK(lines == 3);

  // --follow: new lines of the tasks there are, and a task the service gets meanwhile from
  // its first line. The follow ends when timeout stops it.
  o = lab.Lab_({"exec", "m2", "--", "sh", "-c",
                "(sleep 1; skep service scale -d talk=3 >/dev/null) & "
                "timeout 8 skep service logs -f --tail 1 --no-task-ids talk 2>/dev/null"});
  INFO(o.text());
  CHECK(o.code == 124);
  by = ByPrefix(o.out);
  std::string third;
  for (const auto& [p, ls] : by) {
    if (p.rfind("talk.3@", 0) == 0) third = p;
  }
  REQUIRE_FALSE(third.empty());
  CHECK(by[third].front().rfind("start ", 0) == 0);
  for (const auto& r : rows) {
    const std::string p = "talk." + r.slot.substr(r.slot.find('.') + 1) + "@" + r.node;
    CHECK(by[p].size() > 10);  // 8 s at five lines a second, after the one of --tail
  }

  // The logs of a task that ended stay while it is in the history, and go with it.
  REQUIRE(lab.Skep("m1", {"service", "create", "-d", "--name", "once", "--restart-condition",
                          "none", "--constraint", "node.hostname==w1", "skep/busybox:1", "sh", "-c",
                          "echo done-once"})
              .code == 0);
  REQUIRE(Eventually([&] {
    auto t = Tasks(lab, "once");
    return t.size() == 1 && t[0].state == "Complete";
  }));
  const std::string once = Tasks(lab, "once").at(0).id;
  CHECK(Eventually([&] {
    return lab.Skep("m1", {"service", "logs", "--raw", "once"}).out == "done-once\n";
  }));
  REQUIRE(lab.Skep("m1", {"service", "rm", "once"}).code == 0);
  CHECK(Eventually([&] {
    return Run({"test", "-e", lab.Root() + "/w1/data/tasks/" + once}).code != 0;
  }));

  // Bad input changes nothing and says what was wrong.
  o = lab.Skep("m1", {"service", "logs", "nope"});
  CHECK(o.code == 1);
  CHECK(o.err.find("no such service or task: nope") != std::string::npos);
  o = lab.Skep("m1", {"service", "logs", "--tail", "x", "talk"});
  CHECK(o.code == 2);
  CHECK(o.err.find("invalid --tail \"x\"") != std::string::npos);
}

TEST_CASE("a node that leaves the swarm stops and removes its containers", "[integration]") {
  Lab lab("itleave", 19, 1, 1);
  REQUIRE(lab.Skep("m1", {"service", "create", "--name", "web", "--replicas", "2", "--constraint",
                          "node.role==worker", "skep/web:1"})
              .code == 0);
  REQUIRE(RunningOn(lab, {"w1"})["w1"].size() == 2);
  const Output o = lab.Skep("w1", {"swarm", "leave"});
  INFO(o.text());
  REQUIRE(o.code == 0);
  CHECK(lab.Containers("w1").empty());
  CHECK(Run({"test", "-e", lab.Root() + "/w1/data/tasks.pb"}).code != 0);
}

TEST_CASE("a memory limit is the task's cgroup's, and a task killed for memory says OOM killed",
          "[integration]") {
  Lab lab("itoom", 27, 1, 1);
  Output o = lab.Skep("m1", {"service", "create", "-d", "--name", "small", "--constraint",
                             "node.hostname==w1", "--limit-memory", "16M", "skep/busybox:1",
                             "sleep", "600"});
  REQUIRE(o.code == 0);
  std::string id;
  CHECK(Eventually([&] {
    id = lab.RunningTask("small");
    return !id.empty() && lab.Containers("w1").count(id) == 1;
  }));
  // cgroup v1 (memory controller) or v2 (unified), under the runtime's parent "skep".
  std::string limit;
  for (const std::string& path : {"/sys/fs/cgroup/memory/skep/" + id + "/memory.limit_in_bytes",
                                  "/sys/fs/cgroup/skep/" + id + "/memory.max"}) {
    std::ifstream in(path);
    if (in >> limit) break;
  }
  CHECK(limit == "16777216");

  // A process that wants 64 MiB under a 16 MiB limit: the kernel kills it, and the task says so.
  o = lab.Skep("m1", {"service", "create", "-d", "--name", "hog", "--constraint",
                      "node.hostname==w1", "--limit-memory", "16M", "--restart-condition", "none",
                      "skep/busybox:1", "sh", "-c",
                      "sleep 1; exec dd if=/dev/zero of=/dev/null bs=64M count=1"});
  REQUIRE(o.code == 0);
  std::string row;
  CHECK(Eventually([&] {
    row = lab.Skep("m1", {"service", "ps", "--no-trunc", "--format", "{{.CurrentState}} {{.Error}}",
                          "hog"})
              .out;
    return row.rfind("Failed ", 0) == 0;
  }));
  INFO(row);
  CHECK(row.find("task: non-zero exit (137): OOM killed") != std::string::npos);
}

TEST_CASE("health checks: a task is running once healthy, replaced when unhealthy, and an update "
          "that never gets healthy rolls back",
          "[integration]") {
  Lab lab("ithealth", 29, 1, 1);
  const std::vector<std::string> check = {"--health-cmd", "cat /tmp/ok", "--health-interval",
                                          "1s", "--health-retries", "2"};
  std::vector<std::string> create = {"service", "create", "--name", "web", "--constraint",
                                     "node.hostname==w1"};
  create.insert(create.end(), check.begin(), check.end());
  for (const char* a : {"skep/busybox:1", "sh", "-c", "echo all fine > /tmp/ok; exec sleep 600"})
    create.push_back(a);
  Output o = lab.Skep("m1", create);  // waits until converged: running and healthy
  INFO(o.text());
  REQUIRE(o.code == 0);
  auto state = [&] {
    return lab.Skep("m1", {"service", "ps", "--filter", "desired-state=running", "--format",
                           "{{.CurrentState}}", "web"})
        .out;
  };
  CHECK(state().find("(healthy)") != std::string::npos);
  const std::string first = lab.RunningTask("web");
  // inspect shows each running task's last check.
  o = lab.Skep("m1", {"service", "inspect", "--format",
                      "{{range .HealthChecks}}{{.Health}} {{.Output}}{{end}}", "web"});
  CHECK(o.out == "healthy all fine\n\n");
  o = lab.Skep("m1", {"service", "inspect", "--pretty", "web"});
  CHECK(o.out.find("Health Checks:\n web.1 on w1: healthy, all fine\n") != std::string::npos);

  // The check starts failing: the task is killed, fails, and its replacement is healthy.
  REQUIRE(lab.Exec("w1", first, {"rm", "/tmp/ok"}).code == 0);
  CHECK(Eventually(
      [&] {
        const std::string now = lab.RunningTask("web");
        return !now.empty() && now != first && state().find("(healthy)") != std::string::npos;
      },
      40s));
  o = lab.Skep("m1", {"service", "ps", "--no-trunc", "--format", "{{.ID}} {{.Error}}", "web"});
  CHECK(o.out.find(first + " \"task: unhealthy container\"") != std::string::npos);

  // An update whose tasks never pass their check rolls back, and the service stays healthy.
  o = lab.Skep("m1", {"service", "update", "--health-cmd", "false", "--update-failure-action",
                      "rollback", "--update-monitor", "2s", "web"});
  INFO(o.text());
  CHECK(o.code != 0);
  CHECK(Eventually(
      [&] {
        return lab.Skep("m1", {"service", "inspect", "--format", "{{.UpdateStatus.State}}", "web"})
                   .out == "rollback_completed\n";
      },
      60s));
  CHECK(lab.Skep("m1", {"service", "inspect", "--format",
                        "{{index .Spec.TaskTemplate.ContainerSpec.Healthcheck.Test 1}}", "web"})
            .out == "cat /tmp/ok\n");
  CHECK(Eventually([&] { return state().find("(healthy)") != std::string::npos; }, 30s));

  // The image's own HEALTHCHECK (skep/healthy:1: cat /www/index.html every second), and
  // --no-healthcheck turning it off.
  auto state_of = [&](const std::string& svc) {
    return lab.Skep("m1", {"service", "ps", "--filter", "desired-state=running", "--format",
                           "{{.CurrentState}}", svc})
        .out;
  };
  o = lab.Skep("m1", {"service", "create", "--name", "imgcheck", "skep/healthy:1"});
  INFO(o.text());
  REQUIRE(o.code == 0);
  CHECK(state_of("imgcheck").find("(healthy)") != std::string::npos);
  o = lab.Skep("m1", {"service", "inspect", "--format",
                      "{{range .HealthChecks}}{{.Health}} {{.Output}}{{end}}", "imgcheck"});
  CHECK(o.out.find("healthy web v1 on ") == 0);
  o = lab.Skep("m1", {"service", "update", "--no-healthcheck", "imgcheck"});
  INFO(o.text());
  REQUIRE(o.code == 0);
  CHECK(Eventually(
      [&] {
        const std::string now = state_of("imgcheck");
        return now.rfind("Running", 0) == 0 && now.find('(') == std::string::npos;
      },
      30s));

  // Bad input: --no-healthcheck with a check.
  o = lab.Skep("m1", {"service", "update", "--no-healthcheck", "--health-cmd", "true", "web"});
  CHECK(o.code != 0);
  CHECK(o.err.find("--no-healthcheck conflicts with --health-* options") != std::string::npos);
}

TEST_CASE("a private registry over TLS: rejected without a login, pulled with "
          "--with-registry-auth, the password never shown or stored in clear",
          "[integration]") {
  // The registry's CA and certificate (for the lab bridge's address), its htpasswd (user
  // "skep", password "secret", bcrypt), and a Docker config directory of the test's own.
  const int subnet = 30;
  const std::string ip = "10.89." + std::to_string(subnet) + ".1";
  const std::string addr = ip + ":5443";
  const std::string dir = "/tmp/skep-itprivreg";
  Run({"rm", "-rf", dir});
  Run({"mkdir", "-p", dir + "/docker"});
  std::ofstream(dir + "/san.ext") << "subjectAltName=IP:" << ip << "\n";
  std::ofstream(dir + "/htpasswd")
      << "skep:$2b$04$mX66baKeZcqfwNDwHzMUg.0I.1kd8ulW8xxR.SrwRy6.eUQ8n3YHi\n";
  Output o = Run({"sh", "-c",
                  "cd " + dir +
                      " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
                      " -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=skep-test-ca"
                      " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
                      " -keyout server.key -out server.csr -subj /CN=" +
                      ip +
                      " && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key"
                      " -CAcreateserial -out server.crt -days 1 -extfile san.ext"});
  REQUIRE(o.code == 0);
  setenv("SKEP_LAB_SKEPD_ARGS", ("--registry-ca " + dir + "/ca.crt").c_str(), 1);
  setenv("DOCKER_CONFIG", (dir + "/docker").c_str(), 1);
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      Run({SKEP_SOURCE_DIR "/deploy/registry.sh", "stop", dir + "/registry"});
      unsetenv("SKEP_LAB_SKEPD_ARGS");
      unsetenv("DOCKER_CONFIG");
    }
  } cleanup{dir};
  Lab lab("itprivreg", subnet, 1, 1);
  o = Run({SKEP_SOURCE_DIR "/deploy/registry.sh", "start", dir + "/registry", addr},
          {{"SKEP_REGISTRY_HTPASSWD", dir + "/htpasswd"},
           {"SKEP_REGISTRY_TLS_CERT", dir + "/server.crt"},
           {"SKEP_REGISTRY_TLS_KEY", dir + "/server.key"}});
  INFO(o.text());
  REQUIRE(o.code == 0);
  o = Run({"skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
           "--dest-creds", "skep:secret", "docker://" + ip + ":5000/skep/web:1",
           "docker://" + addr + "/private/web:1"});
  INFO(o.text());
  REQUIRE(o.code == 0);
  const std::string image = addr + "/private/web:1";

  // A wrong password is refused by the registry, through the node's skepd, and nothing is kept.
  o = lab.Skep("w1", {"login", "-u", "skep", "-p", "wrong", addr});
  CHECK(o.code != 0);
  CHECK(o.err.find("unauthorized") != std::string::npos);
  CHECK(Run({"test", "-e", dir + "/docker/config.json"}).code != 0);
  // --with-registry-auth without a login says so, and creates nothing.
  o = lab.Skep("m1", {"service", "create", "--with-registry-auth", "--name", "nope", "-d", image});
  CHECK(o.code != 0);
  CHECK(o.err.find("--with-registry-auth: no login for " + addr) != std::string::npos);
  CHECK(lab.Skep("m1", {"service", "ls", "-q"}).out.empty());

  // Without a login the task is rejected with the registry's answer.
  o = lab.Skep("m1", {"service", "create", "--name", "priv", "-d", image});
  INFO(o.text());
  REQUIRE(o.code == 0);
  CHECK(Eventually(
      [&] {
        for (const auto& r : Tasks(lab, "priv"))
          if (r.state == "Rejected" &&
              r.error.find("unauthorized: authentication required") != std::string::npos)
            return true;
        return false;
      },
      40s));

  // Logged in (the file is Docker's), an update with --with-registry-auth lets it run.
  o = lab.Skep("m1", {"login", "--username", "skep", "--password", "secret", addr});
  INFO(o.text());
  CHECK(o.code == 0);
  CHECK(o.out == "Login Succeeded\n");
  std::ifstream config(dir + "/docker/config.json");
  std::stringstream text;
  text << config.rdbuf();
  CHECK(text.str().find("\"" + addr + "\":{\"auth\":\"c2tlcDpzZWNyZXQ=\"}") != std::string::npos);
  o = lab.Skep("m1", {"service", "update", "--with-registry-auth", "-d", "priv"});
  INFO(o.text());
  CHECK(o.code == 0);
  CHECK(Eventually([&] { return AllRunning(Tasks(lab, "priv", true), 1); }, 60s));
  const std::string task = lab.RunningTask("priv");
  const std::string node = Tasks(lab, "priv", true).at(0).node;
  CHECK(Eventually(
      [&] {
        return lab.Exec(node, task, {"cat", "/www/index.html"}).out.find("web v1") !=
               std::string::npos;
      },
      10s));

  // Created with it: runs at once. Neither inspect nor any file of a node holds the password.
  o = lab.Skep("m1", {"service", "create", "--with-registry-auth", "--name", "priv2", image});
  INFO(o.text());
  CHECK(o.code == 0);
  for (const char* svc : {"priv", "priv2"}) {
    o = lab.Skep("m1", {"service", "inspect", svc});
    CHECK(o.code == 0);
    CHECK(o.out.find("secret") == std::string::npos);
    CHECK(o.out.find("c2tlcDpzZWNyZXQ") == std::string::npos);
  }
  for (const char* node : {"m1", "w1"}) {
    o = Run({"grep", "-rl", "secret", lab.Root() + "/" + node + "/data"});
    INFO(node << ": " << o.out);
    CHECK(o.out.empty());
  }

  o = lab.Skep("m1", {"logout", addr});
  CHECK(o.out == "Removing login credentials for " + addr + "\n");
  CHECK(lab.Skep("m1", {"logout", addr}).out == "Not logged in to " + addr + "\n");
}
