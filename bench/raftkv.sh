#!/usr/bin/env bash
# raftkv vs etcd: three members in network namespaces on one bridge, the same load generator
# (build/bench/kvload, etcd's KV.Put API) against skep's raftkv and against Debian's etcd, with
# 256-byte values and 1, 64 and 1,000 concurrent clients. Both sync every write to disk.
#
#   bench/raftkv.sh [--seconds S] [--clients "1 64 1000"]
#
# Prints writes/s and p50/p99 latency for both, side by side, and the ratio skep/etcd.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
build="${SKEP_BUILD:-$here/build}"
seconds=10
clients="1 64 1000"
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    *) echo "usage: bench/raftkv.sh [--seconds S] [--clients \"1 64 1000\"]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "raftkv: run as root (network namespaces)" >&2; exit 1; }
command -v etcd >/dev/null || { echo "raftkv: etcd is missing (apt-get install etcd-server)" >&2; exit 1; }
for b in raftkv_server kvload; do
  [ -x "$build/bench/$b" ] || { echo "raftkv: build $b first (cmake --build build)" >&2; exit 1; }
done

net=10.90.0
br=rkv-br
work=/var/tmp/skep-raftkv
ip_of() { echo "$net.$((10 + $1))"; }

teardown() {
  for i in 1 2 3; do
    [ -f "$work/pid$i" ] && kill "$(cat "$work/pid$i")" 2>/dev/null || true
  done
  sleep 0.5
  for i in 1 2 3; do
    [ -f "$work/pid$i" ] && kill -9 "$(cat "$work/pid$i")" 2>/dev/null || true
    rm -f "$work/pid$i"
  done
}
cleanup() {
  teardown
  for i in 1 2 3; do ip netns del "rkv-$i" 2>/dev/null || true; done
  ip link del "$br" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cleanup

ip link add "$br" type bridge
ip addr add "$net.1/24" dev "$br"
ip link set "$br" up
for i in 1 2 3; do
  ip netns add "rkv-$i"
  ip link add "rkv-h$i" type veth peer name eth0 netns "rkv-$i"
  ip link set "rkv-h$i" master "$br" up
  ip -n "rkv-$i" link set lo up
  ip -n "rkv-$i" addr add "$(ip_of "$i")/24" dev eth0
  ip -n "rkv-$i" link set eth0 up
done
mkdir -p "$work"
endpoints="$(ip_of 1):2379,$(ip_of 2):2379,$(ip_of 3):2379"

run_load() {  # system clients -> one kvload line
  "$build/bench/kvload" --endpoints "$endpoints" --clients "$2" --seconds "$seconds"
}

declare -A result
measure() {
  local system=$1
  for c in $clients; do
    local line
    line=$(run_load "$system" "$c")
    echo "  $system: $line" >&2
    result["$system,$c"]="$line"
  done
}

# --- skep raftkv
"$build/bench/raftkv_server" gencerts "$work/certs" 3
peers="1=$(ip_of 1):2380,2=$(ip_of 2):2380,3=$(ip_of 3):2380"
for i in 1 2 3; do
  # In a subshell, so that this shell does not report the members' deaths at teardown.
  (ip netns exec "rkv-$i" "$build/bench/raftkv_server" --id "$i" --peers "$peers" \
    --client-listen "$(ip_of "$i"):2379" --data-dir "$work/raftkv-$i" --certs "$work/certs" \
    >"$work/raftkv-$i.log" 2>&1 & echo $! >"$work/pid$i")
done
echo "skep raftkv: 3 members up" >&2
measure skep
teardown

# --- etcd
cluster="n1=http://$(ip_of 1):2380,n2=http://$(ip_of 2):2380,n3=http://$(ip_of 3):2380"
for i in 1 2 3; do
  (ip netns exec "rkv-$i" etcd --name "n$i" --data-dir "$work/etcd-$i" \
    --listen-peer-urls "http://$(ip_of "$i"):2380" \
    --initial-advertise-peer-urls "http://$(ip_of "$i"):2380" \
    --listen-client-urls "http://$(ip_of "$i"):2379" \
    --advertise-client-urls "http://$(ip_of "$i"):2379" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token skep-bench \
    --logger zap --log-level error >"$work/etcd-$i.log" 2>&1 & echo $! >"$work/pid$i")
done
echo "etcd $(etcd --version | awk '/etcd Version/{print $3}'): 3 members up" >&2
measure etcd
teardown

field() { sed -n "s/.*$2=\([^ ]*\).*/\1/p" <<<"$1"; }
printf "\n%-8s %11s %9s %9s %11s %9s %9s %10s\n" CLIENTS "SKEP W/S" "P50 MS" "P99 MS" \
  "ETCD W/S" "P50 MS" "P99 MS" "SKEP/ETCD"
for c in $clients; do
  s=${result["skep,$c"]}
  e=${result["etcd,$c"]}
  sw=$(field "$s" writes_per_sec)
  ew=$(field "$e" writes_per_sec)
  ratio=$(awk -v a="$sw" -v b="$ew" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')
  printf "%-8s %11s %9s %9s %11s %9s %9s %10s\n" "$c" "$sw" "$(field "$s" p50_ms)" \
    "$(field "$s" p99_ms)" "$ew" "$(field "$e" p50_ms)" "$(field "$e" p99_ms)" "$ratio"
done
