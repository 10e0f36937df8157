#!/usr/bin/env bash
# Installs the Debian 12 packages that skep's build, tests and runtime need, from Debian's
# archive only. Idempotent: packages already installed are left alone.
#   deploy/install-deps.sh            the native build, its tests and the amd64 package
#   deploy/install-deps.sh --arm64    and the arm64 cross build (deploy/arm64.sh)
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ ccache pkg-config git
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  librocksdb-dev libssl-dev libspdlog-dev libfmt-dev libabsl-dev
  libnl-3-dev libnl-route-3-dev libnftables-dev
  libboost1.81-dev libboost-program-options1.81-dev libboost-json1.81-dev
  # containerd's API .proto files (and gogo.proto they import), compiled at build time
  golang-github-containerd-containerd-dev golang-github-gogo-protobuf-dev
  # tests
  catch2
  # the fuzz targets (fuzz/): clang with libFuzzer and the sanitizer runtimes, and
  # llvm-symbolizer so that their crash reports name files and lines
  clang libclang-rt-14-dev llvm
  # the Debian package (deploy/package.sh) and its test on a fresh Debian root
  dpkg-dev file debootstrap systemd
  # runtime and the local lab
  iproute2 nftables procps containerd runc
  # the executor's integration tests: a local registry and test images from busybox
  docker-registry umoci skopeo busybox-static curl
)
case "${1:-}" in
  "") ;;
  --arm64)
    # the cross compiler, the sysroot's maker (deploy/sysroot.sh) and the emulator that runs
    # the arm64 programs here
    packages+=(g++-aarch64-linux-gnu binutils-aarch64-linux-gnu mmdebstrap qemu-user-static) ;;
  *) echo "install-deps: unknown argument: $1 (--arm64 or nothing)" >&2; exit 1 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: these packages are missing; run as root to install them: ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "install-deps: apt-get failed" >&2
  exit 1
fi
rm -f "$log"
