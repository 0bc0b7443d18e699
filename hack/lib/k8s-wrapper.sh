# shellcheck shell=bash
# Shared by hack/build-control-plane.sh and hack/build-node.sh: a Go module that builds Kubernetes
# commands (kube-apiserver, kubelet, ...) from the Go module proxy with plain `go build`.
#
# k8s.io/kubernetes pins its staging modules at v0.0.0 with local replaces that do not apply to a
# dependent module, so the wrapper replaces each one with its published release. Needs K8S_VERSION and
# K8S_STAGING_VERSION (hack/versions.env).

k8s_staging_modules=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
  cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt
  kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
  mount-utils pod-security-admission sample-apiserver streaming)

# write_k8s_wrapper DIR MODULE EXTRA_REQUIRE PACKAGE...
# Writes DIR/go.mod (requiring k8s.io/kubernetes and, if not empty, EXTRA_REQUIRE "module version")
# and DIR/tools.go importing each PACKAGE so `go mod tidy` records them; tools.go is never compiled.
write_k8s_wrapper() {
  local dir="$1" module="$2" extra="$3"
  shift 3
  local go_directive m p
  go_directive="$(go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+).*/\1/').0"
  {
    echo "module $module"
    echo
    echo "go $go_directive"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $K8S_VERSION"
    [[ -z "$extra" ]] || echo "	$extra"
    echo ")"
    echo
    echo "replace ("
    for m in "${k8s_staging_modules[@]}"; do echo "	k8s.io/$m => k8s.io/$m $K8S_STAGING_VERSION"; done
    echo ")"
  } >"$dir/go.mod"
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    for p in "$@"; do echo "	_ \"$p\""; done
    echo ")"
  } >"$dir/tools.go"
}

# Version stamps so `kubelet --version` and the node's status report the pinned release.
k8s_ldflags() {
  local ver_pkg=k8s.io/component-base/version minor
  minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
  echo "-s -w -X $ver_pkg.gitVersion=$K8S_VERSION -X $ver_pkg.gitMajor=1 -X $ver_pkg.gitMinor=$minor -X $ver_pkg.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
}
