"""Small helpers for the notebooks (notebooks/*.ipynb): connect to a cluster, show objects as tables.

`connect()` starts the local stand-in cluster (localcluster/) in a working directory, or, given a
kubeconfig, runs the suite's preflight checks on that cluster (and refuses to go on without
`allow_destructive=True`: the procedure changes the cluster-wide registry Config).
"""
from __future__ import annotations

import atexit
import dataclasses
import html
import tempfile
from pathlib import Path

from utilities import kube, preflight, waits
from utilities.kube import REGISTRY_NAMESPACE, REGISTRY_POD_SELECTOR, Cluster, load_cluster
from utilities.localcluster_process import LocalClusterProcess


@dataclasses.dataclass
class Connection:
    cluster: Cluster
    local: LocalClusterProcess | None = None

    def close(self) -> None:
        try:
            self.cluster.api_client.close()
        finally:
            if self.local is not None:
                self.local.stop()


def connect(kubeconfig: str | None = None, context: str | None = None, *, allow_destructive: bool = False,
            workdir: str | Path | None = None, localcluster_args: tuple = ()) -> Connection:
    if kubeconfig:
        if not allow_destructive:
            raise SystemExit("the procedure changes the cluster's registry Config: set ALLOW_DESTRUCTIVE=yes "
                             "to run it on the cluster of " + str(kubeconfig))
        try:
            return Connection(preflight.run(kubeconfig, context, destructive=True))
        except preflight.PreflightError as e:
            raise SystemExit(e.message) from None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="notebook-localcluster-"))
    local = LocalClusterProcess(workdir, list(localcluster_args)).start()
    atexit.register(local.stop)       # a kernel that stops half-way does not leave the cluster running
    try:
        cluster = load_cluster(local.kubeconfig, embedded=True, ingress_address=local.info.get("ingress_address"),
                               info=local.info)
    except BaseException:
        local.stop()
        raise
    return Connection(cluster, local)


class Table:
    """Rows of dicts shown as an HTML table in a notebook (and as text elsewhere)."""

    def __init__(self, rows: list[dict], columns: list[str] | None = None):
        self.rows = rows
        self.columns = columns or list(dict.fromkeys(k for r in rows for k in r))

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in self.columns)
                       + "</tr>" for r in self.rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    def __repr__(self) -> str:
        return "\n".join([" | ".join(self.columns)] + [" | ".join(str(r.get(c, "")) for c in self.columns)
                                                       for r in self.rows])


def conditions_table(obj: dict | None) -> Table:
    return Table([{"type": t, "status": c.get("status"), "reason": c.get("reason"), "message": c.get("message"),
                   "since": c.get("lastTransitionTime")} for t, c in waits.conditions(obj).items()],
                 ["type", "status", "reason", "message", "since"])


def pods_table(cluster: Cluster, namespace: str = REGISTRY_NAMESPACE, selector: str = REGISTRY_POD_SELECTOR) -> Table:
    plain = cluster.api_client.sanitize_for_serialization
    rows = []
    for p in plain(kube.call(cluster.core.list_namespaced_pod, namespace, label_selector=selector)).get("items", []):
        st = p.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
        rows.append({"pod": p["metadata"]["name"], "phase": st.get("phase"), "ready": ready,
                     "node": (p.get("spec") or {}).get("nodeName"), "created": p["metadata"].get("creationTimestamp")})
    return Table(rows, ["pod", "phase", "ready", "node", "created"])
