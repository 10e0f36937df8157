#!/usr/bin/env bash
# raftkv vs etcd: three members in network namespaces on one bridge, the same load generator
# (build/bench/kvload, etcd's KV.Put API) against skep's raftkv and against Debian's etcd, with
# 256-byte values and 1, 64 and 1,000 concurrent clients. Both sync every write to disk, and
# both encrypt the traffic between members with mutual TLS.
#
#   bench/raftkv.sh [--seconds S] [--clients "1 64 1000"] [--rounds R] [--baseline BUILD]
#
# The two systems take turns, R rounds each (default 3), so that both meet the same moments of
# a noisy machine; the table shows each figure's median over the rounds, and the ratio skep/etcd
# of the median throughputs. With --baseline, the raftkv_server of another build directory (an
# earlier commit, say) takes its turn in every round too, first or second by turns, and a second
# table compares the two skep builds.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
build="${SKEP_BUILD:-$here/build}"
seconds=10
clients="1 64 1000"
rounds=3
baseline=""
usage() {
  echo "usage: bench/raftkv.sh [--seconds S] [--clients \"1 64 1000\"] [--rounds R] [--baseline BUILD]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=${2:?}; shift 2 ;;
    --clients) clients=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    --baseline) baseline=${2:?}; shift 2 ;;
    *) usage ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "raftkv: run as root (network namespaces)" >&2; exit 1; }
command -v etcd >/dev/null || { echo "raftkv: etcd is missing (apt-get install etcd-server)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "raftkv: openssl is missing" >&2; exit 1; }
for b in raftkv_server kvload; do
  [ -x "$build/bench/$b" ] || { echo "raftkv: build $b first (cmake --build build)" >&2; exit 1; }
done
if [ -n "$baseline" ] && [ ! -x "$baseline/bench/raftkv_server" ]; then
  echo "raftkv: no $baseline/bench/raftkv_server for --baseline" >&2
  exit 1
fi

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

declare -A result  # system,clients -> one kvload line per round
measure() {
  local system=$1
  for c in $clients; do
    local line
    line=$("$build/bench/kvload" --endpoints "$endpoints" --clients "$c" --seconds "$seconds")
    echo "  $system: $line" >&2
    result["$system,$c"]+="$line"$'\n'
  done
}

# skep raftkv, with the certificates its members present to each other.
"$build/bench/raftkv_server" gencerts "$work/certs" 3
peers="1=$(ip_of 1):2380,2=$(ip_of 2):2380,3=$(ip_of 3):2380"
# run_skep SYSTEM SERVER: the members are SERVER (a raftkv_server binary), reported as SYSTEM.
run_skep() {
  rm -rf "$work"/raftkv-*
  for i in 1 2 3; do
    # In a subshell, so that this shell does not report the members' deaths at teardown.
    (ip netns exec "rkv-$i" "$2" --id "$i" --peers "$peers" \
      --client-listen "$(ip_of "$i"):2379" --data-dir "$work/raftkv-$i" --certs "$work/certs" \
      >"$work/raftkv-$i.log" 2>&1 & echo $! >"$work/pid$i")
  done
  measure "$1"
  teardown
}

# etcd, with mutual TLS between members as skep has: ECDSA P-256 certificates carrying the IP
# addresses etcd checks.
pki="$work/etcd-pki"
mkdir -p "$pki"
openssl ecparam -name prime256v1 -genkey -noout -out "$pki/ca.key" 2>/dev/null
openssl req -x509 -new -key "$pki/ca.key" -subj /CN=etcd-bench-ca -days 1 -out "$pki/ca.crt" 2>/dev/null
for i in 1 2 3; do
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/$i.key" 2>/dev/null
  openssl req -new -key "$pki/$i.key" -subj "/CN=n$i" -out "$pki/$i.csr" 2>/dev/null
  printf "subjectAltName=IP:%s\nextendedKeyUsage=serverAuth,clientAuth\n" "$(ip_of "$i")" >"$pki/$i.ext"
  openssl x509 -req -in "$pki/$i.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 1 -extfile "$pki/$i.ext" -out "$pki/$i.crt" 2>/dev/null
done
cluster="n1=https://$(ip_of 1):2380,n2=https://$(ip_of 2):2380,n3=https://$(ip_of 3):2380"
run_etcd() {
  rm -rf "$work"/etcd-[0-9]
  for i in 1 2 3; do
    (ip netns exec "rkv-$i" etcd --name "n$i" --data-dir "$work/etcd-$i" \
      --peer-cert-file "$pki/$i.crt" --peer-key-file "$pki/$i.key" \
      --peer-trusted-ca-file "$pki/ca.crt" --peer-client-cert-auth \
      --listen-peer-urls "https://$(ip_of "$i"):2380" \
      --initial-advertise-peer-urls "https://$(ip_of "$i"):2380" \
      --listen-client-urls "http://$(ip_of "$i"):2379" \
      --advertise-client-urls "http://$(ip_of "$i"):2379" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token skep-bench \
      --logger zap --log-level error >"$work/etcd-$i.log" 2>&1 & echo $! >"$work/pid$i")
  done
  measure etcd
  teardown
}

echo "skep raftkv vs etcd $(etcd --version | awk '/etcd Version/{print $3}'), $rounds rounds" >&2
for round in $(seq "$rounds"); do
  echo "round $round" >&2
  if [ -z "$baseline" ]; then
    run_skep skep "$build/bench/raftkv_server"
  elif [ $((round % 2)) -eq 1 ]; then
    run_skep skep "$build/bench/raftkv_server"
    run_skep base "$baseline/bench/raftkv_server"
  else
    run_skep base "$baseline/bench/raftkv_server"
    run_skep skep "$build/bench/raftkv_server"
  fi
  run_etcd
done

# The median of one field over the rounds of one system and client count.
median() {
  printf "%s" "${result["$1,$2"]}" | sed -n "s/.*$3=\([^ ]*\).*/\1/p" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# table OTHER LABEL: skep's medians beside OTHER's (a system of `result`), with the ratio of
# the throughputs.
table() {
  printf "%-8s %11s %9s %9s %11s %9s %9s %10s\n" CLIENTS "SKEP W/S" "P50 MS" "P99 MS" \
    "$2 W/S" "P50 MS" "P99 MS" "SKEP/$2"
  local c sw ow ratio
  for c in $clients; do
    sw=$(median skep "$c" writes_per_sec)
    ow=$(median "$1" "$c" writes_per_sec)
    ratio=$(awk -v a="$sw" -v b="$ow" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')
    printf "%-8s %11.0f %9s %9s %11.0f %9s %9s %10s\n" "$c" "$sw" "$(median skep "$c" p50_ms)" \
      "$(median skep "$c" p99_ms)" "$ow" "$(median "$1" "$c" p50_ms)" "$(median "$1" "$c" p99_ms)" \
      "$ratio"
  done
}
echo
table etcd ETCD
if [ -n "$baseline" ]; then
  printf "\nskep (%s) against the baseline (%s)\n" "$build" "$baseline"
  table base BASE
fi
