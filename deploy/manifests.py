"""The nightly run inside the cluster: ServiceAccount, RBAC, reports PVC, Job and CronJob (deploy/*.yaml).

    python -m deploy.manifests [--image IMAGE] [--namespace NS] [--schedule CRON] [--out deploy/]

The run uses `--run-namespace=NS`: the deploy namespace NS (created by namespace.yaml, with NS-outsider
beside it) holds the run's own objects, so the run creates and deletes no namespace. Its RBAC is
utilities/rights.py's list for such a run (`rights.needed(destructive=True, run_namespace=NS)`, the
list the preflight checks): a Role in each namespace the run touches and a ClusterRole for what names no
namespace (cluster-scoped objects, and the cluster-wide reads of namespaces and image streams).
rbac.yaml holds every Role whose namespace every OpenShift cluster has; rbac-odf.yaml the Role in
openshift-storage (ODF's namespace: apply it only where ODF is installed, a Role cannot be created in a
missing namespace). Rights with a name become resourceNames. Nothing is granted that the list does not
name. The committed deploy/*.yaml are this module's output (a selftest keeps them in step).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from utilities import rights

NAME = "registry-conformance"
NAMESPACE = "registry-conformance"
IMAGE = "quay.io/example/registry-conformance:latest"
SCHEDULE = "0 2 * * *"
REPORTS_CLAIM = "registry-conformance-reports"
HERE = Path(__file__).resolve().parent

# Namespaces that may be absent (ODF's): their Roles go to a file of their own, applied where they exist.
OPTIONAL_NAMESPACES = {rights.ODF_NS: "rbac-odf.yaml"}

# The suite's timeouts the Job passes (conftest.py defaults), and from them how long a restore may take
# after SIGTERM (fixtures/safety.py turns it into a KeyboardInterrupt: pytest tears down, the registry is
# put back): the running test's storage teardown (one rollout), the Config put back and the registry
# settled (one rollout), what the run created deleted (claims and buckets, bounded like a rollout), then
# the control plane settling after the hostname change (--control-plane-timeout); plus a margin for the
# reports to be written.
ROLLOUT_TIMEOUT = 300
CONTROL_PLANE_TIMEOUT = 1800
RESTORE_SECONDS = 3 * ROLLOUT_TIMEOUT + CONTROL_PLANE_TIMEOUT
TERMINATION_GRACE_SECONDS = RESTORE_SECONDS + 300
# How long the run may work before the Job stops it (then the grace period above for its restore). A full
# destructive run takes about two hours on vSphere (six backends, each a rollout and its checks).
RUN_SECONDS = 3 * 3600
# The Job's deadline: the run's time; the restore runs in the grace period after it, so a nightly run
# (its deadline and its restore) is over long before the next one starts.
ACTIVE_DEADLINE_SECONDS = RUN_SECONDS
assert ACTIVE_DEADLINE_SECONDS + TERMINATION_GRACE_SECONDS < 24 * 3600


def run_rights(run_namespace: str = NAMESPACE) -> list:
    """The rights the deployed run needs: utilities/rights.py, the one list the preflight checks."""
    return rights.needed(destructive=True, run_namespace=run_namespace)


def rbac_manifests(wanted, namespace: str = NAMESPACE, name: str = NAME) -> dict[str, list[dict]]:
    """{file: objects}: rbac.yaml (ServiceAccount, ClusterRole, the Roles every cluster can hold, their
    bindings) and one file per optional namespace the rights name."""
    subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    labels = {"app.kubernetes.io/name": name}
    docs = [{"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": name, "namespace": namespace, "labels": labels}},
            *rights.cluster_role(name=name, subject=subject, granted=[r for r in wanted if not r.namespace]),
            *rights.namespaced_roles(wanted, name, subject)]
    for d in docs:
        d["metadata"]["labels"] = dict(labels)
    files: dict[str, list[dict]] = {"rbac.yaml": []}
    for d in docs:
        files.setdefault(OPTIONAL_NAMESPACES.get(d["metadata"].get("namespace"), "rbac.yaml"), []).append(d)
    return files


def _pod_spec(image: str, name: str, namespace: str) -> dict:
    return {
        "serviceAccountName": name,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "suite",
            "image": image,
            "args": ["--allow-destructive", f"--run-namespace={namespace}", f"--rollout-timeout={ROLLOUT_TIMEOUT}",
                     f"--control-plane-timeout={CONTROL_PLANE_TIMEOUT}"],
            "env": [{"name": "REPORTS_DIR", "value": "/reports"},
                    {"name": "PYTEST_ARGS", "value": ""}],
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "reports", "mountPath": "/reports"}],
        }],
        "volumes": [{"name": "reports", "persistentVolumeClaim": {"claimName": REPORTS_CLAIM}}],
    }


def workload_manifests(image: str = IMAGE, namespace: str = NAMESPACE, name: str = NAME,
                       schedule: str = SCHEDULE) -> dict[str, list[dict]]:
    labels = {"app.kubernetes.io/name": name}
    job_spec = {"backoffLimit": 0, "activeDeadlineSeconds": ACTIVE_DEADLINE_SECONDS,
                "ttlSecondsAfterFinished": 7 * 86400,
                "template": {"metadata": {"labels": labels}, "spec": _pod_spec(image, name, namespace)}}
    return {
        "namespace.yaml": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}
                           for ns in (namespace, rights.outsider_namespace(namespace))],
        "pvc.yaml": [{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                      "metadata": {"name": REPORTS_CLAIM, "namespace": namespace, "labels": labels},
                      "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}}],
        "job.yaml": [{"apiVersion": "batch/v1", "kind": "Job",
                      "metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": job_spec}],
        "cronjob.yaml": [{"apiVersion": "batch/v1", "kind": "CronJob",
                          "metadata": {"name": f"{name}-nightly", "namespace": namespace, "labels": labels},
                          "spec": {"schedule": schedule, "concurrencyPolicy": "Forbid",
                                   "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 5,
                                   "jobTemplate": {"metadata": {"labels": labels}, "spec": job_spec}}}],
    }


HEADER = "# Generated by `python -m deploy.manifests`; edit deploy/manifests.py, not this file.\n"


def render(image: str = IMAGE, namespace: str = NAMESPACE, schedule: str = SCHEDULE, rights=None) -> dict[str, str]:
    files = rbac_manifests(run_rights(namespace) if rights is None else rights, namespace)
    files.update(workload_manifests(image, namespace, schedule=schedule))
    return {name: HEADER + yaml.safe_dump_all(docs, sort_keys=False) for name, docs in files.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deploy.manifests", description=__doc__.splitlines()[0])
    ap.add_argument("--image", default=IMAGE)
    ap.add_argument("--namespace", default=NAMESPACE)
    ap.add_argument("--schedule", default=SCHEDULE)
    ap.add_argument("--out", default=str(HERE))
    a = ap.parse_args(argv)
    for name, text in render(a.image, a.namespace, a.schedule).items():
        (Path(a.out) / name).write_text(text)
        print(Path(a.out) / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
