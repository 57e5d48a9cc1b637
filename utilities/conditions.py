"""Reading status conditions as OpenShift writes them: by type, a ClusterOperator reason as the union of
its components' reasons, a pod's PodScheduled verdict.

A leaf module (it imports nothing of the suite) so that the waits (`utilities/waits.py`) and the
judge of the condition waits (`utilities/condition_causes.py`) share one reading without an import
circle.
"""
from __future__ import annotations


def conditions(obj: dict | None) -> dict[str, dict]:
    return {c.get("type"): c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def reason_components(reason: str | None) -> list[str]:
    """A ClusterOperator reason is the union of its components' reasons, sorted and joined with "::"
    (CIRO pkg/resource/clusteroperator.go unionReason; operator-facts §12.7): e.g.
    "NodeCADaemonNoAvailableReplicas::Removed" -> ["NodeCADaemonNoAvailableReplicas", "Removed"]."""
    return [r for r in (reason or "").split("::") if r]


def reason_matches(reason: str | None, expected: str) -> bool:
    """`expected` is one component of the union `reason` (or the whole reason)."""
    return reason == expected or expected in reason_components(reason)


def condition_matches(cond: dict | None, status: str, reason: str | None) -> bool:
    """`cond` has `status` and, when `reason` is given, `reason` among its reason's components."""
    return bool(cond) and cond.get("status") == status and (reason is None or reason_matches(cond.get("reason"),
                                                                                              reason))


def pod_unschedulable(pod: dict) -> bool:
    """The scheduler's last word on the pod: PodScheduled=False/Unschedulable, and still no node."""
    if (pod.get("spec") or {}).get("nodeName"):
        return False
    return any(c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
               for c in (pod.get("status") or {}).get("conditions") or [])
