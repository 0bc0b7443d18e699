#!/usr/bin/env bash
# The end-to-end scenario on a kind cluster, for machines with Docker: the same scenario as
# `npm run e2e` on the local real node (hack/e2e/scenario.ts, manifests in hack/e2e/manifests.ts), only
# the provider differs. It creates a cluster with a lowered kubelet syncFrequency (fast Secret
# propagation), builds both Dockerfile targets with docker, loads them, runs the scenario and deletes
# the cluster. CI machines have no Docker engine, so CI only parses and lints this file (bash -n,
# ShellCheck).
#
#   hack/e2e-kind.sh                  run it
#   KEEP_CLUSTER=1 hack/e2e-kind.sh   leave the cluster for inspection
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cluster="${KIND_CLUSTER_NAME:-svid-e2e}"

fail() {
  echo "e2e-kind: $*" >&2
  exit 1
}

command -v docker >/dev/null || fail "docker is not installed; this script needs a Docker engine (see README, 'End-to-end')"
docker info >/dev/null 2>&1 || fail "the Docker engine is not reachable (is the daemon running, and may this user use it?)"
command -v kind >/dev/null || fail "kind is not installed; install it from https://kind.sigs.k8s.io (go install sigs.k8s.io/kind@latest)"

cleanup() {
  if [[ -z "${KEEP_CLUSTER:-}" ]]; then
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  else
    echo "e2e-kind: cluster kept: kind delete cluster --name $cluster"
  fi
}
trap cleanup EXIT

echo "e2e-kind: creating cluster $cluster"
kind create cluster --name "$cluster" --wait 120s --config - <<'YAML'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    kubeadmConfigPatches:
      - |
        kind: KubeletConfiguration
        syncFrequency: 1s
YAML

echo "e2e-kind: building images"
docker build -t svid-operator:e2e "$root"
docker build -t svid-example:e2e --target example "$root"
kind load docker-image --name "$cluster" svid-operator:e2e svid-example:e2e

echo "e2e-kind: running the scenario"
node "$root/hack/e2e/kind.ts" --context "kind-$cluster"
