// sd_notify's protocol, received as systemd receives it: one datagram on $NOTIFY_SOCKET.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "daemon/common/service_notify.h"

namespace {

// A datagram socket bound to `name` (a path, or @abstract), as the service manager's.
int Listen(const std::string& name) {
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, name.data(), name.size());
  if (name[0] == '@') addr.sun_path[0] = '\0';
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr),
               static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size())) == 0);
  return fd;
}

std::string Received(int fd) {
  char buf[256];
  const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

}  // namespace

TEST_CASE("skepd tells the service manager on $NOTIFY_SOCKET, a path or an abstract name",
          "[notify]") {
  unsetenv("NOTIFY_SOCKET");
  CHECK_FALSE(skep::NotifyServiceManager("READY=1"));  // not started by one: nothing to do

  const std::string path = "/tmp/skep-notify-" + std::to_string(getpid());
  unlink(path.c_str());
  int fd = Listen(path);
  setenv("NOTIFY_SOCKET", path.c_str(), 1);
  CHECK(skep::NotifyServiceManager("READY=1\nSTATUS=serving"));
  CHECK(Received(fd) == "READY=1\nSTATUS=serving");
  close(fd);
  unlink(path.c_str());
  CHECK_FALSE(skep::NotifyServiceManager("STOPPING=1"));  // nobody listens any more

  const std::string abstract = "@skep-notify-" + std::to_string(getpid());
  fd = Listen(abstract);
  setenv("NOTIFY_SOCKET", abstract.c_str(), 1);
  CHECK(skep::NotifyServiceManager("STOPPING=1"));
  CHECK(Received(fd) == "STOPPING=1");
  close(fd);

  setenv("NOTIFY_SOCKET", "relative/name", 1);
  CHECK_FALSE(skep::NotifyServiceManager("READY=1"));
  unsetenv("NOTIFY_SOCKET");
}
