#!/usr/bin/env bash
# Builds skep's test images from busybox-static with umoci and pushes them with skopeo.
#
#   deploy/images.sh REGISTRY_HOSTPORT     # e.g. 127.0.0.1:5000 or 10.88.0.1:5000
#
# Images (OCI image manifests, linux/<this arch>):
#   skep/busybox:1   busybox, CMD sh
#   skep/web:1, :2   busybox httpd -f -p 80 serving /www/index.html = "web v1 on <hostname>"
#                    (v2 for :2), written at container start so the hostname is the
#                    container's; a TERM stops httpd and exits 0. Two layers: the base and one
#                    with the version.
#   skep/fail:1      exits 1 after 1 s
#   skep/stubborn:1  ignores SIGTERM and sleeps forever (only SIGKILL stops it)
#   skep/healthy:1   skep/web:1 with a Docker HEALTHCHECK in its config: CMD cat /www/index.html
#                    every second, 2 retries
#   skep/multi:1     an OCI image index: skep/busybox:1's manifest for this machine's platform,
#                    listed after skep/web:1's for another platform (to test the choice)
#   skep/foreign:1   skep/busybox:1 with a config that says linux/arm64 (linux/amd64 on an
#                    arm64 machine): an image for another architecture only, which the
#                    scheduler must not place here
# Users in every image: root (0), nobody (65534), www (1000, also in group staff 50).
#
# Idempotent: an image already in the registry is left alone, so a second run only asks the
# registry (set SKEP_IMAGES_FORCE=1 to rebuild and push everything). When one is missing, all
# are built (about a second) and the missing ones pushed. The registry is reached without TLS
# verification (plain HTTP registries included).
set -euo pipefail

[ $# -eq 1 ] || {
  echo "usage: $0 REGISTRY_HOSTPORT" >&2
  exit 2
}
registry=$1
busybox=$(command -v busybox || true)
[ -x /bin/busybox ] && busybox=/bin/busybox
if [ -z "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
  # `file` may be missing: trust busybox-static's path then.
  if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed"; then
    echo "images.sh: busybox-static is not installed (apt-get install busybox-static)" >&2
    exit 1
  fi
  busybox=/bin/busybox
fi
for tool in umoci skopeo; do
  command -v "$tool" >/dev/null || {
    echo "images.sh: $tool is not installed (deploy/install-deps.sh)" >&2
    exit 1
  }
done

images=("busybox:1" "web:1" "web:2" "fail:1" "stubborn:1" "healthy:1" "multi:1" "foreign:1")

present() {
  skopeo inspect --raw --tls-verify=false "docker://$registry/skep/$1" >/dev/null 2>&1
}

missing=()
for img in "${images[@]}"; do
  if [ "${SKEP_IMAGES_FORCE:-0}" = 1 ] || ! present "$img"; then
    missing+=("$img")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

work=$(mktemp -d /tmp/skep-images.XXXXXX)
trap 'rm -rf "$work"' EXIT
oci=$work/oci

# The base layer: busybox, its applets as symlinks, users, and the images' scripts.
umoci init --layout "$oci"
umoci new --image "$oci:base"
umoci unpack --image "$oci:base" "$work/base" >/dev/null
root=$work/base/rootfs
mkdir -p "$root"/{bin,sbin,etc,root,tmp,www,home/www,proc,sys,dev,run,var/log,usr/local/bin}
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in sh ash cat cp date dd df du echo env false find grep head hostname httpd id \
  kill ln ls mkdir mv nc netstat nslookup ping printf ps pwd readlink rm sed seq sleep sort \
  stat tail tee test top touch tr true uname wc wget whoami xargs chmod chown cut uniq awk \
  basename dirname ip ifconfig mount umount vi yes timeout; do
  ln -sf busybox "$root/bin/$applet"
done
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
www:x:1000:1000:www:/home/www:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
staff:x:50:www
www:x:1000:
nogroup:x:65534:
EOF
chown 1000:1000 "$root/home/www"
cat >"$root/usr/local/bin/web-entrypoint" <<'EOF'
#!/bin/sh
# Writes the page at start so that it names this container's hostname, then serves it.
# httpd runs as a child so that a TERM to this script (pid 1, which gets no default signal
# actions) stops it cleanly; the trap is set first, so once the page is served TERM works.
child=
trap '[ -n "$child" ] && kill "$child" && wait "$child"; exit 0' TERM INT
echo "web $(cat /etc/skep-web-version) on $(hostname)" >/www/index.html
httpd -f -p "${PORT:-80}" -h /www &
child=$!
wait "$child"
EOF
chmod 755 "$root/usr/local/bin/web-entrypoint"
umoci repack --image "$oci:base" "$work/base" >/dev/null
umoci config --image "$oci:base" --config.env PATH=/usr/local/bin:/bin:/sbin \
  --config.workingdir / --config.cmd sh --config.label org.skep.test=1 >/dev/null

build() {
  local name=$1 tag=$2 ref="$oci:$1-$2"
  case "$name" in
    busybox)
      umoci config --image "$oci:base" --tag "$name-$tag" >/dev/null
      ;;
    web)
      rm -rf "$work/web"
      umoci unpack --image "$oci:base" "$work/web" >/dev/null
      echo "v$tag" >"$work/web/rootfs/etc/skep-web-version"
      umoci repack --image "$ref" "$work/web" >/dev/null
      umoci config --image "$ref" --config.entrypoint /usr/local/bin/web-entrypoint \
        --clear config.cmd --config.exposedports 80/tcp --config.stopsignal SIGTERM \
        --config.label "org.skep.web.version=v$tag" >/dev/null
      ;;
    fail)
      umoci config --image "$oci:base" --tag "$name-$tag" --config.cmd sh --config.cmd -c \
        --config.cmd 'sleep 1; exit 1' >/dev/null
      ;;
    foreign)
      local arch=arm64
      [ "$(uname -m)" = aarch64 ] && arch=amd64
      umoci config --image "$oci:base" --tag "$name-$tag" --architecture "$arch" >/dev/null
      ;;
    stubborn)
      # An ignored signal stays ignored across exec, so sleep ignores TERM as well.
      umoci config --image "$oci:base" --tag "$name-$tag" --config.cmd sh --config.cmd -c \
        --config.cmd "trap '' TERM; while :; do sleep 3600; done" >/dev/null
      ;;
  esac
}

# The platform of this machine as OCI writes it, and one that is surely not it.
case "$(uname -m)" in
  x86_64) platform='"os":"linux","architecture":"amd64"' ;;
  aarch64) platform='"os":"linux","architecture":"arm64","variant":"v8"' ;;
  armv7l) platform='"os":"linux","architecture":"arm","variant":"v7"' ;;
  armv6l) platform='"os":"linux","architecture":"arm","variant":"v6"' ;;
  i686) platform='"os":"linux","architecture":"386"' ;;
  *) platform="\"os\":\"linux\",\"architecture\":\"$(uname -m)\"" ;;
esac
other='"os":"linux","architecture":"s390x"'
[ "$(uname -m)" = s390x ] && other='"os":"linux","architecture":"ppc64le"'

# A descriptor of tag $1's manifest in the layout, with platform $2, from umoci's index.json
# (compact JSON, one entry per tag).
descriptor() {
  local entry digest size
  entry=$(grep -o "{[^{}]*\"annotations\":{\"org.opencontainers.image.ref.name\":\"$1\"}}" "$oci/index.json")
  digest=$(sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p' <<<"$entry")
  size=$(sed -n 's/.*"size":\([0-9]*\).*/\1/p' <<<"$entry")
  [ -n "$digest" ] && [ -n "$size" ] || {
    echo "images.sh: no manifest tagged $1 in $oci/index.json" >&2
    exit 1
  }
  printf '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"platform":{%s}}' \
    "$digest" "$size" "$2"
}

# The index goes in a layout of its own (sharing the blobs), tagged multi-1.
build_multi() {
  local multi=$work/multi index digest
  mkdir -p "$multi"
  cp -al "$oci/blobs" "$multi/blobs"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$multi/oci-layout"
  index=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s,%s]}' \
    "$(descriptor web-1 "$other")" "$(descriptor busybox-1 "$platform")")
  digest=$(printf '%s' "$index" | sha256sum | cut -d' ' -f1)
  printf '%s' "$index" >"$multi/blobs/sha256/$digest"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"multi-1"}}]}' \
    "$digest" "$(printf '%s' "$index" | wc -c)" >"$multi/index.json"
}

# skep/healthy:1 in a layout of its own (sharing the blobs), tagged healthy-1: web-1's manifest
# and config rewritten, since umoci writes OCI configs, which have no Healthcheck field.
build_healthy() {
  local dir=$work/healthy mdigest manifest cdigest config ndigest nsize nmanifest
  mkdir -p "$dir"
  cp -al "$oci/blobs" "$dir/blobs"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
  mdigest=$(descriptor web-1 "$platform" | sed -n 's/.*"digest":"sha256:\([0-9a-f]*\)".*/\1/p')
  manifest=$(cat "$oci/blobs/sha256/$mdigest")
  cdigest=$(sed -n 's/.*"config":{[^}]*"digest":"sha256:\([0-9a-f]*\)".*/\1/p' <<<"$manifest")
  config=$(sed 's|"config":{|"config":{"Healthcheck":{"Test":["CMD","cat","/www/index.html"],"Interval":1000000000,"Retries":2},|' \
    "$oci/blobs/sha256/$cdigest")
  ndigest=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
  nsize=$(printf '%s' "$config" | wc -c)
  printf '%s' "$config" >"$dir/blobs/sha256/$ndigest"
  nmanifest=$(sed "s|\"config\":{[^}]*}|\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$ndigest\",\"size\":$nsize}|" <<<"$manifest")
  mdigest=$(printf '%s' "$nmanifest" | sha256sum | cut -d' ' -f1)
  printf '%s' "$nmanifest" >"$dir/blobs/sha256/$mdigest"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"healthy-1"}}]}' \
    "$mdigest" "$(printf '%s' "$nmanifest" | wc -c)" >"$dir/index.json"
}

for img in busybox:1 web:1 web:2 fail:1 stubborn:1 foreign:1; do
  build "${img%%:*}" "${img##*:}"
done
build_multi
build_healthy

for img in "${missing[@]}"; do
  name=${img%%:*}
  tag=${img##*:}
  if [ "$name" = multi ]; then
    skopeo copy --quiet --all --dest-tls-verify=false "oci:$work/multi:multi-1" \
      "docker://$registry/skep/$name:$tag"
  elif [ "$name" = healthy ]; then
    skopeo copy --quiet --dest-tls-verify=false "oci:$work/healthy:healthy-1" \
      "docker://$registry/skep/$name:$tag"
  else
    skopeo copy --quiet --dest-tls-verify=false "oci:$oci:$name-$tag" \
      "docker://$registry/skep/$name:$tag"
  fi
  echo "images.sh: pushed $registry/skep/$name:$tag"
done
