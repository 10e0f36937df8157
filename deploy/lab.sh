#!/usr/bin/env bash
# A local skep cluster on one machine: every node is a network namespace with its own address
# on a bridge, running a real skepd with its own data directory and control socket.
#
#   deploy/lab.sh up [--managers N] [--workers N]   install, build, start, init, join, show
#   deploy/lab.sh exec NODE -- CMD...               run CMD in NODE's namespace; `skep` there
#                                                   talks to NODE's skepd
#   deploy/lab.sh kill NODE                         kill -9 NODE's skepd
#   deploy/lab.sh stop NODE                         SIGTERM: NODE's skepd shuts down cleanly
#   deploy/lab.sh start NODE                        start NODE's skepd again
#   deploy/lab.sh cut NODE | heal NODE              drop all of NODE's traffic (nftables) / stop
#   deploy/lab.sh status                            what runs where
#   deploy/lab.sh down                              remove everything the lab created
#
# Nodes are m1..mN (managers) and w1..wN (workers). Environment (for tests running several
# labs side by side): SKEP_LAB (name, default "skep"), SKEP_LAB_NET (the /24 prefix, default
# 10.88.0), SKEP_LAB_ROOT (state, default /var/lib/skep-lab/$SKEP_LAB), SKEP_LAB_BIN (where
# skepd and skep are, default build/daemon), SKEP_LAB_NO_BUILD=1 (use the binaries as they are),
# SKEP_LAB_NO_SERVICE=1 (do not create the demo service), SKEP_LAB_INIT_ARGS (more flags for
# `swarm init`), SKEP_LAB_SKEPD_ARGS (more flags for every skepd), SKEP_LAB_DATA_NET (a second
# /24: every node also gets an eth1 there, on a bridge of its own, and carries its overlay
# (VXLAN) traffic on it: `--data-path-addr eth1`). Every node runs a containerd
# of its own; a registry on the bridge ($SKEP_LAB_NET.1:5000) holds the test images and mirrors
# docker.io for the nodes.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
lab="${SKEP_LAB:-skep}"
net="${SKEP_LAB_NET:-10.88.0}"
root="${SKEP_LAB_ROOT:-/var/lib/skep-lab/$lab}"
bin="${SKEP_LAB_BIN:-$here/build/daemon}"
bridge="${lab}-br"
data_net="${SKEP_LAB_DATA_NET:-}"
data_bridge="${lab}-dp"

die() { echo "lab: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root: the lab creates network namespaces"

ns_of() { echo "${lab}-$1"; }
# NODE's address on the lab's net (or, with a second argument, on another /24 prefix).
ip_of() {
  local net=${2:-$net}
  case "$1" in
    m[0-9]*) echo "$net.$((10 + ${1#m}))" ;;
    w[0-9]*) echo "$net.$((100 + ${1#w}))" ;;
    *) die "unknown node \"$1\": nodes are m1, m2, ... and w1, w2, ..." ;;
  esac
}
sock_of() { echo "$root/$1/skepd.sock"; }
nodes() { [ -d "$root" ] && find "$root" -mindepth 1 -maxdepth 1 -type d -name '[mw][0-9]*' -printf '%f\n' | sort -V || true; }
known() { [ -d "$root/$1" ] || die "no node \"$1\" in lab \"$lab\" (see: deploy/lab.sh status)"; }
skep_on() { local node=$1; shift; SKEP_HOST="unix://$(sock_of "$node")" "$bin/skep" "$@"; }
# A killed skepd whose parent is gone may linger as a zombie until something reaps it: that
# does not count as running. Nor does a process that merely reuses a recorded pid: it must be
# the skepd of this node's data dir.
running() {
  [ -f "$root/$1/pid" ] || return 1
  local pid state
  pid=$(cat "$root/$1/pid")
  state=$(ps -o stat= -p "$pid" 2>/dev/null) || return 1
  [[ "$state" != Z* ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--data-dir $root/$1/data "
}

start_node() {
  local node=$1
  running "$node" && return 0
  mkdir -p "$root/$node"
  rm -f "$(sock_of "$node")"
  # Each node has a containerd of its own; the lab's registry mirrors docker.io for it.
  "$here/deploy/containerd.sh" start "$root/$node/containerd" >/dev/null
  # nsenter, not `ip netns exec`: skepd must share the host's mount namespace, so that the
  # tasks' network namespaces it binds under its data dir are visible to containerd and runc.
  # shellcheck disable=SC2086 # SKEP_LAB_SKEPD_ARGS is a list of flags
  nsenter --net="/run/netns/$(ns_of "$node")" setsid "$bin/skepd" \
    --data-dir "$root/$node/data" --control-socket "$(sock_of "$node")" \
    --hostname "$node" ${SKEP_LAB_LOG_LEVEL:+--log-level "$SKEP_LAB_LOG_LEVEL"} \
    --containerd-socket "$root/$node/containerd/containerd.sock" \
    --registry-mirror "http://$net.1:5000" --insecure-registry "$net.1:5000" \
    ${SKEP_LAB_SKEPD_ARGS:-} \
    >>"$root/$node/skepd.log" 2>&1 </dev/null &
  echo $! >"$root/$node/pid"
  for _ in $(seq 100); do
    [ -S "$(sock_of "$node")" ] && return 0
    running "$node" || die "skepd on $node exited; see $root/$node/skepd.log"
    sleep 0.05
  done
  die "skepd on $node did not open its control socket; see $root/$node/skepd.log"
}

kill_node() {
  local node=$1
  if running "$node"; then
    kill -9 "$(cat "$root/$node/pid")" 2>/dev/null || true
    while running "$node"; do sleep 0.02; done
  fi
  rm -f "$root/$node/pid"
}

stop_node() {
  local node=$1
  running "$node" || return 0
  kill -TERM "$(cat "$root/$node/pid")"
  for _ in $(seq 200); do
    running "$node" || { rm -f "$root/$node/pid"; return 0; }
    sleep 0.05
  done
  die "skepd on $node did not stop within 10 s of SIGTERM"
}

add_node() {
  local node=$1 ns ip host_if
  ns=$(ns_of "$node")
  ip=$(ip_of "$node")
  host_if="${lab}-${node}"
  [ ${#host_if} -le 15 ] || die "interface name $host_if is too long; use a shorter SKEP_LAB"
  [ -z "$data_net" ] || [ ${#host_if} -le 14 ] ||
    die "interface name ${host_if}d is too long; use a shorter SKEP_LAB"
  mkdir -p "$root/$node"
  # A leftover of an earlier lab (see cmd_down) must not make this one fail.
  ip link del "$host_if" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  ip netns add "$ns"
  ip link add "$host_if" type veth peer name eth0 netns "$ns"
  ip link set "$host_if" master "$bridge" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "$net.1"
  if [ -n "$data_net" ]; then
    ip link del "${host_if}d" 2>/dev/null || true
    ip link add "${host_if}d" type veth peer name eth1 netns "$ns"
    ip link set "${host_if}d" master "$data_bridge" up
    ip -n "$ns" addr add "$(ip_of "$node" "$data_net")/24" dev eth1
    ip -n "$ns" link set eth1 up
  fi
}

# The host-side ends of the nodes' veth pairs (named <lab>-<node>, and <lab>-<node>d on the
# data path's bridge).
lab_links() {
  ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
    grep -E "^${lab}-[mw][0-9]+d?$" || true
}

cmd_down() {
  for node in $(nodes); do kill_node "$node"; done
  for node in $(nodes); do
    [ -d "$root/$node/containerd" ] && "$here/deploy/containerd.sh" stop "$root/$node/containerd" >/dev/null 2>&1 || true
  done
  [ -d "$root/registry" ] && "$here/deploy/registry.sh" stop "$root/registry" >/dev/null 2>&1 || true
  # Deleting a veth's host end removes both ends at once; a namespace's own devices, left to
  # the kernel, are torn down asynchronously and can outlive `ip netns del` by seconds, which
  # would make the next `up` fail with "File exists".
  for link in $(lab_links); do ip link del "$link" 2>/dev/null || true; done
  for node in $(nodes); do ip netns del "$(ns_of "$node")" 2>/dev/null || true; done
  # Namespaces a lab left behind without its state directory.
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^${lab}-[mw][0-9]+$" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
  ip link del "$data_bridge" 2>/dev/null || true
  for _ in $(seq 100); do
    [ -z "$(lab_links)" ] && ! ip link show "$bridge" >/dev/null 2>&1 &&
      ! ip link show "$data_bridge" >/dev/null 2>&1 && break
    for link in $(lab_links); do ip link del "$link" 2>/dev/null || true; done
    sleep 0.1
  done
  [ -z "$(lab_links)" ] || die "could not remove the lab's interfaces: $(lab_links | tr '\n' ' ')"
  # The tasks' network namespaces are bind mounts under the nodes' data dirs.
  if [ -d "$root" ]; then
    { findmnt -rn -o TARGET | grep -F "$root/" || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  rm -rf "$root"
}

wait_ready() {
  local want=$1
  for _ in $(seq 200); do
    local ready
    ready=$(skep_on m1 node ls 2>/dev/null | grep -c " Ready " || true)
    [ "$ready" -ge "$want" ] && return 0
    sleep 0.1
  done
  skep_on m1 node ls >&2 || true
  die "not every node became Ready"
}

cmd_up() {
  local managers=3 workers=2
  while [ $# -gt 0 ]; do
    case "$1" in
      --managers) managers=${2:?--managers needs a number}; shift 2 ;;
      --workers) workers=${2:?--workers needs a number}; shift 2 ;;
      *) die "unknown option $1 (use --managers N --workers N)" ;;
    esac
  done
  [[ "$managers" =~ ^[0-9]+$ && "$managers" -ge 1 ]] || die "--managers must be at least 1"
  [[ "$workers" =~ ^[0-9]+$ ]] || die "--workers must be a number"
  if [ -z "${SKEP_LAB_NO_BUILD:-}" ]; then
    "$here/deploy/install-deps.sh"
    cmake -S "$here" -B "$here/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$here/build" -j2 --target skepd skep
  fi
  [ -x "$bin/skepd" ] && [ -x "$bin/skep" ] || die "no skepd/skep in $bin"
  cmd_down
  mkdir -p "$root"
  ip link add "$bridge" type bridge
  ip addr add "$net.1/24" dev "$bridge"
  ip link set "$bridge" up
  local data_args=()
  if [ -n "$data_net" ]; then
    ip link add "$data_bridge" type bridge
    ip addr add "$data_net.1/24" dev "$data_bridge"
    ip link set "$data_bridge" up
    data_args=(--data-path-addr eth1)
  fi
  # The lab's registry, on the bridge, with the test images (deploy/images.sh).
  "$here/deploy/registry.sh" start "$root/registry" "$net.1:5000" >/dev/null
  "$here/deploy/images.sh" "$net.1:5000" >/dev/null

  local all=()
  for i in $(seq "$managers"); do all+=("m$i"); done
  for i in $(seq "$workers"); do all+=("w$i"); done
  for node in "${all[@]}"; do add_node "$node"; done
  for node in "${all[@]}"; do start_node "$node"; done

  # shellcheck disable=SC2086 # SKEP_LAB_INIT_ARGS is a list of flags
  skep_on m1 swarm init --advertise-addr "$(ip_of m1)" "${data_args[@]}" ${SKEP_LAB_INIT_ARGS:-} \
    >/dev/null
  local mtoken wtoken
  mtoken=$(skep_on m1 swarm join-token -q manager)
  wtoken=$(skep_on m1 swarm join-token -q worker)
  for node in "${all[@]}"; do
    [ "$node" = m1 ] && continue
    local token=$wtoken
    [[ "$node" == m* ]] && token=$mtoken
    skep_on "$node" swarm join --token "$token" --advertise-addr "$(ip_of "$node")" \
      "${data_args[@]}" "$(ip_of m1):2377" >/dev/null
  done
  wait_ready "${#all[@]}"
  # Wait for every manager to be a voting member, so the table shows them Reachable.
  for _ in $(seq 100); do
    [ "$(skep_on m1 node ls | grep -cE ' (Leader|Reachable) ')" -ge "$managers" ] && break
    sleep 0.1
  done
  echo "lab \"$lab\": ${managers} managers, ${workers} workers on $net.0/24 (state in $root)"
  echo "run commands on a node with: deploy/lab.sh exec m1 -- skep node ls"
  echo
  skep_on m1 node ls
  if [ -z "${SKEP_LAB_NO_SERVICE:-}" ]; then
    echo
    echo "$ skep network create --driver overlay --subnet 10.0.9.0/24 servicenet"
    skep_on m1 network create --driver overlay --subnet 10.0.9.0/24 servicenet >/dev/null
    skep_on m1 network ls
    echo
    echo "$ skep service create --name web --replicas 2 --constraint node.role==worker \\"
    echo "      --network servicenet --publish 8080:80 skep/web:1"
    skep_on m1 service create --name web --replicas 2 --constraint node.role==worker \
      --network servicenet --publish 8080:80 skep/web:1 | tail -n +2
    echo
    echo "$ skep service ps web"
    skep_on m1 service ps web
    # One task fetches another's page across the overlay, by its address on servicenet.
    local from to_addr
    from=$(skep_on m1 service ps --no-trunc --format '{{.Node}} {{.ID}}' web)
    from=${from%%$'\n'*}
    to_addr=$(skep_on m1 service ps --format '{{.Networks}}' web)
    to_addr=${to_addr##*$'\n'}
    to_addr=${to_addr%%/*}
    echo
    echo "$ (in task ${from#* } on ${from%% *}) curl http://$to_addr/"
    nsenter --net="$root/${from%% *}/data/netns/${from#* }" curl -s -m 5 "http://$to_addr/" || true
    # By name, from inside the container: the embedded DNS gives web's virtual IP, which
    # balances over its tasks.
    echo
    echo "$ (in task ${from#* } on ${from%% *}) wget -qO- http://web/"
    ctr -a "$root/${from%% *}/containerd/containerd.sock" -n skep tasks exec --exec-id "lab-$$" \
      "${from#* }" timeout 5 wget -qO- http://web/ || true
    # The routing mesh: a manager runs none of web's tasks, yet its port 8080 answers, from
    # each task in turn.
    echo
    echo "$ for i in 1 2 3 4; do curl http://$(ip_of m1):8080/; done   # m1 runs no web task"
    for _ in 1 2 3 4; do curl -s -m 5 "http://$(ip_of m1):8080/" || true; done
  fi
}

cmd_exec() {
  local node=${1:?exec needs a node}; shift
  known "$node"
  [ "${1:-}" = "--" ] && shift
  [ $# -gt 0 ] || die "exec needs a command after --"
  # `skep` inside resolves to the lab's binary and talks to this node's skepd.
  exec ip netns exec "$(ns_of "$node")" env SKEP_HOST="unix://$(sock_of "$node")" \
    PATH="$bin:$PATH" "$@"
}

cmd_cut() {
  local node=${1:?cut needs a node}
  known "$node"
  ip netns exec "$(ns_of "$node")" nft -f - <<EOF
table inet skeplab
delete table inet skeplab
table inet skeplab {
  chain input { type filter hook input priority 0; policy accept; iifname "eth0" drop; }
  chain output { type filter hook output priority 0; policy accept; oifname "eth0" drop; }
}
EOF
  echo "$node is cut off"
}

cmd_heal() {
  local node=${1:?heal needs a node}
  known "$node"
  ip netns exec "$(ns_of "$node")" nft delete table inet skeplab 2>/dev/null || true
  echo "$node is reachable again"
}

cmd_status() {
  [ -d "$root" ] || { echo "lab \"$lab\" is down"; return 0; }
  printf "%-6s %-14s %-9s %-8s %s\n" NODE ADDRESS SKEPD TRAFFIC SWARM
  for node in $(nodes); do
    local state="stopped" traffic="open" swarm="-"
    running "$node" && state="running"
    ip netns exec "$(ns_of "$node")" nft list table inet skeplab >/dev/null 2>&1 && traffic="cut"
    if [ "$state" = running ]; then
      swarm=$(skep_on "$node" info 2>/dev/null | awk '/^Swarm:/{s=$2} /Is Manager: true/{m=" manager"} /Is Leader: true/{l=" (leader)"} END{print s m l}')
    fi
    printf "%-6s %-14s %-9s %-8s %s\n" "$node" "$(ip_of "$node")" "$state" "$traffic" "$swarm"
  done
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  exec) shift; cmd_exec "$@" ;;
  kill) known "${2:?kill needs a node}"; kill_node "$2" ;;
  stop) known "${2:?stop needs a node}"; stop_node "$2" ;;
  start) known "${2:?start needs a node}"; start_node "$2" ;;
  cut) cmd_cut "${2:-}" ;;
  heal) cmd_heal "${2:-}" ;;
  status) cmd_status ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
