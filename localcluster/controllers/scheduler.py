"""Scheduler: binds pending pods to nodes, as kube-scheduler's default profile does in the essentials.

Filters, in the default plugin order (the first that fails names the node's reason):
NodeUnschedulable, TaintToleration, NodeAffinity (nodeSelector + required node affinity),
PodTopologySpread (DoNotSchedule constraints), InterPodAffinity (required anti-affinity, both ways).
Before that, VolumeBinding's PreFilter: a claim that is missing, being deleted or not Bound makes the
pod unschedulable on every node. Among the nodes left, pods of the same owner are spread.

On failure the pod keeps `PodScheduled=False` (reason `Unschedulable`) and gets a `FailedScheduling`
event worded like kube-scheduler's (`0/6 nodes are available: ... preemption: ...`); it is tried again
when pods, nodes or claims change, and every few seconds.

Not done on purpose: a second pod using a ReadWriteOnce volume may land on another node; the kubelet
then holds it with a Multi-Attach error, as on a real cluster.
"""
from __future__ import annotations

import collections

from localcluster.client import ApiError, path
from localcluster.controllers.deployment import (
    Controller, controller_ref, is_terminating, node_selector_matches, selector_matches, timestamp,
    untolerated_taint)

RETRY_SECONDS = 5.0
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"


def fit_error(total: int, reasons: dict[str, tuple[str, bool]]) -> str:
    """kube-scheduler's FitError message. reasons: node -> (reason, resolvable by preemption)."""
    hist = collections.Counter(r for r, _ in reasons.values())
    msg = f"0/{total} nodes are available: " + ", ".join(sorted(f"{n} {r}" for r, n in hist.items())) + "."
    pre = collections.Counter(NO_VICTIMS if helpful else NOT_HELPFUL for _, helpful in reasons.values())
    return msg + f" preemption: 0/{total} nodes are available: " + ", ".join(
        sorted(f"{n} {r}" for r, n in pre.items())) + "."


def prefilter_error(total: int, reason: str) -> str:
    return (f"0/{total} nodes are available: {reason}. preemption: 0/{total} nodes are available: "
            f"{total} {NOT_HELPFUL}.")


def taint_text(taint: dict) -> str:
    return f"{{{taint.get('key')}: {taint.get('value') or ''}}}"


class Scheduler(Controller):
    component = "default-scheduler"

    def __init__(self, client, settings, **extra):
        super().__init__(client, settings, **extra)
        self.pods = self.informer(path("v1", "pods"), self._on_pod)
        self.nodes = self.informer(path("v1", "nodes"), self._on_other)
        self.pvcs = self.informer(path("v1", "persistentvolumeclaims"), self._on_other)
        # Bindings written but not yet seen in the informer cache: (ns, name) -> node.
        self._assumed: dict[tuple, str] = {}

    # -- triggers
    def _wants(self, pod: dict) -> bool:
        spec = pod.get("spec") or {}
        if spec.get("nodeName") or is_terminating(pod):
            return False
        if spec.get("schedulerName") not in (None, "", "default-scheduler"):
            return False
        ref = controller_ref(pod)
        if ref and ref.get("kind") == "DaemonSet":
            return False
        return pod.get("status", {}).get("phase") in (None, "", "Pending")

    def _on_pod(self, type_, obj):
        key = (obj["metadata"].get("namespace"), obj["metadata"].get("name"))
        if obj.get("spec", {}).get("nodeName") or type_ == "DELETED":
            self._assumed.pop(key, None)
        if type_ != "DELETED" and self._wants(obj):
            self.queue.add(key)
        if type_ == "DELETED" or obj.get("spec", {}).get("nodeName"):
            # A pod left or landed: anti-affinity/spread answers may change for the waiting ones.
            self._retry_pending(only_failed=True)

    def _on_other(self, _type, _obj):
        self._retry_pending(only_failed=True)

    def _retry_pending(self, only_failed: bool) -> None:
        for pod in self.pods.items():
            if self._wants(pod):
                key = (pod["metadata"].get("namespace"), pod["metadata"].get("name"))
                if key in self._assumed:
                    continue
                self.queue.add(key)

    def enqueue_all(self):
        self._retry_pending(only_failed=False)

    # -- placement
    def _node_of(self, pod: dict) -> str | None:
        key = (pod["metadata"].get("namespace"), pod["metadata"].get("name"))
        return pod.get("spec", {}).get("nodeName") or self._assumed.get(key)

    def _assigned_pods(self) -> list[tuple[dict, str]]:
        out = []
        for p in self.pods.items():
            node = self._node_of(p)
            if node and p.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
                out.append((p, node))
        return out

    def _volume_problem(self, pod: dict) -> str | None:
        ns = pod["metadata"].get("namespace")
        for vol in pod.get("spec", {}).get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim:
                continue
            pvc = self.pvcs.get(ns, claim)
            if pvc is None:
                return f'persistentvolumeclaim "{claim}" not found'
            if is_terminating(pvc):
                return f'persistentvolumeclaim "{claim}" is being deleted'
            if pvc.get("status", {}).get("phase") != "Bound" or not pvc.get("spec", {}).get("volumeName"):
                return "pod has unbound immediate PersistentVolumeClaims"
        return None

    def _spread_filter(self, pod, nodes, assigned):
        """PodTopologySpread with whenUnsatisfiable=DoNotSchedule: node -> reason or None."""
        spec = pod.get("spec") or {}
        ns = pod["metadata"].get("namespace")
        labels = pod["metadata"].get("labels") or {}
        constraints = [c for c in spec.get("topologySpreadConstraints") or []
                       if c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"]
        result: dict[str, tuple[str, bool] | None] = {}
        if not constraints:
            return result
        keys = [c.get("topologyKey") for c in constraints]

        def counted(node):
            nl = node["metadata"].get("labels") or {}
            return all(k in nl for k in keys)

        for c in constraints:
            key = c.get("topologyKey")
            selector = dict(c.get("labelSelector") or {})
            extra = {k: labels[k] for k in c.get("matchLabelKeys") or [] if k in labels}
            if extra:
                selector["matchLabels"] = dict(selector.get("matchLabels") or {}, **extra)
            eligible = []
            for node in nodes:
                if c.get("nodeAffinityPolicy", "Honor") == "Honor" and not node_selector_matches(spec, node):
                    continue
                if c.get("nodeTaintsPolicy", "Ignore") == "Honor" and untolerated_taint(
                        spec.get("tolerations"), node):
                    continue
                if counted(node):
                    eligible.append(node)
            domains = {n["metadata"]["labels"][key] for n in eligible}
            node_domain = {n["metadata"]["name"]: n["metadata"]["labels"][key] for n in eligible}
            counts = collections.Counter({d: 0 for d in domains})
            for p, node_name in assigned:
                if p["metadata"].get("namespace") != ns or is_terminating(p):
                    continue
                if node_name in node_domain and selector_matches(selector, p["metadata"].get("labels")):
                    counts[node_domain[node_name]] += 1
            min_count = min(counts.values()) if counts else 0
            if len(domains) < int(c.get("minDomains", 1) or 1):
                min_count = 0
            self_match = 1 if selector_matches(selector, labels) else 0
            for node in nodes:
                name = node["metadata"]["name"]
                if result.get(name):
                    continue
                value = (node["metadata"].get("labels") or {}).get(key)
                if value is None:
                    result[name] = ("node(s) didn't match pod topology spread constraints (missing required label)",
                                    False)
                elif counts.get(value, 0) + self_match - min_count > int(c.get("maxSkew", 1)):
                    result[name] = ("node(s) didn't match pod topology spread constraints", True)
        return result

    def _anti_affinity_fails(self, pod, node, nodes_by_name, assigned) -> str | None:
        ns = pod["metadata"].get("namespace")
        labels = pod["metadata"].get("labels") or {}
        node_labels = node["metadata"].get("labels") or {}
        terms = ((pod.get("spec", {}).get("affinity") or {}).get("podAntiAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution") or []
        for p, node_name in assigned:
            other_node = nodes_by_name.get(node_name)
            if other_node is None:
                continue
            other_labels = other_node["metadata"].get("labels") or {}
            for t in terms:
                key = t.get("topologyKey")
                if key not in node_labels or other_labels.get(key) != node_labels[key]:
                    continue
                if p["metadata"].get("namespace") not in (t.get("namespaces") or [ns]):
                    continue
                if selector_matches(t.get("labelSelector"), p["metadata"].get("labels")):
                    return "node(s) didn't match pod anti-affinity rules"
            # The existing pod's own anti-affinity against the incoming pod (symmetry).
            theirs = ((p.get("spec", {}).get("affinity") or {}).get("podAntiAffinity") or {}).get(
                "requiredDuringSchedulingIgnoredDuringExecution") or []
            for t in theirs:
                key = t.get("topologyKey")
                if key not in node_labels or other_labels.get(key) != node_labels[key]:
                    continue
                if ns not in (t.get("namespaces") or [p["metadata"].get("namespace")]):
                    continue
                if selector_matches(t.get("labelSelector"), labels):
                    return "node(s) didn't satisfy existing pods anti-affinity rules"
        return None

    def _unschedulable_seconds(self) -> float:
        try:
            return max(0.0, float(self.faults.get("scheduler.unschedulableSeconds").strip() or 0))
        except ValueError:
            return 0.0

    def _young(self, pod: dict) -> float:
        """Fault knob scheduler.unschedulableSeconds: seconds left before a new pod may be bound (as while
        the old pods hold the nodes during a rollout); 0 when it may."""
        wait = self._unschedulable_seconds()
        created = (pod.get("metadata") or {}).get("creationTimestamp")
        if not wait or not created:
            return 0.0
        import datetime
        born = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
        age = (datetime.datetime.now(datetime.timezone.utc) - born).total_seconds()
        return max(0.0, wait - age)

    def place(self, pod: dict) -> tuple[str | None, str | None]:
        """(node, None) or (None, FailedScheduling message)."""
        nodes = sorted(self.nodes.items(), key=lambda n: n["metadata"]["name"])
        total = len(nodes)
        if total == 0:
            return None, "no nodes available to schedule pods"
        if self.faults.enabled("scheduler.unschedulable") or self._young(pod):
            return None, fit_error(total, {n["metadata"]["name"]: ("node(s) were unschedulable", False)
                                           for n in nodes})
        problem = self._volume_problem(pod)
        if problem:
            return None, prefilter_error(total, problem)
        spec = pod.get("spec") or {}
        assigned = self._assigned_pods()
        nodes_by_name = {n["metadata"]["name"]: n for n in nodes}
        # Fault knob: a scheduler that ignores spread constraints and anti-affinity, and packs the
        # pods of one owner onto one node.
        pack = self.faults.enabled("scheduler.ignoreSpread")
        spread = {} if pack else self._spread_filter(pod, nodes, assigned)
        reasons: dict[str, tuple[str, bool]] = {}
        feasible = []
        for node in nodes:
            name = node["metadata"]["name"]
            if node.get("spec", {}).get("unschedulable"):
                reasons[name] = ("node(s) were unschedulable", False)
                continue
            taint = untolerated_taint(spec.get("tolerations"), node)
            if taint is not None:
                reasons[name] = (f"node(s) had untolerated taint {taint_text(taint)}", False)
                continue
            if not node_selector_matches(spec, node):
                reasons[name] = ("node(s) didn't match Pod's node affinity/selector", False)
                continue
            if spread.get(name):
                reasons[name] = spread[name]
                continue
            anti = None if pack else self._anti_affinity_fails(pod, node, nodes_by_name, assigned)
            if anti:
                reasons[name] = (anti, True)
                continue
            feasible.append(name)
        if not feasible:
            return None, fit_error(total, reasons)
        # Score: fewest pods of the same owner, then fewest pods, then the name.
        ref = controller_ref(pod)
        same_owner = collections.Counter()
        all_pods = collections.Counter()
        for p, node_name in assigned:
            all_pods[node_name] += 1
            pref = controller_ref(p)
            if ref and pref and pref.get("uid") == ref.get("uid"):
                same_owner[node_name] += 1
        feasible.sort(key=lambda n: (-same_owner[n] if pack else same_owner[n], all_pods[n], n))
        return feasible[0], None

    # -- sync
    async def sync(self, key):
        ns, name = key
        pod = self.pods.get(ns, name)
        if pod is None or not self._wants(pod) or key in self._assumed:
            return
        node, message = self.place(pod)
        conditions = [c for c in pod.get("status", {}).get("conditions") or [] if c.get("type") != "PodScheduled"]
        p = path("v1", "pods", ns, name)
        if node is None:
            old = next((c for c in pod.get("status", {}).get("conditions") or []
                        if c.get("type") == "PodScheduled"), None)
            if not old or old.get("status") != "False" or old.get("message") != message:
                cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": message, "lastProbeTime": None, "lastTransitionTime": timestamp()}
                await self.client.patch(p + "/status", {"status": {"conditions": conditions + [cond]}})
            await self.event(pod, "Warning", "FailedScheduling", message)
            young = self._young(pod)
            self.queue.add_after(key, min(RETRY_SECONDS, young + 0.1) if young else RETRY_SECONDS)
            return
        cond = {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                "lastTransitionTime": timestamp()}
        # Status first: the kubelet acts only once spec.nodeName is set, so it cannot race this write.
        await self.client.patch(p + "/status", {"status": {"conditions": conditions + [cond]}})
        try:
            await self.client.patch(p, {"spec": {"nodeName": node}})
        except ApiError as e:
            if e.status == 404:
                return
            raise
        self._assumed[key] = node
        await self.event(pod, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node}")
