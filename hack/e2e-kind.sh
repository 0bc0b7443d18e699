#!/usr/bin/env bash
# End-to-end on a kind cluster, for machines with Docker. CI machines have none, so CI only parses and
# lints this file (bash -n, ShellCheck). It creates a cluster, builds and loads the images, helm-installs the
# operator, gives two demo services (examples/server.ts and examples/client.ts) WorkloadIdentities,
# mounts their Secrets as volumes, checks that the client reaches the server over mTLS, waits through
# at least one rotation with no failed request, and deletes the cluster.
#
#   hack/e2e-kind.sh              run it
#   KEEP_CLUSTER=1 hack/e2e-kind.sh   leave the cluster for inspection
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cluster="${KIND_CLUSTER_NAME:-svid-e2e}"
ns_op=svid-system
ns_app=svid-e2e
trust_domain=e2e.svid.dev
# Short lifetimes so a rotation happens within the run; the operator's bounds are lowered to match.
duration=2m
renew_before=1m

fail() {
  echo "e2e-kind: $*" >&2
  exit 1
}

command -v docker >/dev/null || fail "docker is not installed; this script needs a Docker engine (see README, 'kind end-to-end')"
docker info >/dev/null 2>&1 || fail "the Docker engine is not reachable (is the daemon running, and may this user use it?)"
command -v kind >/dev/null || fail "kind is not installed; install it from https://kind.sigs.k8s.io (go install sigs.k8s.io/kind@latest)"

bin="$(bash "$root/hack/build-control-plane.sh" | tail -n 1)"
kubectl=("$bin/kubectl" --context "kind-$cluster")
helm=("$bin/helm" --kube-context "kind-$cluster")

cleanup() {
  if [[ -z "${KEEP_CLUSTER:-}" ]]; then
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  else
    echo "e2e-kind: cluster kept: kind delete cluster --name $cluster"
  fi
}
trap cleanup EXIT

echo "e2e-kind: creating cluster $cluster"
kind create cluster --name "$cluster" --wait 120s

echo "e2e-kind: building images"
docker build -t svid-operator:e2e "$root"
docker build -t svid-example:e2e --target example "$root"
kind load docker-image --name "$cluster" svid-operator:e2e svid-example:e2e

echo "e2e-kind: installing the chart"
"${helm[@]}" install svid-operator "$root/charts/svid-operator" \
  --namespace "$ns_op" --create-namespace \
  --set image.repository=svid-operator --set image.tag=e2e --set image.pullPolicy=Never \
  --set trustDomain="$trust_domain" --set minDuration=1m \
  --wait --timeout 3m

echo "e2e-kind: deploying the demo services"
"${kubectl[@]}" create namespace "$ns_app"
for svc in server client; do
  "${kubectl[@]}" -n "$ns_app" create serviceaccount "$svc"
  "${kubectl[@]}" apply -f - <<YAML
apiVersion: identity.svid.dev/v1alpha1
kind: WorkloadIdentity
metadata:
  name: $svc
  namespace: $ns_app
spec:
  serviceAccountName: $svc
  secretName: $svc-svid
  duration: $duration
  renewBefore: $renew_before
  dnsNames: [$svc, $svc.$ns_app.svc]
YAML
done
"${kubectl[@]}" -n "$ns_app" wait --for=condition=Ready workloadidentity/server workloadidentity/client --timeout=60s

server_id="spiffe://$trust_domain/ns/$ns_app/sa/server"
client_id="spiffe://$trust_domain/ns/$ns_app/sa/client"
# Enough requests, one per second, to outlive at least one renewal (renewal at ~duration-renewBefore).
count=150

"${kubectl[@]}" apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: { name: server, namespace: $ns_app }
spec:
  selector: { matchLabels: { app: server } }
  template:
    metadata: { labels: { app: server } }
    spec:
      serviceAccountName: server
      securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: RuntimeDefault } }
      containers:
        - name: server
          image: svid-example:e2e
          imagePullPolicy: Never
          args: [examples/server.js, --svid-dir, /var/run/svid, --port, '8443', --allow, '$client_id']
          ports: [{ containerPort: 8443 }]
          volumeMounts: [{ name: svid, mountPath: /var/run/svid, readOnly: true }]
          securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: [ALL] } }
      volumes: [{ name: svid, secret: { secretName: server-svid } }]
---
apiVersion: v1
kind: Service
metadata: { name: server, namespace: $ns_app }
spec:
  selector: { app: server }
  ports: [{ port: 8443, targetPort: 8443 }]
---
apiVersion: batch/v1
kind: Job
metadata: { name: client, namespace: $ns_app }
spec:
  backoffLimit: 0
  template:
    spec:
      serviceAccountName: client
      restartPolicy: Never
      securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: RuntimeDefault } }
      containers:
        - name: client
          image: svid-example:e2e
          imagePullPolicy: Never
          args: [examples/client.js, --svid-dir, /var/run/svid, --url, 'https://server.$ns_app.svc:8443/',
                 --server-id, '$server_id', --count, '$count', --interval-ms, '1000']
          volumeMounts: [{ name: svid, mountPath: /var/run/svid, readOnly: true }]
          securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: [ALL] } }
      volumes: [{ name: svid, secret: { secretName: client-svid } }]
YAML
"${kubectl[@]}" -n "$ns_app" rollout status deployment/server --timeout=120s

first_serial="$("${kubectl[@]}" -n "$ns_app" get workloadidentity server -o jsonpath='{.status.serialNumber}')"
echo "e2e-kind: server SVID serial $first_serial; the client job runs $count requests over a renewal"
"${kubectl[@]}" -n "$ns_app" wait --for=condition=complete job/client --timeout=$((count + 120))s ||
  { "${kubectl[@]}" -n "$ns_app" logs job/client | tail -n 20; fail "the client job did not complete: some request failed"; }

logs="$("${kubectl[@]}" -n "$ns_app" logs job/client)"
serials="$(grep -o '"serial":"[0-9a-f]*"' <<<"$logs" | sort -u | wc -l)"
grep -q "\"peer\":\"$client_id\"" <<<"$logs" || fail "the server did not see the client's SPIFFE ID $client_id"
((serials >= 2)) || fail "the client saw only $serials server serial(s): no rotation happened during the run"
echo "e2e-kind: ok: $count requests over mTLS, $serials server serials seen (at least one rotation), no failure"
