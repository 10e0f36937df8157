#!/usr/bin/env bash
# Makes the arm64 sysroot skep is cross-compiled against: Debian 12's arm64 -dev packages
# (the same list as deploy/install-deps.sh's build packages), extracted into a directory of
# their own with mmdebstrap, never installed into the host's dpkg.
#   deploy/sysroot.sh [DIR]     (default /var/cache/skep/sysroot-arm64, or $SKEP_SYSROOT)
# Nothing runs inside it (no qemu needed). A sysroot made from the same package list is kept.
# Besides the files, DIR/DEBIAN/{shlibs,symbols} gather the libraries' dependency information
# so that dpkg-shlibdeps can compute an arm64 package's Depends (deploy/package.sh).
set -euo pipefail
dir="${1:-${SKEP_SYSROOT:-/var/cache/skep/sysroot-arm64}}"
packages=(
  libc6-dev libstdc++-12-dev
  libprotobuf-dev libgrpc++-dev
  # gRPC's CMake package names the plugins' files, and refuses to load without them
  protobuf-compiler-grpc
  librocksdb-dev libssl-dev libspdlog-dev libfmt-dev libabsl-dev
  libnl-3-dev libnl-route-3-dev libnftables-dev
  libboost1.81-dev libboost-program-options1.81-dev libboost-json1.81-dev
  golang-github-containerd-containerd-dev golang-github-gogo-protobuf-dev
  catch2
)
die() { echo "sysroot.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap --mode=root)"
case "$(realpath -m "$dir")" in /) die "the sysroot cannot be /" ;; esac
list="$(IFS=,; echo "${packages[*]}")"
if [ -f "$dir/.skep-packages" ] && [ "$(cat "$dir/.skep-packages")" = "$list" ]; then
  exit 0
fi
for tool in mmdebstrap dpkg-deb; do
  command -v "$tool" >/dev/null || die "$tool is missing (deploy/install-deps.sh --arm64)"
done

echo "sysroot.sh: extracting the arm64 build packages into $dir"
rm -rf "$dir" "$dir.new"
log="$(mktemp)"
if ! mmdebstrap --mode=root --variant=extract --architectures=arm64 --skip=check/qemu \
    --skip=cleanup/apt/cache --include="$list" bookworm "$dir.new" >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  die "mmdebstrap failed"
fi
rm -f "$log"

# Symbolic links that name an absolute path (libz.so -> /lib/aarch64-linux-gnu/libz.so.1, in
# -dev packages) would point at the host's files: make them relative inside the sysroot.
while IFS= read -r link; do
  target="$(readlink "$link")"
  ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$dir.new$target")" "$link"
done < <(find "$dir.new/usr/lib" "$dir.new/lib" -type l -lname '/*')

# Snappy's CMake package (loaded by RocksDB's) names its libraries by absolute paths.
for f in "$dir.new"/usr/lib/aarch64-linux-gnu/cmake/Snappy/SnappyTargets-*.cmake; do
  [ -f "$f" ] && sed -i "s|\"/usr/lib/|\"$dir/usr/lib/|g" "$f"
done

# Every library package's shlibs and symbols files, for dpkg-shlibdeps -S.
mkdir -p "$dir.new/DEBIAN"
control="$(mktemp -d)"
for deb in "$dir.new"/var/cache/apt/archives/*.deb; do
  rm -rf "${control:?}"/*
  dpkg-deb --control "$deb" "$control"
  [ -f "$control/shlibs" ] && cat "$control/shlibs" >>"$dir.new/DEBIAN/shlibs"
  [ -f "$control/symbols" ] && cat "$control/symbols" >>"$dir.new/DEBIAN/symbols"
done
rm -rf "$control" "$dir.new"/var/cache/apt/archives/*.deb

echo "$list" >"$dir.new/.skep-packages"
mv "$dir.new" "$dir"
echo "sysroot.sh: $dir ($(du -sh "$dir" | cut -f1))"
