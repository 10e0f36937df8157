#!/usr/bin/env bash
# Makes a fresh Debian 12 root in DIR, as a new machine would start: debootstrap's minimal
# system from Debian's archive, with the bookworm, bookworm-updates and security sources.
#   deploy/debian-root.sh DIR
# debootstrap's result is kept in /var/cache/skep/bookworm-minbase.tar (or $SKEP_DEBIAN_ROOT_CACHE)
# and unpacked for every new root, since each takes a minute or two to download and unpack.
# Used by the package's test (tests/integration/package_test.cc).
set -euo pipefail
dir="${1:?usage: deploy/debian-root.sh DIR}"
cache="${SKEP_DEBIAN_ROOT_CACHE:-/var/cache/skep/bookworm-minbase.tar}"
mirror="${SKEP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
die() { echo "debian-root.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap)"
[ ! -e "$dir" ] || [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"

if [ ! -f "$cache" ]; then
  command -v debootstrap >/dev/null || die "debootstrap is missing (deploy/install-deps.sh)"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  if ! debootstrap --variant=minbase bookworm "$work/root" "$mirror" >"$work/log" 2>&1; then
    tail -20 "$work/log" >&2
    die "debootstrap failed"
  fi
  cat >"$work/root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
  rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
  mkdir -p "$(dirname "$cache")"
  tar -C "$work/root" -cf "$cache.new" .
  mv "$cache.new" "$cache"
fi
mkdir -p "$dir"
tar -C "$dir" -xf "$cache"
