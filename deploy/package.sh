#!/usr/bin/env bash
# Builds skep's Debian package: skep_<version>_<arch>.deb with skepd and skep (stripped),
# skepd.service, /etc/default/skepd, bash completion and the README.
#   deploy/package.sh [--arch amd64|arm64] [--build DIR] [--out DIR]
# amd64 is made from the tree deploy/test.sh builds (build/; only skepd and skep are brought up
# to date). arm64 is cross-compiled in build-arm64/ with Debian's g++-aarch64-linux-gnu against
# the sysroot of deploy/sysroot.sh (cmake/aarch64-linux-gnu.cmake), and its binaries are run
# under qemu-aarch64-static for the version and the completion script. Depends are computed
# by dpkg-shlibdeps from the binaries, plus what skepd runs beside it (containerd, runc) and
# nftables.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
arch=amd64
build=""
out="$here/build/packages"
sysroot="${SKEP_SYSROOT:-/var/cache/skep/sysroot-arm64}"
die() { echo "package.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=${2:?--arch needs a value}; shift 2 ;;
    --build) build=${2:?--build needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
case "$arch" in
  amd64)
    build="${build:-$here/build}"
    strip=strip
    machine=x86-64
    run=()
    configure=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
    ;;
  arm64)
    build="${build:-$here/build-arm64}"
    strip=aarch64-linux-gnu-strip
    machine="ARM aarch64"
    run=(qemu-aarch64-static -L "$sysroot")
    configure=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSKEP_THREAD_SAFETY=OFF
      "-DCMAKE_TOOLCHAIN_FILE=$here/cmake/aarch64-linux-gnu.cmake" "-DSKEP_SYSROOT=$sysroot")
    for tool in aarch64-linux-gnu-g++ qemu-aarch64-static mmdebstrap; do
      command -v "$tool" >/dev/null || die "$tool is missing: deploy/install-deps.sh --arm64"
    done
    "$here/deploy/sysroot.sh" "$sysroot"
    ;;
  *) die "--arch $arch: packages are made for amd64 and arm64" ;;
esac
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$here" -B "$build" -G Ninja "${configure[@]}" >/dev/null
fi
cmake --build "$build" -j2 --target skepd skep >&2
case "$(file -b "$build/daemon/skepd")" in
  *"$machine"*) ;;
  *) die "$build/daemon/skepd is not an $arch binary" ;;
esac
version="$("${run[@]}" "$build/daemon/skep" version | awk '{print $3}')"
[ -n "$version" ] || die "cannot read the version from $build/daemon/skep"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
install -d "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/default" \
  "$root/usr/share/bash-completion/completions" "$root/usr/share/doc/skep" "$root/DEBIAN"
for b in skepd skep; do
  "$strip" --strip-unneeded -o "$root/usr/bin/$b" "$build/daemon/$b"
  chmod 755 "$root/usr/bin/$b"
done
install -m 644 "$here/deploy/package/skepd.service" "$root/lib/systemd/system/skepd.service"
install -m 644 "$here/deploy/package/skepd.default" "$root/etc/default/skepd"
"${run[@]}" "$build/daemon/skep" completion bash >"$root/usr/share/bash-completion/completions/skep"
install -m 644 "$here/README.md" "$root/usr/share/doc/skep/README.md"
for s in postinst prerm postrm; do
  install -m 755 "$here/deploy/package/$s" "$root/DEBIAN/$s"
done
echo /etc/default/skepd >"$root/DEBIAN/conffiles"

# The libraries' packages, as dpkg-shlibdeps finds them (it wants a debian/control beside it).
# For arm64 the libraries are the sysroot's, and so are their symbols and shlibs files
# (deploy/sysroot.sh gathers them in the sysroot's DEBIAN/).
mkdir -p "$work/src/debian"
printf 'Source: skep\n\nPackage: skep\nArchitecture: any\n' >"$work/src/debian/control"
shlibdeps=(dpkg-shlibdeps -O)
[ "$arch" = amd64 ] || shlibdeps=(env "DEB_HOST_ARCH=$arch" dpkg-shlibdeps -O "-S$sysroot")
shlibs="$(cd "$work/src" && "${shlibdeps[@]}" "$root/usr/bin/skepd" "$root/usr/bin/skep" |
  sed -n 's/^shlibs:Depends=//p')"
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no dependencies"

cat >"$root/DEBIAN/control" <<CONTROL
Package: skep
Version: $version
Architecture: $arch
Maintainer: skep developers <skep@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $shlibs, containerd, runc, nftables, init-system-helpers
Section: admin
Priority: optional
Description: swarm-mode cluster manager
 skepd runs on every machine of a swarm. Managers keep the cluster's state
 with Raft and place replicated and global services on the nodes; every node
 runs its tasks as containers through containerd, on VXLAN overlay networks.
 Nodes join a swarm with a token; the skep command drives it.
CONTROL
mkdir -p "$out"
deb="$out/skep_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
