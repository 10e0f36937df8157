// Tells the service manager (systemd, for a unit of Type=notify) how skepd is doing: a datagram
// of `VAR=value` lines to the socket named by $NOTIFY_SOCKET (sd_notify(3)'s protocol, which
// systemd documents as stable; libsystemd is not needed for it).
#pragma once

#include <string>

namespace skep {

// Sends `state` ("READY=1", "STOPPING=1", "STATUS=..."); false when skepd was not started by a
// service manager that listens (no $NOTIFY_SOCKET), or the datagram could not be sent.
bool NotifyServiceManager(const std::string& state);

}  // namespace skep
