"""The nightly run inside the cluster: ServiceAccount, RBAC, reports PVC, Job and CronJob (deploy/*.yaml).

    python -m deploy.manifests [--image IMAGE] [--namespace NS] [--schedule CRON] [--out deploy/]

The RBAC is utilities/rights.py's list (the one the preflight checks: `rights.needed(destructive=True)`,
a nightly run may change the cluster), rendered by `rights.rules()` / `rights.cluster_role()`: the rights
in a namespace every OpenShift cluster has before the run (`FIXED_NAMESPACES`) go to a Role there; the
rest (no namespace: the cluster, or every namespace, e.g. the run's generated test namespace; or a
namespace that may be absent, such as openshift-storage without ODF) to the ClusterRole. Rights with a
name become resourceNames. Nothing is granted that the list does not name. The committed deploy/*.yaml
are this module's output (a selftest keeps them in step).
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


# Namespaces every OpenShift cluster has before a run: a right in one of them is granted by a Role there.
FIXED_NAMESPACES = ("openshift-config", "openshift-config-managed", "openshift-image-registry",
                    "openshift-ingress", "openshift-ingress-operator")


def run_rights() -> list:
    """The rights the run needs: utilities/rights.py, the one list the preflight checks."""
    return rights.needed(destructive=True)


def split(wanted) -> tuple[list, dict[str, list]]:
    """(rights for the ClusterRole, {namespace: rights for a Role there})."""
    cluster_wide, by_ns = [], {}
    for r in wanted:
        if r.namespace in FIXED_NAMESPACES:
            by_ns.setdefault(r.namespace, []).append(r)
        else:
            cluster_wide.append(r)
    return cluster_wide, dict(sorted(by_ns.items()))


def rbac_manifests(wanted, namespace: str = NAMESPACE, name: str = NAME) -> list[dict]:
    cluster_wide, by_ns = split(wanted)
    subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    labels = {"app.kubernetes.io/name": name}
    out = [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace,
                                                                      "labels": labels}},
           *rights.cluster_role(name=name, subject=subject, granted=cluster_wide)]
    for ns, granted in by_ns.items():
        out += [{"apiVersion": f"{rights.RBAC}/v1", "kind": "Role",
                 "metadata": {"name": name, "namespace": ns, "labels": labels}, "rules": rights.rules(granted)},
                {"apiVersion": f"{rights.RBAC}/v1", "kind": "RoleBinding",
                 "metadata": {"name": name, "namespace": ns, "labels": labels},
                 "roleRef": {"apiGroup": rights.RBAC, "kind": "Role", "name": name},
                 "subjects": [subject]}]
    return out


def _pod_spec(image: str, name: str) -> dict:
    return {
        "serviceAccountName": name,
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "suite",
            "image": image,
            "args": ["--allow-destructive"],
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
    job_spec = {"backoffLimit": 0, "activeDeadlineSeconds": 3 * 3600, "ttlSecondsAfterFinished": 7 * 86400,
                "template": {"metadata": {"labels": labels}, "spec": _pod_spec(image, name)}}
    return {
        "namespace.yaml": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}}],
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
    files = {"rbac.yaml": rbac_manifests(run_rights() if rights is None else rights, namespace)}
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
