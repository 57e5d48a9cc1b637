"""The nightly run inside the cluster: ServiceAccount, RBAC, reports PVC, Job and CronJob (deploy/*.yaml).

    python -m deploy.manifests [--image IMAGE] [--namespace NS] [--schedule CRON] [--out deploy/]

`rbac_rules(rights)` turns the rights the run needs (`utilities.preflight` READ_RIGHTS + WRITE_RIGHTS
today: the same single list the preflight checks) into exactly those RBAC rules: a ClusterRole for the
cluster-wide rights, a Role in each namespace a namespaced right names. Nothing is granted that the list
does not name. The committed deploy/*.yaml are this module's output (a selftest keeps them in step).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

NAME = "registry-conformance"
NAMESPACE = "registry-conformance"
IMAGE = "quay.io/example/registry-conformance:latest"
SCHEDULE = "0 2 * * *"
REPORTS_CLAIM = "registry-conformance-reports"
HERE = Path(__file__).resolve().parent


def run_rights() -> list:
    """The rights the run needs. At merge: utilities/rights.py (the one list preflight uses)."""
    from utilities import preflight
    return list(preflight.READ_RIGHTS) + list(preflight.WRITE_RIGHTS)


def _resource(right) -> str:
    return f"{right.resource}/{right.subresource}" if right.subresource else right.resource


def rbac_rules(rights) -> tuple[list[dict], dict[str, list[dict]]]:
    """(ClusterRole rules, {namespace: Role rules}): one rule per API group and resource, verbs sorted."""
    cluster: dict[tuple[str, str], set] = {}
    namespaced: dict[str, dict[tuple[str, str], set]] = {}
    for r in rights:
        table = cluster if r.namespace is None else namespaced.setdefault(r.namespace, {})
        table.setdefault((r.group, _resource(r)), set()).add(r.verb)

    def rules(table):
        return [{"apiGroups": [g], "resources": [res], "verbs": sorted(verbs)}
                for (g, res), verbs in sorted(table.items())]
    return rules(cluster), {ns: rules(t) for ns, t in sorted(namespaced.items())}


def rbac_manifests(rights, namespace: str = NAMESPACE, name: str = NAME) -> list[dict]:
    cluster_rules, ns_rules = rbac_rules(rights)
    subject = [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
    labels = {"app.kubernetes.io/name": name}
    out = [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace,
                                                                      "labels": labels}},
           {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels}, "rules": cluster_rules},
           {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": subject}]
    for ns, rules in ns_rules.items():
        out += [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                 "metadata": {"name": name, "namespace": ns, "labels": labels}, "rules": rules},
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": {"name": name, "namespace": ns, "labels": labels},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                 "subjects": subject}]
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
