#!/usr/bin/env bash
# Builds the project's images as users build them, without Docker: the Dockerfile's operator target
# and its `--target example` with buildah, from a locally assembled stand-in for the base image
# (no registry is reachable here), written as docker-archive tars that `ctr images import` and
# `kind load image-archive` take. Prints the directory holding operator.tar and example.tar last.
#
# The base image: debootstrap --variant=minbase bookworm, plus the node binary of the `node` npm
# package (the version package.json pins), npm, and the host's CA bundle with NODE_EXTRA_CA_CERTS
# pointing at it: behind a TLS-intercepting proxy `npm ci` inside the build otherwise fails with
# SELF_SIGNED_CERT_IN_CHAIN. It is tagged docker.io/library/node:24-bookworm-slim, the name the
# Dockerfile asks for.
#
# Cached by content: the images are rebuilt only when an input changes (Dockerfile, package files,
# tsconfig, src/, examples/, this script, the node binary, the CA bundle); the base image only when
# its own inputs change. Needs root (buildah, debootstrap); hack/build-node.sh installs both.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=SCRIPTDIR/lib/build-cache.sh
source "$root/hack/lib/build-cache.sh"
cache_root="$(svid_cache_root)"
images="$cache_root/images"
ca_bundle="${SVID_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
mirror="${SVID_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
base_ref=docker.io/library/node:24-bookworm-slim
node_bin="$root/node_modules/node/bin/node"
npm_dir="$(npm root -g)/npm"

log() { echo "build-images: $*" >&2; }
fail() {
  log "$*"
  exit 1
}

[[ $(id -u) -eq 0 ]] || fail "needs root (buildah with chroot isolation, debootstrap)"
for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || fail "$tool is not installed; run hack/build-node.sh (it installs it) or apt-get install $tool"
done
[[ -x "$node_bin" ]] || fail "$node_bin is missing; run npm ci first"
[[ -f "$npm_dir/bin/npm-cli.js" ]] || fail "npm was not found at $npm_dir"
[[ -f "$ca_bundle" ]] || fail "the CA bundle $ca_bundle does not exist; set SVID_CA_BUNDLE"

lock_cache "$images"

# vfs and chroot: no overlay mounts or user namespaces needed; storage of our own, not /var/lib/containers.
bah=(buildah --root "$images/storage" --runroot "$images/run" --storage-driver vfs)

hash_files() { sha256sum "$@" | sha256sum | cut -c1-16; }

base_key="$(
  {
    "$node_bin" --version
    # Contents only (sha256sum FILE would print the path too, and the node binary's path differs per
    # checkout: every worktree sharing this cache would then rebuild the shared base image in turn).
    for f in "$node_bin" "$ca_bundle" "$npm_dir/package.json"; do sha256sum <"$f"; done
    echo "$mirror"
    sed -n '/^# --- base ---$/,/^# --- end base ---$/p' "${BASH_SOURCE[0]}"
  } | sha256sum | cut -c1-16
)"
cd "$root"
mapfile -t sources < <(find src examples -type f | sort)
key="$(
  {
    echo "$base_key"
    hash_files Dockerfile .dockerignore package.json package-lock.json tsconfig.json tsconfig.build.json \
      hack/build-images.sh "${sources[@]}"
  } | sha256sum | cut -c1-16
)"
out="$images/$key"
# The final images are cached by a key that includes the base key (computed from the base's inputs, not
# from the image), so a cached build is found without inspecting or assembling the base image.
if [[ -f "$out/operator.tar" && -f "$out/example.tar" ]]; then
  echo "$out"
  exit 0
fi

# --- base ---
if [[ "$("${bah[@]}" inspect --type image --format '{{index .ImageAnnotations "dev.svid.base-key"}}' "$base_ref" 2>/dev/null || true)" != "$base_key" ]]; then
  log "assembling the base image $base_ref (debootstrap bookworm minbase + node $("$node_bin" --version) + npm + host CA bundle; ~1-3 min)"
  start=$SECONDS
  rootfs="$(mktemp -d "$images/rootfs.XXXXXX")"
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$images/debootstrap.log" 2>&1 ||
    fail "debootstrap failed; see $images/debootstrap.log"
  install -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
  mkdir -p "$rootfs/usr/local/lib/node_modules"
  cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  install -D -m 0644 "$ca_bundle" "$rootfs/etc/ssl/certs/host-ca-bundle.crt"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  ctr="$("${bah[@]}" from scratch)"
  tar -C "$rootfs" -cf "$images/rootfs.tar" .
  "${bah[@]}" add "$ctr" "$images/rootfs.tar" / >/dev/null
  rm -f "$images/rootfs.tar"
  "${bah[@]}" config --env PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin \
    --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-ca-bundle.crt --cmd node \
    --annotation "dev.svid.base-key=$base_key" "$ctr"
  "${bah[@]}" commit --rm "$ctr" "$base_ref" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  log "base image ready in $((SECONDS - start))s"
fi
# --- end base ---

mkdir -p "$out.tmp"
build() {
  local name="$1" ref="$2"
  shift 2
  log "building $ref from the Dockerfile ($name; ~1-2 min)"
  local start=$SECONDS
  "${bah[@]}" bud --pull=never --isolation chroot --layers=false -t "$ref" "$@" "$root" >"$out.tmp/$name.log" 2>&1 ||
    fail "buildah bud failed for $name; last lines of $out.tmp/$name.log: $(tail -n 20 "$out.tmp/$name.log")"
  "${bah[@]}" push "$ref" "docker-archive:$out.tmp/$name.tar:$ref" >/dev/null 2>>"$out.tmp/$name.log"
  "${bah[@]}" rmi "$ref" >/dev/null 2>&1 || true
  log "$ref built in $((SECONDS - start))s"
}
build operator svid-operator:e2e
build example svid-example:e2e --target example
# Intermediate stages left by the builds; the base image stays for the next build.
"${bah[@]}" rm --all >/dev/null 2>&1 || true
"${bah[@]}" rmi --prune >/dev/null 2>&1 || true
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
