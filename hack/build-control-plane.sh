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

cache_root="${SVID_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/svid-operator}"
key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}"
dest="$cache_root/$key"
bin="$dest/bin"
binaries=(kube-apiserver kube-controller-manager kubectl etcd helm)

complete() {
  local b
  for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}

if complete; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "build-control-plane: Go is required (https://go.dev/dl) and was not found on PATH" >&2; exit 1; }

# Never let the go command fetch a different toolchain: only the module proxy is reachable.
export GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export CGO_ENABLED=0

mkdir -p "$dest"
# One build at a time per cache key, so a parallel test run waits instead of racing.
exec 9>"$dest/.lock"
flock 9
if complete; then
  echo "$bin"
  exit 0
fi

work="$dest/wrapper"
rm -rf "$work" "$bin.tmp"
mkdir -p "$work" "$bin.tmp"

# k8s.io/kubernetes pins its staging modules at v0.0.0 with local replaces that do not apply to a
# dependent module, so the wrapper replaces each one with its published release.
staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
  cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt
  kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
  mount-utils pod-security-admission sample-apiserver streaming)

go_directive="$(go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+).*/\1/').0"
{
  echo "module svid-operator.local/controlplane"
  echo
  echo "go $go_directive"
  echo
  echo "require ("
  echo "	k8s.io/kubernetes $K8S_VERSION"
  echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
  echo ")"
  echo
  echo "replace ("
  for m in "${staging[@]}"; do echo "	k8s.io/$m => k8s.io/$m $K8S_STAGING_VERSION"; done
  echo ")"
} >"$work/go.mod"

# The programs are main packages: this file only records them for `go mod tidy` and is never
# compiled.
cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO

echo "build-control-plane: resolving modules for kubernetes $K8S_VERSION (first run only)" >&2
(cd "$work" && go mod tidy)

ver_pkg=k8s.io/component-base/version
minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
ldflags="-s -w -X $ver_pkg.gitVersion=$K8S_VERSION -X $ver_pkg.gitMajor=1 -X $ver_pkg.gitMinor=$minor -X $ver_pkg.gitTreeState=clean"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"

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
