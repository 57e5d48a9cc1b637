"""Why a wait for Config or ClusterOperator conditions will not reach its target, in the cluster's own
words (issue 16 item 6).

Such a wait used to run to its timeout whatever the cluster said: with node-ca scheduled on no node, a
run took 566 s although the cause was visible after 63 s, each ClusterOperator wait timing out on its
own. `ConditionJudge` fails the wait once a cause the cluster states has persisted for its grace,
counted by the wait itself (never from an older `lastTransitionTime`: a cause that an earlier step has
just removed gets the grace to clear):

- **degraded** (`--grace degraded=`): a Degraded condition (`Degraded`, or a controller's
  `...Degraded` such as `ImageRegistryCertificatesControllerDegraded`) is True where the target names
  that condition and wants something else: False, or True with another reason. A wait FOR
  Degraded=True/StorageNotConfigured does not fail because Degraded is True with that reason. Reasons
  that only restate a slow rollout (`Unavailable`, `ProgressDeadlineExceeded`) are no cause: the rollout
  can still complete (OCPBUGS-66225); the rollout wait judges their causes.
- **scheduling** (`--grace scheduling=`): the ClusterOperator's Available or Progressing is held from
  the target by node-ca (a `NodeCADaemon...` component of its reason) and the DaemonSet
  openshift-image-registry/node-ca runs on no node: `desiredNumberScheduled` 0 while the cluster has
  nodes, or its pods found unschedulable.

A target the judge cannot relate a cause to (e.g. Progressing=False while some Degraded is True) is
waited for as before, to its timeout, whose message names the causes seen.
"""
from __future__ import annotations

from typing import Callable

from utilities import kube
from utilities.conditions import condition_matches, conditions, pod_unschedulable, reason_components
from utilities.kube import REGISTRY_NAMESPACE, Cluster

SYMPTOMS = frozenset({"Unavailable", "ProgressDeadlineExceeded"})   # Degraded reasons that name no cause
NODE_CA = "node-ca"
NODE_CA_REASON_PREFIX = "NodeCADaemon"      # NodeCADaemonAvailable/Progressing in a ClusterOperator reason


class TargetUnreachable(AssertionError):
    """The cluster says why a wait's target will not be reached."""


def _degraded_type(type_: str) -> bool:
    return type_ == "Degraded" or type_.endswith("Degraded")


def _one_line(text: str | None) -> str:
    return "; ".join(line.strip() for line in (text or "").splitlines() if line.strip())


def daemonset_on_no_node(ds: dict | None, nodes: int, pods: list[dict]) -> str | None:
    """What keeps a DaemonSet that has observed its spec off every node, or None: no node fits it
    (`desiredNumberScheduled` 0 while `nodes` > 0), or the scheduler found its pods unschedulable."""
    if ds is None:
        return None
    meta, st = ds.get("metadata") or {}, ds.get("status") or {}
    if (st.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return None
    where = f"DaemonSet {meta.get('namespace')}/{meta.get('name')}"
    desired = st.get("desiredNumberScheduled") or 0
    if desired == 0 and nodes > 0:
        tmpl = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
        return (f"{where}: status.desiredNumberScheduled 0 while the cluster has {nodes} node(s): its pods fit "
                f"no node (nodeSelector {tmpl.get('nodeSelector') or {}}, tolerations "
                f"{tmpl.get('tolerations') or []}), expected a pod on every node")
    stuck = [p for p in pods if pod_unschedulable(p) and not (p.get("metadata") or {}).get("deletionTimestamp")]
    if not stuck:
        return None
    said = next((c.get("message") for c in (stuck[0].get("status") or {}).get("conditions") or []
                 if c.get("type") == "PodScheduled"), "")
    return (f"{where}: {len(stuck)} of {desired} pod(s) unschedulable (pod {stuck[0]['metadata'].get('name')} "
            f"PodScheduled=False/Unschedulable: {said}), status.numberAvailable {st.get('numberAvailable') or 0}")


def node_ca_reader(cluster: Cluster) -> Callable[[], str | None]:
    """Reads the node-ca DaemonSet, the node count and its pods: `daemonset_on_no_node` of what it read."""
    def read() -> str | None:
        ds = kube.get_or_none(cluster.apps.read_namespaced_daemon_set, NODE_CA, REGISTRY_NAMESPACE)
        if ds is None:
            return None
        plain = cluster.api_client.sanitize_for_serialization
        nodes = len(kube.call(cluster.core.list_node).items)
        pods = plain(kube.call(cluster.core.list_namespaced_pod, REGISTRY_NAMESPACE,
                               label_selector=f"name={NODE_CA}")).get("items", [])
        return daemonset_on_no_node(plain(ds), nodes, pods)
    return read


class ConditionJudge:
    """Stateful (to see what persists): the cause that keeps `expected` ({type: (status, reason or None)},
    a reason matching one component of a ClusterOperator's union) from being reached on `where`'s
    object, once it has persisted for its grace."""

    def __init__(self, where: str, expected: dict[str, tuple[str, str | None]], *, degraded_grace: float,
                 scheduling_grace: float, node_ca: Callable[[], str | None] | None = None):
        self.where = where
        self.expected = expected
        self.degraded_grace = degraded_grace
        self.scheduling_grace = scheduling_grace
        self.node_ca = node_ca          # read only while node-ca holds a condition from the target
        self._first_seen: dict[tuple, float] = {}
        self.pending: dict[tuple, str] = {}   # causes seen, not (yet) persisting for their grace

    def failure(self, obj: dict | None, now: float) -> str | None:
        """None: keep waiting; else the cause, how long it persisted and its grace."""
        conds = conditions(obj)
        seen: dict[tuple, tuple[str, float]] = {}
        for type_, (status, reason) in self.expected.items():
            cond = conds.get(type_) or {}
            if not condition_matches(cond, status, reason):
                seen.update(self._causes(type_, cond))
        for key in list(self._first_seen):
            if key not in seen:
                del self._first_seen[key]
        self.pending = {}
        for key, (text, grace) in seen.items():
            first = self._first_seen.setdefault(key, now)
            if now - first >= grace:
                return f"{text} (for {now - first:.0f} s, grace {grace:.0f} s)"
            self.pending[key] = f"{text} (for {now - first:.0f} s of its {grace:.0f} s grace)"
        return None

    def _causes(self, type_: str, cond: dict) -> dict[tuple, tuple[str, float]]:
        out = {}
        reason = cond.get("reason") or ""
        said = f"{self.where} {type_}={cond.get('status')}/{reason}: {_one_line(cond.get('message'))}"
        if _degraded_type(type_) and cond.get("status") == "True":
            causes = [r for r in reason_components(reason) if r not in SYMPTOMS]
            if causes or not reason:
                out[("degraded", type_, reason)] = (said, self.degraded_grace)
        if (self.node_ca is not None and type_ in ("Available", "Progressing")
                and any(r.startswith(NODE_CA_REASON_PREFIX) for r in reason_components(reason))):
            text = self.node_ca()
            if text:
                out[("node-ca", type_)] = (f"{text}; {said}", self.scheduling_grace)
        return out

    def describe_pending(self) -> str:
        return ("; seen, not yet failing: " + "; ".join(self.pending.values())) if self.pending else ""
