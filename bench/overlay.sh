#!/usr/bin/env bash
# The overlay's data path on a lab cluster (deploy/lab.sh: 1 manager, 2 workers, each a network
# namespace on one bridge), two measurements in one run, as root; builds nothing (needs
# build/daemon/skepd and skep, and build/bench/http_rps: ninja -C build http_rps).
#
#   bench/overlay.sh [--rounds N] [--seconds S] [--concurrency C] [--only iperf|http]
#
# 1. TCP throughput, overlay against underlay. Two services on the overlay network benchnet
#    (10.0.9.0/24), one task each, pinned to w1 and to w2 (skep/busybox:1, sleeping). iperf3
#    (the host's binary, one stream, S seconds, -J) from w1 to w2 twice a round: between the
#    two tasks' network namespaces (nsenter --net=<node data dir>/netns/<task id>) to the w2
#    task's benchnet address, so through VXLAN; and between the worker nodes' own namespaces
#    (benchov-w1 to 10.91.0.102), the plain veth-and-bridge path the overlay is carried over.
#    Table: per round underlay and overlay Gbit/s (the receiver's figure) and overlay/underlay,
#    then the medians.
# 2. The routing mesh, HTTP requests per second. A service web (skep/web:1, busybox httpd) with
#    one task pinned to w1 and --publish 8080:80. build/bench/http_rps (C closed-loop workers,
#    HTTP/1.0 GET /, a new connection per request, S seconds) twice a round: "direct", run in
#    w1's namespace against the task's own address on w1's skep_gwbridge (first word of
#    <w1 data dir>/netns/<task id>.net), port 80; and "mesh", run in the host's namespace
#    against w2's address, 10.91.0.102:8080: w2 runs no web task, so its routing mesh forwards
#    each connection through the ingress overlay to the task on w1. Table: per round both
#    req/s, their p99 latency, and mesh/direct, then the medians.
#
# Defaults: 3 rounds of 10 s, concurrency 8. The two sides of a pair take turns going first
# from round to round, so that both meet the same moments of a noisy machine. The lab is
# benchov on 10.91.0.0/24 (the same prefix as build/bench/failover's lab: run one at a time);
# it is torn down at the end, also on failure or Ctrl-C.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
build="${SKEP_BUILD:-$here/build}"
rounds=3
seconds=10
concurrency=8
only=""
usage() {
  echo "usage: bench/overlay.sh [--rounds N] [--seconds S] [--concurrency C] [--only iperf|http]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=${2:?}; shift 2 ;;
    --seconds) seconds=${2:?}; shift 2 ;;
    --concurrency) concurrency=${2:?}; shift 2 ;;
    --only) only=${2:?}; shift 2 ;;
    *) usage ;;
  esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ && "$seconds" =~ ^[1-9][0-9]*$ && "$concurrency" =~ ^[1-9][0-9]*$ ]] || usage
case "$only" in "" | iperf | http) ;; *) usage ;; esac
die() { echo "overlay: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (network namespaces)"
command -v nsenter >/dev/null || die "nsenter is missing (util-linux)"
if [ "$only" != http ]; then
  if command -v ping >/dev/null; then
    ping=(ping)
  elif command -v busybox >/dev/null; then
    ping=(busybox ping)
  else
    die "ping is missing (iputils-ping, or busybox)"
  fi
  command -v iperf3 >/dev/null || die "iperf3 is missing (apt-get install iperf3)"
  if command -v jq >/dev/null; then
    gbits() { jq -r 'if .error then error(.error) else .end.sum_received.bits_per_second / 1e9 end'; }
  elif command -v python3 >/dev/null; then
    gbits() {
      python3 -c 'import json, sys
r = json.load(sys.stdin)
if "error" in r: sys.exit("iperf3: " + r["error"])
print(r["end"]["sum_received"]["bits_per_second"] / 1e9)'
    }
  else
    die "neither jq nor python3 is installed: one is needed to read iperf3's JSON"
  fi
fi
if [ "$only" != iperf ]; then
  [ -x "$build/bench/http_rps" ] || die "build http_rps first (ninja -C build http_rps)"
fi

export SKEP_LAB=benchov SKEP_LAB_NET=10.91.0 SKEP_LAB_NO_BUILD=1 SKEP_LAB_NO_SERVICE=1
lab="$here/deploy/lab.sh"
root="/var/lib/skep-lab/$SKEP_LAB"
ns() { echo "$SKEP_LAB-$1"; }
w1_ip=$SKEP_LAB_NET.101
w2_ip=$SKEP_LAB_NET.102
skep() { "$lab" exec m1 -- skep "$@"; }

# The iperf3 server running in the background, if any, is ended on exit by its pid (kept in a
# file: it is started in a subshell).
work=$(mktemp -d /tmp/skep-overlay.XXXXXX)
cleanup() {
  local rc=$?
  [ -f "$work/iperf.pid" ] && kill "$(cat "$work/iperf.pid")" 2>/dev/null || true
  rm -rf "$work"
  "$lab" down >/dev/null 2>&1 || echo "overlay: deploy/lab.sh down failed; run it by hand" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

median() {  # the median of the numbers on stdin, one a line
  sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "nan" }'; }

# The running task of a service: prints "<full task id> <its addresses, comma-separated>".
wait_task() {
  local svc=$1 line
  for _ in $(seq 600); do
    line=$(skep service ps "$svc" --no-trunc --filter desired-state=running \
      --format '{{.ID}} {{.CurrentState}} {{.Networks}}' 2>/dev/null || true)
    line=$(awk '$2 == "Running" { print $1, $NF; exit }' <<<"$line")
    if [ -n "$line" ]; then
      echo "$line"
      return 0
    fi
    sleep 0.1
  done
  skep service ps "$svc" >&2 || true
  die "the task of $svc did not start"
}

# Runs until something listens on TCP port $2 in the network namespace file $1.
wait_listen() {
  for _ in $(seq 100); do
    [ -n "$(nsenter --net="$1" ss -Hltn "sport = :$2" 2>/dev/null || true)" ] && return 0
    sleep 0.05
  done
  die "nothing listens on port $2 in $1"
}

# iperf3 from namespace file $1 to $3, whose server runs in namespace file $2; prints Gbit/s.
iperf() {
  local from=$1 to=$2 addr=$3 port=5201 spid out
  nsenter --net="$to" iperf3 -s -1 -p "$port" >/dev/null 2>&1 &
  spid=$!
  echo "$spid" >"$work/iperf.pid"
  wait_listen "$to" "$port"
  if ! out=$(nsenter --net="$from" iperf3 -J -c "$addr" -p "$port" -t "$seconds"); then
    kill "$spid" 2>/dev/null || true
    rm -f "$work/iperf.pid"
    die "iperf3 to $addr failed: $(gbits <<<"$out" 2>&1 || true)"
  fi
  wait "$spid" || true
  rm -f "$work/iperf.pid"
  gbits <<<"$out"
}

# http_rps in namespace file $1 (empty: the host's) against $2:$3; prints "req/s p99_ms".
rps() {
  local out
  if [ -n "$1" ]; then
    out=$(nsenter --net="$1" "$build/bench/http_rps" "$2" "$3" "$seconds" "$concurrency") ||
      die "http_rps against $2:$3 failed: $out"
  else
    out=$("$build/bench/http_rps" "$2" "$3" "$seconds" "$concurrency") ||
      die "http_rps against $2:$3 failed: $out"
  fi
  awk 'NR == 2 { if ($2 > 0) printf "overlay: %s:%s: %d errors\n", a, p, $2 > "/dev/stderr"
    print $3, $5 }' a="$2" p="$3" <<<"$out"
}

"$lab" up --managers 1 --workers 2 >/dev/null
echo "lab $SKEP_LAB: 1 manager, 2 workers; $rounds rounds of ${seconds} s"

if [ "$only" != http ]; then
  skep network create --driver overlay --subnet 10.0.9.0/24 benchnet >/dev/null
  for w in w1 w2; do
    skep service create -d --name "ov$w" --replicas 1 --constraint "node.hostname==$w" \
      --network benchnet skep/busybox:1 sleep 86400 >/dev/null
  done
  task=$(wait_task ovw1)
  read -r t1 _ <<<"$task"
  task=$(wait_task ovw2)
  read -r t2 a2 <<<"$task"
  a2=$(tr ',' '\n' <<<"$a2" | awk -F/ '$1 ~ /^10\.0\.9\./ { print $1; exit }')
  [ -n "$a2" ] || die "no benchnet address for the task of ovw2"
  t1_ns=$root/w1/data/netns/$t1
  t2_ns=$root/w2/data/netns/$t2
  [ -e "$t1_ns" ] && [ -e "$t2_ns" ] || die "no network namespace at $t1_ns or $t2_ns"
  # The overlay's peers learn each other's endpoints by gossip: wait until w1's task reaches
  # w2's before timing anything.
  for i in $(seq 100); do
    nsenter --net="$t1_ns" "${ping[@]}" -c 1 -W 1 "$a2" >/dev/null 2>&1 && break
    [ "$i" -lt 100 ] || die "the task on w1 cannot reach $a2 over benchnet"
    sleep 0.2
  done
  echo
  echo "TCP, one iperf3 stream, w1 to w2 (underlay: node namespaces $w1_ip to $w2_ip;"
  echo "overlay: task namespaces, to $a2 on benchnet)"
  printf "%-8s %14s %14s %10s\n" ROUND "UNDERLAY GB/S" "OVERLAY GB/S" RATIO
  under=() over=() ratios=()
  for r in $(seq "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then
      u=$(iperf "/run/netns/$(ns w1)" "/run/netns/$(ns w2)" "$w2_ip")
      o=$(iperf "$t1_ns" "$t2_ns" "$a2")
    else
      o=$(iperf "$t1_ns" "$t2_ns" "$a2")
      u=$(iperf "/run/netns/$(ns w1)" "/run/netns/$(ns w2)" "$w2_ip")
    fi
    q=$(ratio "$o" "$u")
    under+=("$u") over+=("$o") ratios+=("$q")
    printf "%-8s %14.3f %14.3f %10s\n" "$r" "$u" "$o" "$q"
  done
  printf "%-8s %14.3f %14.3f %10.3f\n" median \
    "$(printf '%s\n' "${under[@]}" | median)" "$(printf '%s\n' "${over[@]}" | median)" \
    "$(printf '%s\n' "${ratios[@]}" | median)"
fi

if [ "$only" != iperf ]; then
  skep service create -d --name web --replicas 1 --constraint node.hostname==w1 \
    --publish 8080:80 skep/web:1 >/dev/null
  task=$(wait_task web)
  read -r tw _ <<<"$task"
  [ -f "$root/w1/data/netns/$tw.net" ] || die "no $root/w1/data/netns/$tw.net"
  read -r gw _ <"$root/w1/data/netns/$tw.net"
  w1_ns=/run/netns/$(ns w1)
  # Both paths answer before anything is timed (the mesh's rules reach w2 through the
  # manager and the ingress network's gossip).
  for path in "$w1_ns $gw 80" "- $w2_ip 8080"; do
    read -r where addr port <<<"$path"
    for i in $(seq 150); do
      if [ "$where" = - ]; then
        body=$(curl -s -m 2 "http://$addr:$port/" || true)
      else
        body=$(nsenter --net="$where" curl -s -m 2 "http://$addr:$port/" || true)
      fi
      [[ "$body" == "web v1 on "* ]] && break
      [ "$i" -lt 150 ] || die "http://$addr:$port/ does not answer (got: \"$body\")"
      sleep 0.2
    done
  done
  echo
  echo "HTTP/1.0 GET /, a new connection each, $concurrency clients (direct: in w1's namespace,"
  echo "to the task at $gw:80 on skep_gwbridge; mesh: from the host to $w2_ip:8080, forwarded by"
  echo "w2 over the ingress network to the task on w1)"
  printf "%-8s %12s %10s %12s %10s %10s\n" ROUND "DIRECT REQ/S" "P99 MS" "MESH REQ/S" "P99 MS" RATIO
  dr=() mr=() dp=() mp=() ratios=()
  for r in $(seq "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then
      direct=$(rps "$w1_ns" "$gw" 80)
      mesh=$(rps "" "$w2_ip" 8080)
    else
      mesh=$(rps "" "$w2_ip" 8080)
      direct=$(rps "$w1_ns" "$gw" 80)
    fi
    read -r d d99 <<<"$direct"
    read -r m m99 <<<"$mesh"
    q=$(ratio "$m" "$d")
    dr+=("$d") dp+=("$d99") mr+=("$m") mp+=("$m99") ratios+=("$q")
    printf "%-8s %12.1f %10.3f %12.1f %10.3f %10s\n" "$r" "$d" "$d99" "$m" "$m99" "$q"
  done
  printf "%-8s %12.1f %10.3f %12.1f %10.3f %10.3f\n" median \
    "$(printf '%s\n' "${dr[@]}" | median)" "$(printf '%s\n' "${dp[@]}" | median)" \
    "$(printf '%s\n' "${mr[@]}" | median)" "$(printf '%s\n' "${mp[@]}" | median)" \
    "$(printf '%s\n' "${ratios[@]}" | median)"
fi
