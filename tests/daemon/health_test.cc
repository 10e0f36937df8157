#include <catch2/catch.hpp>

#include "daemon/node/worker.h"

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
