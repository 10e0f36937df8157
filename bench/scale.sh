#!/usr/bin/env bash
# Scale: 1,000 simulated nodes against a lab of 3 real managers. Brings up the lab bscale
# (deploy/lab.sh: 3 managers in network namespaces on 10.89.90.0/24, no workers), drains the
# managers so that every task goes to a simulated node, runs bench/scale (bench/scale/scale.cc:
# the measurements and the table) with the arguments given, and tears the lab down, also on
# failure or Ctrl-C. As root; builds nothing: needs skepd and skep in $BUILD/daemon and
# $BUILD/bench/scale (ninja -C BUILD skepd skep scale_bench).
#
#   bench/scale.sh [--build DIR] [--dispatcher-heartbeat D] [--pin] [scale's options: --nodes N
#                  --replicas R --idle-seconds S ...]
#
# --dispatcher-heartbeat sets the swarm's agent heartbeat period (`skep swarm update`) before
# the nodes join; the default is skep's, 1 s. --pin: the managers run on CPU 0 and the simulator
# on the others (taskset), so that the simulator's load does not preempt the managers; on a
# 2-CPU machine the three managers then share one CPU.
#
# BUILD defaults to $SKEP_BUILD, else build/. The managers' logs are copied to $SKEP_SCALE_LOGS
# (default /tmp/bscale-logs/<date>) at the end. SKEP_SCALE_KEEP=1 leaves the lab up;
# SKEP_SCALE_HOLD=1 makes scale keep its nodes connected after a failed step until SIGINT.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
build="${SKEP_BUILD:-$here/build}"
heartbeat=""
pin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=${2:?--build needs a directory}; shift 2 ;;
    --pin) pin=1; shift ;;
    --dispatcher-heartbeat) heartbeat=${2:?--dispatcher-heartbeat needs a duration}; shift 2 ;;
    *) break ;;
  esac
done
die() { echo "scale: $*" >&2; exit 1; }
build=$(cd "$build" 2>/dev/null && pwd) || die "no build directory $build"
[ "$(id -u)" -eq 0 ] || die "run as root (network namespaces)"
[ -x "$build/daemon/skepd" ] && [ -x "$build/daemon/skep" ] || die "no skepd/skep in $build/daemon"
[ -x "$build/bench/scale" ] || die "no $build/bench/scale (ninja -C $build scale_bench)"

export SKEP_LAB=bscale SKEP_LAB_NET=10.89.90 SKEP_LAB_BIN="$build/daemon"
export SKEP_LAB_NO_BUILD=1 SKEP_LAB_NO_SERVICE=1
lab="$here/deploy/lab.sh"
logs="${SKEP_SCALE_LOGS:-/tmp/bscale-logs/$(date +%Y%m%d-%H%M%S)}"

cleanup() {
  local rc=$?
  # The managers' logs outlive the lab.
  if [ -d /var/lib/skep-lab/bscale ]; then
    mkdir -p "$logs"
    for m in m1 m2 m3; do
      cp "/var/lib/skep-lab/bscale/$m/skepd.log" "$logs/$m.log" 2>/dev/null || true
    done
    echo "scale: the managers' logs are in $logs" >&2
  fi
  if [ -n "${SKEP_SCALE_KEEP:-}" ]; then
    echo "scale: the lab is left up (SKEP_SCALE_KEEP); $lab down removes it" >&2
  else
    "$lab" down >/dev/null 2>&1 || echo "scale: deploy/lab.sh down failed; run it by hand" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# skepd inherits the descriptor limit: the leader holds a connection per node.
ulimit -n "$(ulimit -Hn)"
sim_cpus=""
if [ -n "$pin" ]; then
  [ "$(nproc)" -ge 2 ] || die "--pin needs 2 CPUs or more"
  # Whatever starts a manager (lab.sh here, and scale's restarts) runs on CPU 0.
  export SKEP_SCALE_MANAGER_CPUS=0
  sim_cpus="1-$(($(nproc) - 1))"
fi
${pin:+taskset -c 0} "$lab" up --managers 3 --workers 0 >/dev/null
for m in m1 m2 m3; do
  "$lab" exec m1 -- skep node update --availability drain "$m" >/dev/null
done
if [ -n "$heartbeat" ]; then
  "$lab" exec m1 -- skep swarm update --dispatcher-heartbeat "$heartbeat" >/dev/null
fi
echo "lab bscale: 3 managers (drained) on $SKEP_LAB_NET.0/24; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)${pin:+; managers on CPU 0, simulator on $sim_cpus}" >&2
${pin:+taskset -c "$sim_cpus"} "$build/bench/scale" "$@"
