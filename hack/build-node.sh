#!/usr/bin/env bash
# Builds the binaries of a real local node (kubelet + containerd + runc) and what the cluster needs
# around it: kube-scheduler, kube-proxy, CoreDNS, containerd-shim-runc-v2, ctr and a static pause
# binary for the sandbox image. Like hack/build-control-plane.sh it builds from the Go module proxy
# into a cache directory keyed by the pinned versions (hack/versions.env), beside the control plane,
# once: while the binaries are there nothing is rebuilt. Prints the bin directory as its last line.
#
# The node also needs Debian packages (iptables, CNI plugins, conntrack, busybox-static, tini, and
# buildah + debootstrap for the images); they are installed here when missing, as root.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/versions.env
source "$here/versions.env"
# shellcheck source=SCRIPTDIR/lib/k8s-wrapper.sh
source "$here/lib/k8s-wrapper.sh"
# shellcheck source=SCRIPTDIR/lib/build-cache.sh
source "$here/lib/build-cache.sh"

cache_root="$(svid_cache_root)"
key="node-k8s-${K8S_VERSION}_containerd-${CONTAINERD_VERSION}_runc-${RUNC_VERSION}_coredns-${COREDNS_VERSION}"
dest="$cache_root/$key"
bin="$dest/bin"
binaries=(kubelet kube-scheduler kube-proxy runc containerd containerd-shim-runc-v2 ctr coredns pause)
packages=(iptables containernetworking-plugins conntrack busybox-static libseccomp-dev tini buildah debootstrap)

log() { echo "build-node: $*" >&2; }
fail() {
  log "$*"
  exit 1
}

complete() { all_executable "$bin" "${binaries[@]}"; }

install_packages() {
  local missing=() p
  for p in "${packages[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    fail "missing Debian packages: ${missing[*]}; install them (apt-get install ${missing[*]}) or run this as root"
  fi
  log "installing ${missing[*]} from Debian's archive"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# --check: exit 0 when the binaries are cached or can be built here; otherwise print why on stdout (one
# line) and exit 3, so the real-node tests can report a skip with the reason instead of a build failure.
if [[ "${1:-}" == --check ]]; then
  complete && exit 0
  for tool in go gcc; do
    command -v "$tool" >/dev/null ||
      { echo "the node binaries are not built ($bin) and $tool, needed to build them, is not on PATH"; exit 3; }
  done
  exit 0
fi

lock_cache "$dest"
install_packages
if complete; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || fail "Go is required (https://go.dev/dl) and was not found on PATH"
command -v gcc >/dev/null || fail "gcc is required for runc (cgo, seccomp) and the static pause binary"

go_from_module_proxy

# bin.tmp survives a failed run so the next run builds only what is missing; bin appears complete or
# not at all.
mkdir -p "$bin.tmp"
timed() {
  local out="$1"
  shift
  [[ -x "$bin.tmp/$out" ]] && return 0
  log "building $out, this takes minutes on 2 cores"
  local start=$SECONDS
  "$@"
  [[ -x "$bin.tmp/$out" ]] || fail "$out was not produced"
  log "$out built in $((SECONDS - start))s"
}

work="$dest/wrapper"
k8s_cmds=(kubelet kube-scheduler kube-proxy)
if [[ ! -x "$bin.tmp/kubelet" || ! -x "$bin.tmp/kube-scheduler" || ! -x "$bin.tmp/kube-proxy" ]]; then
  rm -rf "$work"
  mkdir -p "$work"
  write_k8s_wrapper "$work" svid-operator.local/node "" "${k8s_cmds[@]/#/k8s.io/kubernetes/cmd/}"
  log "resolving modules for kubernetes $K8S_VERSION (first run only)"
  (cd "$work" && go mod tidy)
fi
ldflags="$(k8s_ldflags)"
k8s_build() { (cd "$work" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin.tmp/$1" "k8s.io/kubernetes/cmd/$1"); }
for cmd in "${k8s_cmds[@]}"; do timed "$cmd" k8s_build "$cmd"; done

# runc is the only cgo binary: seccomp filters need libseccomp.
timed runc env CGO_ENABLED=1 GOBIN="$bin.tmp" go install -trimpath -tags seccomp \
  -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" "github.com/opencontainers/runc@$RUNC_VERSION"

containerd_tags="no_btrfs no_devmapper no_zfs"
containerd_ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
for cmd in containerd containerd-shim-runc-v2 ctr; do
  timed "$cmd" env CGO_ENABLED=0 GOBIN="$bin.tmp" go install -trimpath -tags "$containerd_tags" \
    -ldflags "$containerd_ldflags" "github.com/containerd/containerd/v2/cmd/$cmd@$CONTAINERD_VERSION"
done

timed coredns env CGO_ENABLED=0 GOBIN="$bin.tmp" go install -trimpath -ldflags "-s -w" \
  "github.com/coredns/coredns@$COREDNS_VERSION"

# The sandbox ("pause") container's process, from Kubernetes' own source in the module cache.
pause_src="$(cd / && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
  sed -n 's/.*"Dir": "\(.*\)",/\1/p')/build/pause/linux/pause.c"
timed pause gcc -Os -Wall -Werror -static -DVERSION="$K8S_VERSION" -o "$bin.tmp/pause" "$pause_src"

rm -rf "$bin" "$work"
mv "$bin.tmp" "$bin"
echo "$bin"
