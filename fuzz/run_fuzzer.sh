#!/usr/bin/env bash
# One fuzz target's CTest run (label fuzz): replays the inputs that once broke the target, then
# fuzzes it for a while from its seeds. New inputs go to a scratch copy of the seeds in the
# build tree, crash reproducers next to it: the source tree is never written. Exits non-zero
# when libFuzzer finds a crash, a leak, a sanitizer report or an input that runs too long.
#   run_fuzzer.sh FUZZER SEED_DIR REGRESSION_DIR WORK_DIR [SECONDS]
set -euo pipefail
fuzzer=$1
seeds=$2
regressions=$3
work=$4
seconds=${5:-20}

rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
cp -R "$seeds/." "$work/corpus/"
options=(-timeout=10 -rss_limit_mb=2048 -artifact_prefix="$work/artifacts/")

failed() {
  echo "run_fuzzer: $(basename "$fuzzer") failed; what crashed it is in $work/artifacts/" >&2
  echo "run_fuzzer: replay one with: $fuzzer FILE (once fixed, add FILE to $regressions/)" >&2
  exit 1
}

shopt -s nullglob
replay=("$regressions"/*)
if [ ${#replay[@]} -gt 0 ]; then
  echo "run_fuzzer: replaying ${#replay[@]} regression input(s) from $regressions"
  "$fuzzer" "${options[@]}" "${replay[@]}" || failed
fi
"$fuzzer" "${options[@]}" -max_total_time="$seconds" -print_final_stats=1 \
  "$work/corpus" "$seeds" || failed
