#!/usr/bin/env bash
# Builds skep's Debian package from a build tree: skep_<version>_<arch>.deb with skepd and skep
# (stripped), skepd.service, /etc/default/skepd, bash completion and the README.
#   deploy/package.sh [--arch amd64] [--build DIR] [--out DIR]
# The amd64 package is made from the tree deploy/test.sh builds (build/, default); nothing is
# built here. Its Depends are computed by dpkg-shlibdeps from the binaries, plus what skepd runs
# beside it (containerd, runc) and nftables.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
arch=amd64
build="$here/build"
out="$here/build/packages"
die() { echo "package.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=${2:?--arch needs a value}; shift 2 ;;
    --build) build=${2:?--build needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    -h | --help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
case "$arch" in
  amd64) strip=strip ;;
  *) die "--arch $arch: only amd64 packages are made so far" ;;
esac
for b in skepd skep; do
  [ -x "$build/daemon/$b" ] || die "no $build/daemon/$b: build first (deploy/test.sh or cmake --build)"
done
case "$(file -b "$build/daemon/skepd")" in
  *x86-64*) ;;
  *) die "$build/daemon/skepd is not an $arch binary" ;;
esac
version="$("$build/daemon/skep" version | awk '{print $3}')"
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
"$build/daemon/skep" completion bash >"$root/usr/share/bash-completion/completions/skep"
install -m 644 "$here/README.md" "$root/usr/share/doc/skep/README.md"
for s in postinst prerm postrm; do
  install -m 755 "$here/deploy/package/$s" "$root/DEBIAN/$s"
done
echo /etc/default/skepd >"$root/DEBIAN/conffiles"

# The libraries' packages, as dpkg-shlibdeps finds them (it wants a debian/control beside it).
mkdir -p "$work/src/debian"
printf 'Source: skep\n\nPackage: skep\nArchitecture: any\n' >"$work/src/debian/control"
shlibs="$(cd "$work/src" && dpkg-shlibdeps -O "$root/usr/bin/skepd" "$root/usr/bin/skep" |
  sed -n 's/^shlibs:Depends=//p')"
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no dependencies"

cat >"$root/DEBIAN/control" <<CONTROL
Package: skep
Version: $version
Architecture: $arch
Maintainer: skep developers <skep@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $shlibs, containerd, runc, nftables
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
