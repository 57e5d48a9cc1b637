#!/usr/bin/env bash
# Entry point of the suite's image: the suite against one cluster, reports in $REPORTS_DIR.
# Which cluster, first that applies:
#   1. $KUBECONFIG (a bastion: podman run -v ~/.kube:/kube:ro,Z -e KUBECONFIG=/kube/config -v ./out:/reports:Z IMAGE;
#      a CI step with its kubeconfig);
#   2. a kubeconfig mounted at $MOUNTED_KUBECONFIG (default /kube/config), without KUBECONFIG set;
#   3. the pod's ServiceAccount token (the Job / CronJob of deploy/).
# None of them: exit 9 (the suite's status for an unusable kubeconfig) saying what to give.
# Arguments are passed to pytest (e.g. --allow-destructive), then the words of $PYTEST_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."          # the suite's root (the image's WORKDIR; a checkout in CI)
SA="${SERVICEACCOUNT_DIR:-/var/run/secrets/kubernetes.io/serviceaccount}"
MOUNTED_KUBECONFIG="${MOUNTED_KUBECONFIG:-/kube/config}"
REPORTS_DIR="${REPORTS_DIR:-/reports}"
EXIT_KUBECONFIG=9
fail() { echo "run-in-cluster: $1" >&2; exit "$2"; }
rootless_hint="with rootless podman it belongs to another user inside the container than the image's (uid 1001): add --userns=keep-id:uid=1001"

if [ -n "${KUBECONFIG:-}" ]; then
  case "$KUBECONFIG" in
    *:*) fail "KUBECONFIG=$KUBECONFIG lists several files; give one (oc config view --flatten > merged; KUBECONFIG=merged)" $EXIT_KUBECONFIG ;;
  esac
  [ -e "$KUBECONFIG" ] || fail "KUBECONFIG=$KUBECONFIG does not exist in the container; mount it (podman run -v ~/.kube:/kube:ro,Z -e KUBECONFIG=/kube/config ...)" $EXIT_KUBECONFIG
  [ -r "$KUBECONFIG" ] || fail "KUBECONFIG=$KUBECONFIG is not readable by uid $(id -u); $rootless_hint" $EXIT_KUBECONFIG
  kubeconfig="$KUBECONFIG"; source="KUBECONFIG"
elif [ -e "$MOUNTED_KUBECONFIG" ]; then
  [ -r "$MOUNTED_KUBECONFIG" ] || fail "$MOUNTED_KUBECONFIG is not readable by uid $(id -u); $rootless_hint" $EXIT_KUBECONFIG
  kubeconfig="$MOUNTED_KUBECONFIG"; source="the mounted $MOUNTED_KUBECONFIG"
elif [ -r "$SA/token" ]; then
  kubeconfig="${KUBECONFIG_FILE:-/tmp/kubeconfig}"; source="the pod's ServiceAccount"
  umask 077
  cat > "$kubeconfig" <<KUBECONFIG
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
else
  fail "no cluster to run against: set KUBECONFIG to a mounted kubeconfig (podman run -v ~/.kube:/kube:ro,Z -e KUBECONFIG=/kube/config -v ./out:/reports:Z IMAGE), mount one at $MOUNTED_KUBECONFIG, or run this image as a pod with a ServiceAccount (deploy/job.yaml); no ServiceAccount token at $SA/token" $EXIT_KUBECONFIG
fi

mkdir -p "$REPORTS_DIR" 2>/dev/null || true
[ -w "$REPORTS_DIR" ] || fail "the reports directory $REPORTS_DIR is not writable by uid $(id -u); mount a writable one (-v ./out:/reports:Z; $rootless_hint)" $EXIT_KUBECONFIG
echo "run-in-cluster: kubeconfig from $source; reports in $REPORTS_DIR" >&2
if [ "$source" = "the pod's ServiceAccount" ]; then prefix=nightly; else prefix=run; fi
RUN_ID="${RUN_ID:-$prefix-$(date -u +%Y%m%d-%H%M%S)}"
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words on purpose
exec "${PYTHON:-python}" -m pytest tests -p no:cacheprovider --kubeconfig="$kubeconfig" \
  --reports-dir="$REPORTS_DIR" --run-id="$RUN_ID" "$@" ${PYTEST_ARGS:-}
