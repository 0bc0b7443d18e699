#!/usr/bin/env bash
# Builds the local control plane the tests and the demo run against: kube-apiserver,
# kube-controller-manager, kubectl and etcd from the Go module proxy, plus helm, into a cache
# directory keyed by the pinned versions. Prints the bin directory as its last line.
#
# The cache lives outside the work tree by default ($XDG_CACHE_HOME/svid-operator, i.e.
# ~/.cache/svid-operator) so fresh clones on the same machine reuse it; set SVID_CACHE_DIR to
# move it (a .cache/ inside the repo is git-ignored). When the binaries for the pinned versions are
# there, nothing is rebuilt.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/versions.env
source "$here/versions.env"
# shellcheck source=SCRIPTDIR/lib/k8s-wrapper.sh
source "$here/lib/k8s-wrapper.sh"
# shellcheck source=SCRIPTDIR/lib/build-cache.sh
source "$here/lib/build-cache.sh"

cache_root="$(svid_cache_root)"
key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}"
dest="$cache_root/$key"
bin="$dest/bin"
binaries=(kube-apiserver kube-controller-manager kubectl etcd helm)

complete() { all_executable "$bin" "${binaries[@]}"; }

if complete; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "build-control-plane: Go is required (https://go.dev/dl) and was not found on PATH" >&2; exit 1; }

go_from_module_proxy
export CGO_ENABLED=0

lock_cache "$dest"
if complete; then
  echo "$bin"
  exit 0
fi

work="$dest/wrapper"
rm -rf "$work" "$bin.tmp"
mkdir -p "$work" "$bin.tmp"

write_k8s_wrapper "$work" svid-operator.local/controlplane "go.etcd.io/etcd/server/v3 $ETCD_VERSION" \
  go.etcd.io/etcd/server/v3 k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl

echo "build-control-plane: resolving modules for kubernetes $K8S_VERSION (first run only)" >&2
(cd "$work" && go mod tidy)

ldflags="$(k8s_ldflags)"

build() {
  local out="$1" pkg="$2"
  echo "build-control-plane: building $out ($pkg), this takes minutes on 2 cores" >&2
  local start=$SECONDS
  (cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$bin.tmp/$out" "$pkg")
  echo "build-control-plane: $out built in $((SECONDS - start))s" >&2
}

build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kubectl k8s.io/kubernetes/cmd/kubectl

echo "build-control-plane: installing helm $HELM_VERSION" >&2
GOBIN="$bin.tmp" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"

rm -rf "$bin"
mv "$bin.tmp" "$bin"
rm -rf "$work"
echo "$bin"
