#include <catch2/catch.hpp>

#include "daemon/node/container_spec.h"

namespace api = skep::api;
using skep::executor::MountSpec;
using skep::node::ContainerSpecOf;

TEST_CASE("a task's container has its service's command, environment and limits",
          "[container-spec]") {
  api::Task t;
  t.set_id("t1");
  auto* c = t.mutable_spec()->mutable_container();
  c->add_command("/bin/sh");
  c->add_args("-c");
  c->add_args("sleep 1");
  c->add_env("A=1");
  c->set_user("nobody");
  c->set_dir("/srv");
  c->set_stop_signal("SIGINT");
  auto* limits = t.mutable_spec()->mutable_resources()->mutable_limits();
  limits->set_nano_cpus(500'000'000);
  limits->set_memory_bytes(64 << 20);
  limits->set_pids(32);

  const auto s = ContainerSpecOf(t, "/data/volumes");
  CHECK(s.command == std::vector<std::string>{"/bin/sh"});
  CHECK(s.args == std::vector<std::string>{"-c", "sleep 1"});
  CHECK(s.env == std::vector<std::string>{"A=1"});
  CHECK(s.user == "nobody");
  CHECK(s.dir == "/srv");
  CHECK(s.stop_signal == "SIGINT");
  CHECK(s.nano_cpus == 500'000'000);
  CHECK(s.memory_bytes == 64 << 20);
  CHECK(s.pids_limit == 32);
  CHECK(s.mounts.empty());
}

TEST_CASE("named volumes outlive their tasks; anonymous ones are the task's", "[container-spec]") {
  api::Task t;
  t.set_id("t1");
  auto* c = t.mutable_spec()->mutable_container();
  auto* named = c->add_mounts();
  named->set_type(api::Mount::VOLUME);
  named->set_source("data");
  named->set_target("/data");
  auto* anon1 = c->add_mounts();
  anon1->set_type(api::Mount::VOLUME);
  anon1->set_target("/cache");
  auto* bind = c->add_mounts();
  bind->set_type(api::Mount::BIND);
  bind->set_source("/etc/hosts");
  bind->set_target("/etc/hosts");
  bind->set_read_only(true);
  auto* anon2 = c->add_mounts();
  anon2->set_type(api::Mount::VOLUME);
  anon2->set_target("/tmp/x");
  auto* tmpfs = c->add_mounts();
  tmpfs->set_type(api::Mount::TMPFS);
  tmpfs->set_target("/run");
  tmpfs->set_tmpfs_size_bytes(1 << 20);

  const auto s = ContainerSpecOf(t, "/data/volumes");
  REQUIRE(s.mounts.size() == 5);
  CHECK(s.mounts[0].type == MountSpec::Type::kVolume);
  CHECK(s.mounts[0].source == "/data/volumes/data");
  CHECK(s.mounts[1].source == "/data/volumes/t1-0");
  CHECK(s.mounts[2].type == MountSpec::Type::kBind);
  CHECK(s.mounts[2].source == "/etc/hosts");
  CHECK(s.mounts[2].readonly);
  CHECK(s.mounts[3].source == "/data/volumes/t1-1");
  CHECK(s.mounts[4].type == MountSpec::Type::kTmpfs);
  CHECK(s.mounts[4].tmpfs_size_bytes == 1 << 20);
}
