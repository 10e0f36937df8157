#!/usr/bin/env bash
# A private containerd, independent of the system one at /run/containerd.
#
#   deploy/containerd.sh start DIR   # root, state, socket (DIR/containerd.sock), log and pid under DIR
#   deploy/containerd.sh stop DIR    # kills its containers and shims, stops it, unmounts leftovers
#   deploy/containerd.sh status DIR  # exit 0 if it runs and answers
#
# Layout: DIR/config.toml, DIR/root (content, snapshots, metadata), DIR/state (bundles, fifos),
# DIR/opt, DIR/containerd.sock (+ .ttrpc), DIR/containerd.log, DIR/containerd.pid. The CRI plugin
# is disabled (we drive the native API).
#
# Shims: containerd-shim-runc-v2 outlives containerd by design. `stop` first SIGKILLs every task
# of every namespace through ctr, deletes tasks and containers, stops containerd, then kills any
# shim still registered with this instance's socket (found by its `-address DIR/containerd.sock`
# argument, killed by pid, its container's runc state deleted) and lazily unmounts whatever is
# still mounted under DIR. A stopped
# instance's data stays in DIR: `start` again reuses it. Both commands are idempotent.
# Extra settings for config.toml can be given in $SKEP_CONTAINERD_EXTRA_CONFIG (appended as is).
set -euo pipefail

usage() {
  echo "usage: $0 start|stop|status DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
sock=$dir/containerd.sock
pidfile=$dir/containerd.pid

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  # The pid must still be our containerd (not a recycled pid).
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--config $dir/config.toml" || return 1
  echo "$pid"
}

answers() {
  ctr --address "$sock" --timeout 2s version >/dev/null 2>&1
}

# Pids of shims started by this instance (their command line names our socket).
shim_pids() {
  local p
  for p in /proc/[0-9]*; do
    [ -r "$p/cmdline" ] || continue
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "^[^ ]*containerd-shim[^ ]* .*-address $sock "; then
      basename "$p"
    fi
  done
}

unmount_under() {
  # Deepest first; lazy, so that a busy mount does not block the cleanup.
  local m
  awk -v d="$dir/" '{ if (index($5, d) == 1) print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
}

start() {
  if running_pid >/dev/null && answers; then
    return 0
  fi
  if pid=$(running_pid); then
    # Running but not answering yet (another start in flight): fall through to the wait.
    :
  else
    mkdir -p "$dir/root" "$dir/state" "$dir/opt"
    cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
${SKEP_CONTAINERD_EXTRA_CONFIG:-}
EOF
    rm -f "$sock" "$sock.ttrpc"
    setsid containerd --config "$dir/config.toml" >>"$dir/containerd.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$pidfile"
  fi
  # Bounded wait for the socket to answer (about 20 s).
  for _ in $(seq 1 200); do
    if answers; then
      return 0
    fi
    if ! [ -d "/proc/$pid" ]; then
      echo "containerd.sh: containerd exited at start; last log lines:" >&2
      tail -n 20 "$dir/containerd.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "containerd.sh: containerd (pid $pid) does not answer on $sock after 20 s; see $dir/containerd.log" >&2
  exit 1
}

stop() {
  if answers; then
    local ns id
    for ns in $(ctr --address "$sock" namespaces list -q 2>/dev/null); do
      for id in $(ctr --address "$sock" -n "$ns" tasks list -q 2>/dev/null); do
        ctr --address "$sock" -n "$ns" tasks kill --all --signal SIGKILL "$id" >/dev/null 2>&1 || true
        ctr --address "$sock" -n "$ns" tasks delete --force "$id" >/dev/null 2>&1 || true
      done
      for id in $(ctr --address "$sock" -n "$ns" containers list -q 2>/dev/null); do
        ctr --address "$sock" -n "$ns" containers delete "$id" >/dev/null 2>&1 || true
      done
    done
  fi
  local pid
  if pid=$(running_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      [ -d "/proc/$pid" ] || break
      sleep 0.1
    done
    if [ -d "/proc/$pid" ]; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
  # Shims that survived (tasks that could not be deleted, or a containerd that was killed).
  local shims
  shims=$(shim_pids)
  if [ -n "$shims" ]; then
    local s child args ns id
    for s in $shims; do
      # The shim's children are the containers' init processes: kill them first, and drop
      # runc's state for them (runc keeps it under /run/containerd/runc/<namespace>, shared by
      # every containerd on the machine, so a leftover would block the same id later).
      args=$(tr '\0' ' ' <"/proc/$s/cmdline" 2>/dev/null || true)
      ns=$(sed -n 's/.* -namespace \([^ ]*\) .*/\1/p' <<<"$args")
      id=$(sed -n 's/.* -id \([^ ]*\) .*/\1/p' <<<"$args")
      for child in $(cat /proc/"$s"/task/*/children 2>/dev/null); do
        kill -KILL "$child" 2>/dev/null || true
      done
      if [ -n "$ns" ] && [ -n "$id" ]; then
        runc --root "/run/containerd/runc/$ns" delete --force "$id" >/dev/null 2>&1 || true
      fi
      kill -KILL "$s" 2>/dev/null || true
      # Its socket: /run/containerd/s/<sha256 of "<containerd socket>/<namespace>/<id>">.
      if [ -n "$ns" ] && [ -n "$id" ]; then
        rm -f "/run/containerd/s/$(printf '%s' "$sock/$ns/$id" | sha256sum | cut -d' ' -f1)"
      fi
    done
  fi
  unmount_under
  rm -f "$sock" "$sock.ttrpc"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) running_pid >/dev/null && answers ;;
  *) usage ;;
esac
