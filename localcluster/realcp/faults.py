"""Fault knobs on the real control plane, with the mechanisms a real cluster would have.

The builtin control plane's scheduler and ReplicaSet controller read the knobs
`scheduler.unschedulable` and `deployment.stallRollout` of the ConfigMap
localcluster-system/localcluster-faults themselves; on the real control plane those controllers are
kube-scheduler and kube-controller-manager, which read no such thing. This component turns the knobs
into what an administrator (or a broken cluster) would do:

| key | real mechanism |
|---|---|
| `scheduler.unschedulable` | every schedulable node is cordoned (`spec.unschedulable: true`); kube-scheduler then reports `0/6 nodes are available: ... node(s) were unschedulable`. Uncordoned (only those it cordoned) when the key goes. |
| `deployment.stallRollout` | a ResourceQuota `localcluster-stall-rollout` in openshift-image-registry caps pods at the number that exist: the ReplicaSet controller's creates are refused (`FailedCreate ... exceeded quota`) and the Deployment stops progressing. Deleted when the key goes. |

The knobs that act on the project's own node-side components (`kubelet.*`, `provisioner.fail`,
`registry.*`, `obc.*`, `router.*`, `s3.*`) work as on the builtin control plane; `operator.*` (the
emulated operator's) and `scheduler.ignoreSpread` have no real counterpart here.
"""
from __future__ import annotations

import asyncio
import logging

from localcluster import settings as S
from localcluster.client import ApiError, Informer, path

log = logging.getLogger("localcluster.realcp.faults")

QUOTA = "localcluster-stall-rollout"
QUOTA_NS = "openshift-image-registry"
CORDONED_BY = "localcluster.openshift.io/cordoned-by-fault"


class RealFaults:
    def __init__(self, client, settings: S.Settings):
        self.client = client
        self.settings = settings
        self.data: dict = {}
        self._lock = asyncio.Lock()

    async def _on_cm(self, event_type: str, cm: dict) -> None:
        if (cm.get("metadata") or {}).get("name") != S.FAULTS_CONFIGMAP:
            return
        self.data = {} if event_type == "DELETED" else dict(cm.get("data") or {})
        async with self._lock:
            try:
                await self._cordon(self.data.get("scheduler.unschedulable") == "true")
                await self._quota(self.data.get("deployment.stallRollout") == "true")
            except ApiError as e:
                log.warning("fault knobs: %s", e)

    async def _cordon(self, on: bool) -> None:
        for n in (await self.client.list(path("v1", "nodes"))).get("items") or []:
            name = n["metadata"]["name"]
            mine = CORDONED_BY in (n["metadata"].get("annotations") or {})
            cordoned = bool((n.get("spec") or {}).get("unschedulable"))
            if on and not cordoned:
                await self.client.patch(path("v1", "nodes", None, name), {
                    "metadata": {"annotations": {CORDONED_BY: "scheduler.unschedulable"}},
                    "spec": {"unschedulable": True}})
            elif not on and mine:
                await self.client.patch(path("v1", "nodes", None, name), {
                    "metadata": {"annotations": {CORDONED_BY: None}}, "spec": {"unschedulable": None}})

    async def _quota(self, on: bool) -> None:
        qp = path("v1", "resourcequotas", QUOTA_NS)
        if not on:
            await self.client.delete_if_exists(f"{qp}/{QUOTA}")
            return
        if await self.client.get_or_none(f"{qp}/{QUOTA}") is not None:
            return
        pods = (await self.client.list(path("v1", "pods", QUOTA_NS))).get("items") or []
        live = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        await self.client.create(qp, {"apiVersion": "v1", "kind": "ResourceQuota",
                                      "metadata": {"name": QUOTA, "namespace": QUOTA_NS},
                                      "spec": {"hard": {"pods": str(len(live))}}})

    async def run(self) -> None:
        await Informer(self.client, path("v1", "configmaps", S.FAULTS_NAMESPACE), self._on_cm,
                       resync=self.settings.resync_seconds).run()
