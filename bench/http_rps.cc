// http_rps: HTTP requests per second against one address, closed loop. CONCURRENCY workers
// each send `GET / HTTP/1.0` on a new TCP connection, read the answer to the end (the server
// closes it, as busybox httpd does), and start the next one, for SECONDS. A request counts as
// completed when its status line says 200; anything else (a failed connect, a reset, a
// timeout of 5 s, another status) is an error, after which that worker pauses 10 ms so that a
// closed port does not turn into a busy loop. Latency is from socket() to the end of the answer.
//
//   http_rps HOST PORT SECONDS CONCURRENCY
//
// Prints one header line and one line of figures:
//   REQUESTS   ERRORS      REQ/S     P50 MS     P99 MS
// REQ/S is completed requests over the wall time from the start until the last worker stopped.
// Used by bench/overlay.sh (the routing mesh against a task's own address).
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using Clock = std::chrono::steady_clock;

namespace {

struct Result {
  std::vector<double> latencies_ms;  // of the completed requests
  uint64_t errors = 0;
};

bool SendAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// One request on a new connection; true if the answer was a complete 200.
bool OneRequest(const sockaddr_storage& addr, socklen_t addr_len, const std::string& request) {
  const int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bool ok = false;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), addr_len) == 0 &&
      SendAll(fd, request.data(), request.size())) {
    std::string head;  // the first bytes of the answer, enough for the status line
    char buf[4096];
    bool eof = false;
    for (;;) {
      const ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) break;  // reset or timeout
      if (r == 0) {
        eof = true;
        break;
      }
      if (head.size() < 64) head.append(buf, static_cast<size_t>(std::min<ssize_t>(r, 64)));
    }
    // "HTTP/1.x 200 ..."
    ok = eof && head.size() >= 12 && head.compare(0, 7, "HTTP/1.") == 0 &&
         head.compare(8, 5, " 200 ") == 0;
  }
  close(fd);
  return ok;
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: http_rps HOST PORT SECONDS CONCURRENCY\n");
    return 2;
  }
  const std::string host = argv[1], port = argv[2];
  const double seconds = std::atof(argv[3]);
  const int concurrency = std::atoi(argv[4]);
  if (seconds <= 0 || concurrency <= 0) {
    std::fprintf(stderr, "http_rps: SECONDS and CONCURRENCY must be positive\n");
    return 2;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* ai = nullptr;
  if (const int err = getaddrinfo(host.c_str(), port.c_str(), &hints, &ai); err != 0) {
    std::fprintf(stderr, "http_rps: %s:%s: %s\n", host.c_str(), port.c_str(), gai_strerror(err));
    return 1;
  }
  sockaddr_storage addr{};
  std::memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
  const socklen_t addr_len = ai->ai_addrlen;
  freeaddrinfo(ai);
  const std::string request = "GET / HTTP/1.0\r\nHost: " + host + "\r\n\r\n";

  std::vector<Result> results(static_cast<size_t>(concurrency));
  std::vector<std::thread> workers;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(seconds));
  for (auto& res : results) {
    workers.emplace_back([&, r = &res] {
      r->latencies_ms.reserve(1 << 16);
      while (Clock::now() < deadline) {
        const auto t0 = Clock::now();
        if (OneRequest(addr, addr_len, request)) {
          r->latencies_ms.push_back(
              std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        } else {
          ++r->errors;
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

  std::vector<double> all;
  uint64_t errors = 0;
  for (auto& r : results) {
    all.insert(all.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    errors += r.errors;
  }
  std::sort(all.begin(), all.end());
  std::printf("%10s %8s %10s %10s %10s\n", "REQUESTS", "ERRORS", "REQ/S", "P50 MS", "P99 MS");
  std::printf("%10zu %8llu %10.1f %10.3f %10.3f\n", all.size(),
              static_cast<unsigned long long>(errors), static_cast<double>(all.size()) / elapsed,
              Percentile(all, 0.50), Percentile(all, 0.99));
  return all.empty() ? 1 : 0;
}
