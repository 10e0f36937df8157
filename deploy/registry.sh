#!/usr/bin/env bash
# A private OCI registry (Debian's docker-registry, distribution v2) on plain HTTP.
#
#   deploy/registry.sh start DIR ADDR   # e.g. ADDR=127.0.0.1:5000; storage in DIR/data
#   deploy/registry.sh stop DIR         # the data stays, so a later start serves the same images
#   deploy/registry.sh status DIR       # exit 0 if it runs and answers
#
# Layout: DIR/config.yml, DIR/data, DIR/registry.log, DIR/registry.pid, DIR/url.
# Both commands are idempotent; start with another ADDR than the running one restarts it.
# With SKEP_REGISTRY_HTPASSWD=FILE (bcrypt entries, user:$2y$...), every request needs HTTP
# Basic auth. With SKEP_REGISTRY_TLS_CERT=FILE and SKEP_REGISTRY_TLS_KEY=FILE it serves HTTPS.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR ADDR | stop DIR | status DIR" >&2
  exit 2
}
[ $# -ge 2 ] || usage
cmd=$1
dir=$2
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pidfile=$dir/registry.pid

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "serve $dir/config.yml" || return 1
  echo "$pid"
}

answers() {
  local url=$1 code
  # 200, or 401 when auth is on: either way the registry is serving (its certificate is not
  # checked here; clients do that).
  code=$(curl -ksS -o /dev/null -w '%{http_code}' --max-time 2 "$url/v2/" 2>/dev/null) || return 1
  [ "$code" = 200 ] || [ "$code" = 401 ]
}

stop() {
  local pid
  if pid=$(running_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      [ -d "/proc/$pid" ] || break
      sleep 0.1
    done
    if [ -d "/proc/$pid" ]; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

start() {
  local addr=$1 url
  url="http://$addr"
  [ -n "${SKEP_REGISTRY_TLS_CERT:-}" ] && url="https://$addr"
  if running_pid >/dev/null; then
    if [ "$(cat "$dir/url" 2>/dev/null)" = "$url" ] && answers "$url"; then
      return 0
    fi
    stop
  fi
  mkdir -p "$dir/data"
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $addr
  headers:
    X-Content-Type-Options: [nosniff]
EOF
  if [ -n "${SKEP_REGISTRY_TLS_CERT:-}" ]; then
    cat >>"$dir/config.yml" <<EOF
  tls:
    certificate: $SKEP_REGISTRY_TLS_CERT
    key: ${SKEP_REGISTRY_TLS_KEY:?SKEP_REGISTRY_TLS_KEY must name the key of SKEP_REGISTRY_TLS_CERT}
EOF
  fi
  if [ -n "${SKEP_REGISTRY_HTPASSWD:-}" ]; then
    cat >>"$dir/config.yml" <<EOF
auth:
  htpasswd:
    realm: skep-registry
    path: $SKEP_REGISTRY_HTPASSWD
EOF
  fi
  echo "$url" >"$dir/url"
  setsid docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$pidfile"
  # Bounded wait for it to answer (about 10 s).
  for _ in $(seq 1 100); do
    if answers "$url"; then
      return 0
    fi
    if ! [ -d "/proc/$pid" ]; then
      echo "registry.sh: docker-registry exited at start; last log lines:" >&2
      tail -n 20 "$dir/registry.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "registry.sh: docker-registry (pid $pid) does not answer on $url/v2/ after 10 s; see $dir/registry.log" >&2
  exit 1
}

case "$cmd" in
  start)
    [ $# -eq 3 ] || usage
    start "$3"
    ;;
  stop) stop ;;
  status) running_pid >/dev/null && answers "$(cat "$dir/url" 2>/dev/null)" ;;
  *) usage ;;
esac
