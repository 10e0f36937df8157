#!/usr/bin/env bash
# Services on real containers, on a lab cluster (deploy/lab.sh): how long until 50 replicas
# run, until the tasks of a worker whose skepd was killed run elsewhere, and until a rolling
# update of 50 tasks (parallelism 10) completes. Prints a table. As root; builds nothing
# (run deploy/lab.sh up or deploy/test.sh first).
#   bench/services.sh [REPLICAS]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
n=${1:-50}
export SKEP_LAB=skepbench SKEP_LAB_NET=10.92.0 SKEP_LAB_NO_BUILD=1 SKEP_LAB_NO_SERVICE=1
lab="$here/deploy/lab.sh"
skep() { "$lab" exec m1 -- skep "$@"; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
running_on() {  # running current tasks of web, optionally not on node $1
  skep service ps web --filter desired-state=running --format '{{.Node}} {{.CurrentState}}' |
    awk -v skip="${1:-}" '$2 == "Running" && $1 != skip' | wc -l
}
wait_running() {  # N [node to exclude]
  for _ in $(seq 1200); do
    [ "$(running_on "${2:-}")" -ge "$1" ] && return 0
    sleep 0.1
  done
  echo "bench: only $(running_on "${2:-}") of $1 tasks running" >&2
  exit 1
}
trap '"$lab" down >/dev/null 2>&1 || true' EXIT

"$lab" up --managers 1 --workers 3 >/dev/null
skep service create -d --name web --replicas 1 --constraint node.role==worker skep/web:1 >/dev/null
wait_running 1   # the image is on the nodes that ran it: time the scheduling and the starts
skep service rm web >/dev/null
sleep 2

t=$(now)
skep service create -d --name web --replicas "$n" --constraint node.role==worker skep/web:1 >/dev/null
wait_running "$n"
create=$(since "$t")

victim=w1
lost=$(skep service ps web --filter desired-state=running --format '{{.Node}}' | grep -c "^$victim$")
t=$(now)
"$lab" kill "$victim"
wait_running "$n" "$victim"
failover=$(since "$t")
"$lab" start "$victim"
sleep 3

t=$(now)
skep service update -d --image skep/web:2 --update-parallelism 10 --update-monitor 0s web >/dev/null
for _ in $(seq 3000); do
  state=$(skep service inspect --format '{{.UpdateStatus.State}}' web)
  [ "$state" = completed ] && break
  sleep 0.1
done
update=$(since "$t")

printf "%-52s %10s\n" MEASURE SECONDS
printf "%-52s %10.2f\n" "create --replicas $n to $n running" "$create"
printf "%-52s %10.2f\n" "kill -9 of a worker's skepd ($lost tasks) to all running" "$failover"
printf "%-52s %10.2f\n" "rolling update of $n tasks, parallelism 10 ($state)" "$update"
