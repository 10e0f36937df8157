#!/usr/bin/env bash
# The arm64 build, checked on this (amd64) machine under qemu-aarch64-static, and its package:
#   deploy/arm64.sh
# 1. deploy/package.sh --arch arm64: the sysroot (deploy/sysroot.sh), the cross build of skepd
#    and skep in build-arm64/ (cmake/aarch64-linux-gnu.cmake), skep_<version>_arm64.deb.
# 2. The unit tests of raft (the core and its RocksDB log), the scheduler and the manager (the
#    store among them), built for arm64 and run by ctest under qemu.
# 3. `skep version` says linux/arm64, and skepd starts a one-manager swarm in a lab of its own
#    (deploy/lab.sh, SKEP_LAB=arm64): swarm init, and node ls shows the node Ready. qemu-user
#    does not pass netfilter's netlink through, so skepd logs that the routing mesh cannot
#    write its nftables rules there; that part runs only on arm64 hardware.
# Not part of deploy/test.sh: the cross build alone takes longer than CI can give it (see
# bench/RESULTS.md for the time). binfmt_misc is not needed: qemu is named on every command.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
sysroot="${SKEP_SYSROOT:-/var/cache/skep/sysroot-arm64}"
build="$here/build-arm64"
die() { echo "arm64.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (the sysroot and the lab)"

"$here/deploy/install-deps.sh" --arm64
deb="$(SKEP_SYSROOT="$sysroot" "$here/deploy/package.sh" --arch arm64 --build "$build" | tail -1)"
echo "arm64.sh: package $deb"

tests=(raft_unit_test raft_storage_test scheduler_test manager_unit_test)
cmake --build "$build" -j2 --target "${tests[@]}"
(cd "$build" && ctest --output-on-failure -j2 -R '^(raft|raft storage|scheduler|manager):')

# skepd and skep through qemu, for the lab.
wrappers="$build/qemu-bin"
mkdir -p "$wrappers"
for b in skepd skep; do
  printf '#!/bin/sh\nexec qemu-aarch64-static -L %s %s "$@"\n' "$sysroot" "$build/daemon/$b" \
    >"$wrappers/$b"
  chmod 755 "$wrappers/$b"
done
version="$("$wrappers/skep" version)"
echo "arm64.sh: $version"
case "$version" in
  *"(linux/arm64)") ;;
  *) die "skep version does not say linux/arm64" ;;
esac

export SKEP_LAB=arm64 SKEP_LAB_NET=10.89.40 SKEP_LAB_BIN="$wrappers" SKEP_LAB_NO_BUILD=1
export SKEP_LAB_NO_SERVICE=1
trap '"$here/deploy/lab.sh" down >/dev/null 2>&1 || true' EXIT
"$here/deploy/lab.sh" up --managers 1 --workers 0
ls="$("$here/deploy/lab.sh" exec m1 -- skep node ls)"
echo "$ls"
grep -q ' Ready .*Leader' <<<"$ls" || die "the arm64 manager is not Ready"
arch="$("$here/deploy/lab.sh" exec m1 -- skep node inspect self --format '{{.Description.Platform.Architecture}}')"
[ "$arch" = aarch64 ] || die "the arm64 node reports its architecture as \"$arch\", not aarch64"
echo "arm64.sh: all checks passed"
