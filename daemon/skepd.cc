// skepd: the skep daemon. One per machine; see daemon/host/host.h for what it does.
#include <signal.h>

#include <boost/program_options.hpp>
#include <iostream>
#include <map>

#include "daemon/common/log.h"
#include "daemon/common/runtime.h"
#include "daemon/common/service_notify.h"
#include "daemon/common/version.h"
#include "daemon/executor/logfile.h"
#include "daemon/host/host.h"
#include "daemon/node/node.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  // Started by containerd's shim as a task's logger: nothing of the daemon runs.
  if (std::map<std::string, std::string> args; skep::executor::IsShimLogger(argc, argv, &args)) {
    return skep::executor::RunShimLogger(args);
  }
  skep::ConfigureProcess();
  skep::node::NodeOptions opt;
  std::string log_level;
  std::vector<std::string> labels;
  po::options_description desc(
      "Usage: skepd [OPTIONS]\n\nThe skep daemon: one per machine of a swarm.\n\nOptions");
  desc.add_options()("help,h", "print this help and exit")("version,v",
                                                           "print the version and exit")(
      "data-dir", po::value(&opt.data_dir)->default_value("/var/lib/skep"),
      "where the node keeps its state, certificates and raft log")(
      "control-socket", po::value(&opt.control_socket)->default_value("/run/skep/skepd.sock"),
      "the unix socket skep talks to")("hostname", po::value(&opt.hostname),
                                       "the name this node is known by (default: the host's)")(
      "log-level", po::value(&log_level)->default_value("info"),
      "trace, debug, info, warn or error")("node-label", po::value(&labels)->composing(),
                                           "a label for this node, key=value (repeatable)")(
      "containerd-socket", po::value(&opt.containerd_socket)->default_value(opt.containerd_socket),
      "containerd's gRPC socket; tasks run in its namespace \"skep\"")(
      "registry-mirror", po::value(&opt.registry_mirrors)->composing(),
      "a mirror for docker.io images, as a URL (repeatable)")(
      "insecure-registry", po::value(&opt.insecure_registries)->composing(),
      "a registry (host[:port]) spoken to over plain HTTP (repeatable)")(
      "registry-ca", po::value(&opt.registry_ca),
      "a PEM file of CA certificates trusted for registries, besides the system's")(
      "gossip-port", po::value(&opt.gossip_port)->default_value(opt.gossip_port),
      "the port (UDP and TCP) of the gossip layer, on every node of the swarm");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "skepd: " << e.what() << "\nSee 'skepd --help'.\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << skep::VersionLine("skepd") << "\n";
    return 0;
  }
  for (const auto& l : labels) {
    const size_t eq = l.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "skepd: invalid --node-label \"" << l << "\": expected key=value\n";
      return 2;
    }
    opt.labels[l.substr(0, eq)] = l.substr(eq + 1);
  }
  try {
    skep::log::Init(log_level);
  } catch (const std::exception& e) {
    std::cerr << "skepd: " << e.what() << "\n";
    return 2;
  }

  // Signals are taken synchronously by the main thread; every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  skep::host::Host node(opt);
  try {
    node.Start();
  } catch (const std::exception& e) {
    SKEP_LOG(critical, "skepd", "cannot start: {}", e.what());
    return 1;
  }
  SKEP_LOG(info, "skepd", "skepd {} ({}) started (data dir {})", skep::Version(),
           skep::Architecture(), opt.data_dir);
  // Under systemd (Type=notify): ready once the control socket serves.
  skep::NotifyServiceManager("READY=1\nSTATUS=serving on " + opt.control_socket);
  int sig = 0;
  sigwait(&signals, &sig);
  SKEP_LOG(info, "skepd", "signal {}: shutting down", sig);
  skep::NotifyServiceManager("STOPPING=1");
  node.Stop();
  SKEP_LOG(info, "skepd", "stopped");
  return 0;
}
