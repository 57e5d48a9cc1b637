#!/usr/bin/env bash
# Entry point of the suite's image: a kubeconfig from the pod's ServiceAccount, then the suite on this
# cluster, reports in $REPORTS_DIR (the PVC). Arguments are passed to pytest (e.g. --allow-destructive).
set -euo pipefail
SA=/var/run/secrets/kubernetes.io/serviceaccount
KUBECONFIG_FILE="${KUBECONFIG_FILE:-/tmp/kubeconfig}"
if [ ! -r "$SA/token" ]; then
  echo "run-in-cluster: no ServiceAccount token at $SA/token; run this image as a pod with a ServiceAccount" >&2
  exit 9
fi
umask 077
cat > "$KUBECONFIG_FILE" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: in-cluster
  cluster:
    server: https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT}
    certificate-authority: $SA/ca.crt
users:
- name: registry-conformance
  user:
    tokenFile: $SA/token
contexts:
- name: in-cluster
  context: {cluster: in-cluster, user: registry-conformance}
current-context: in-cluster
KUBECONFIG
RUN_ID="${RUN_ID:-nightly-$(date -u +%Y%m%d-%H%M%S)}"
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words on purpose
exec python -m pytest tests -p no:cacheprovider --kubeconfig="$KUBECONFIG_FILE" \
  --reports-dir="${REPORTS_DIR:-/reports}" --run-id="$RUN_ID" "$@" ${PYTEST_ARGS:-}
