#include <catch2/catch.hpp>

#include "daemon/node/health_check.h"

using skep::executor::Healthcheck;
using skep::node::EffectiveHealthcheck;
namespace api = skep::api;

TEST_CASE("a task's check is the image's HEALTHCHECK with the service's settings over it",
          "[health]") {
  Healthcheck image;
  image.test = {"CMD", "cat", "/www/index.html"};
  image.interval_ns = 1'000'000'000;
  image.retries = 2;

  api::ContainerSpec none;
  CHECK_FALSE(EffectiveHealthcheck(none, std::nullopt));
  // The image's, as it is.
  auto h = EffectiveHealthcheck(none, image);
  REQUIRE(h);
  CHECK(std::vector<std::string>(h->test().begin(), h->test().end()) == image.test);
  CHECK(h->interval_ns() == 1'000'000'000);
  CHECK(h->retries() == 2);
  CHECK(h->timeout_ns() == 0);

  // Only a setting (--health-retries 5): the image's command with it.
  api::ContainerSpec retries;
  retries.mutable_healthcheck()->set_retries(5);
  h = EffectiveHealthcheck(retries, image);
  REQUIRE(h);
  CHECK(h->test(1) == "cat");
  CHECK(h->retries() == 5);
  CHECK(h->interval_ns() == 1'000'000'000);
  CHECK_FALSE(EffectiveHealthcheck(retries, std::nullopt));  // settings without a command

  // --health-cmd replaces the command, keeps the image's interval.
  api::ContainerSpec cmd;
  cmd.mutable_healthcheck()->add_test("CMD-SHELL");
  cmd.mutable_healthcheck()->add_test("true");
  h = EffectiveHealthcheck(cmd, image);
  REQUIRE(h);
  CHECK(h->test(0) == "CMD-SHELL");
  CHECK(h->test_size() == 2);
  CHECK(h->interval_ns() == 1'000'000'000);

  // --no-healthcheck turns the image's off.
  api::ContainerSpec off;
  off.mutable_healthcheck()->add_test("NONE");
  CHECK_FALSE(EffectiveHealthcheck(off, image));
  // An image that says NONE has none, unless the service gives a command.
  Healthcheck image_off;
  image_off.test = {"NONE"};
  CHECK_FALSE(EffectiveHealthcheck(none, image_off));
  CHECK(EffectiveHealthcheck(cmd, image_off));
}

namespace {

using skep::node::HealthCheck;
using std::chrono::seconds;

api::HealthConfig Check(int retries, seconds start_period) {
  api::HealthConfig h;
  h.add_test("CMD-SHELL");
  h.add_test("true");
  h.set_retries(retries);
  h.set_start_period_ns(std::chrono::nanoseconds(start_period).count());
  return h;
}

}  // namespace

TEST_CASE("a check is STARTING until a probe passes, UNHEALTHY after `retries` failures",
          "[health]") {
  const auto t0 = HealthCheck::Clock::time_point{};
  HealthCheck check(Check(2, seconds(0)), t0);
  CHECK(check.OnProbe(1, t0 + seconds(1)) == api::HEALTH_STARTING);
  CHECK(check.OnProbe(0, t0 + seconds(2)) == api::HEALTH_HEALTHY);
  CHECK(check.OnProbe(1, t0 + seconds(3)) == api::HEALTH_HEALTHY);  // one failure of two
  CHECK(check.OnProbe(0, t0 + seconds(4)) == api::HEALTH_HEALTHY);  // the count starts over
  CHECK(check.OnProbe(1, t0 + seconds(5)) == api::HEALTH_HEALTHY);
  CHECK(check.OnProbe(1, t0 + seconds(6)) == api::HEALTH_UNHEALTHY);
  CHECK(check.failures() == 2);
  CHECK(check.OnProbe(0, t0 + seconds(7)) == api::HEALTH_UNHEALTHY);  // final
}

TEST_CASE("failures in the start period count only once a probe has passed", "[health]") {
  const auto t0 = HealthCheck::Clock::time_point{};
  HealthCheck check(Check(1, seconds(10)), t0);
  CHECK(check.OnProbe(1, t0 + seconds(1)) == api::HEALTH_STARTING);
  CHECK(check.OnProbe(1, t0 + seconds(9)) == api::HEALTH_STARTING);
  CHECK(check.failures() == 0);
  CHECK(check.OnProbe(1, t0 + seconds(10)) == api::HEALTH_UNHEALTHY);

  HealthCheck passed(Check(1, seconds(10)), t0);
  CHECK(passed.OnProbe(0, t0 + seconds(1)) == api::HEALTH_HEALTHY);
  CHECK(passed.OnProbe(1, t0 + seconds(2)) == api::HEALTH_UNHEALTHY);
}

TEST_CASE("a re-attached healthy task stays healthy while its checks go on", "[health]") {
  const auto t0 = HealthCheck::Clock::time_point{};
  HealthCheck check(Check(3, seconds(60)), t0, /*healthy=*/true);
  CHECK(check.OnProbe(1, t0 + seconds(1)) == api::HEALTH_HEALTHY);  // counts: it passed before
  CHECK(check.failures() == 1);
  CHECK(skep::node::ProbeArgv(check.config()) == std::vector<std::string>{"/bin/sh", "-c", "true"});
  CHECK(skep::node::ProbeInterval(check.config()) == seconds(30));  // Docker's default
}
