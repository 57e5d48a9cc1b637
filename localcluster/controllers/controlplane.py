"""The control-plane operators' reaction to the image config (operator-facts.md §12.4).

On a real cluster the kube-apiserver-operator, openshift-apiserver-operator and
openshift-controller-manager-operator observe `images.config.openshift.io/cluster`
`status.internalRegistryHostname` and `status.externalRegistryHostnames` (config observation
"images"): every change of either makes a new revision of their operands, which rolls out node by node
(kube-apiserver) or pod by pod; meanwhile their ClusterOperator says Progressing=True.

`ControlPlaneOperators` seeds the three ClusterOperators (Available, not Progressing, not Degraded, at
a revision) and, whenever those two fields change, rolls each: Progressing=True with a message naming
the new revision, then, `settings.control_plane_rollout_seconds` later, Progressing=False at that
revision. A change during a rollout starts the next revision at once (the rollout restarts).
"""
from __future__ import annotations

import asyncio
import datetime
import logging

from localcluster import settings as S
from localcluster.client import ApiError, Informer, KubeClient, path

log = logging.getLogger("localcluster.controlplane")

CO_API = "config.openshift.io/v1"
IMAGE_CONFIG = path(CO_API, "images")

# name -> (first revision, Progressing=True reason, message while rolling, message when done)
OPERATORS = {
    "kube-apiserver": (
        7, "NodeInstaller",
        "NodeInstallerProgressing: 3 nodes are at revision {old}; 0 nodes have achieved new revision {new}",
        "NodeInstallerProgressing: 3 nodes are at revision {new}"),
    "openshift-apiserver": (
        4, "APIServerDeployment_PodsUpdating",
        "APIServerDeploymentProgressing: deployment/apiserver.openshift-apiserver: observed generation is {old}, "
        "desired generation is {new}.",
        "All is well"),
    "openshift-controller-manager": (
        5, "_DesiredStateNotYetAchieved",
        "Progressing: deployment/controller-manager: observed generation is {old}, desired generation is {new}.",
        "All is well"),
}
REVISION_ANNOTATION = "localcluster.openshift.io/revision"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def hostnames(image: dict | None) -> tuple:
    st = (image or {}).get("status") or {}
    return st.get("internalRegistryHostname") or "", tuple(st.get("externalRegistryHostnames") or ())


def conditions(progressing: bool, reason: str, message: str, old: list | None = None) -> list:
    now = _now()
    prev = {c.get("type"): c for c in old or []}
    out = []
    for t, status, r, m in (("Available", "True", "AsExpected", ""),
                            ("Progressing", "True" if progressing else "False",
                             reason if progressing else "AsExpected", message),
                            ("Degraded", "False", "AsExpected", ""),
                            ("Upgradeable", "True", "AsExpected", "")):
        c = {"type": t, "status": status, "reason": r, "message": m, "lastTransitionTime": now}
        if t in prev and prev[t].get("status") == status:
            c["lastTransitionTime"] = prev[t].get("lastTransitionTime") or now
        out.append(c)
    return out


async def seed_operators(client: KubeClient) -> None:
    """The three ClusterOperators, settled at their first revision (as the CVO and their operators
    leave them on a healthy cluster); existing ones are left alone."""
    for name, (rev, reason, _rolling, done) in OPERATORS.items():
        p = path(CO_API, "clusteroperators", None, name)
        if await client.get_or_none(p) is not None:
            continue
        try:
            co = await client.create(path(CO_API, "clusteroperators"), {
                "apiVersion": CO_API, "kind": "ClusterOperator", "metadata": {"name": name}, "spec": {}})
        except ApiError as e:
            if e.status == 409:
                continue
            raise
        status = {"conditions": conditions(False, reason, done.format(old=rev, new=rev)),
                  "versions": [{"name": "operator", "version": S.OPENSHIFT_VERSION}],
                  "relatedObjects": [{"group": "operator.openshift.io", "resource": name.replace("-", ""),
                                      "name": "cluster"}]}
        await client.replace(path(CO_API, "clusteroperators", None, name, "status"), dict(co, status=status))


class ControlPlaneOperators:
    def __init__(self, client: KubeClient, settings: S.Settings, **extra):
        self.client = client
        self.settings = settings
        self.revisions = {name: spec[0] for name, spec in OPERATORS.items()}
        self.rollouts = 0                         # how many changes were rolled out (for selftests)
        self._last: tuple | None = None
        self._done: dict[str, asyncio.Task] = {}
        self._changed = asyncio.Event()

    async def _write_status(self, name: str, progressing: bool, old_rev: int, new_rev: int) -> None:
        _, reason, rolling, done = OPERATORS[name]
        p = path(CO_API, "clusteroperators", None, name)
        for _ in range(10):
            co = await self.client.get_or_none(p)
            if co is None:
                return
            status = dict(co.get("status") or {})
            msg = (rolling if progressing else done).format(old=old_rev, new=new_rev)
            status["conditions"] = conditions(progressing, reason, msg, status.get("conditions"))
            body = dict(co, status=status)
            body["metadata"] = dict(co["metadata"])
            try:
                await self.client.replace(path(CO_API, "clusteroperators", None, name, "status"), body)
                return
            except ApiError as e:
                if e.status not in (404, 409):
                    raise
                if e.status == 404:
                    return

    async def _seed(self) -> None:
        await seed_operators(self.client)

    async def _roll(self, name: str) -> None:
        old = self.revisions[name]
        new = self.revisions[name] = old + 1
        await self._write_status(name, True, old, new)
        await asyncio.sleep(max(0.0, self.settings.control_plane_rollout_seconds))   # the rollout's duration
        await self._write_status(name, False, new, new)

    def _on_image(self, _type: str, obj: dict) -> None:
        if (obj.get("metadata") or {}).get("name") != "cluster":
            return
        now = hostnames(obj)
        if self._last is None:
            self._last = now
            return
        if now == self._last:
            return
        self._last = now
        self.rollouts += 1
        log.info("image config registry hostnames changed (%s): rolling out %s", now, ", ".join(OPERATORS))
        for name in OPERATORS:
            task = self._done.get(name)
            if task is not None and not task.done():
                task.cancel()
            self._done[name] = asyncio.get_running_loop().create_task(self._roll(name))

    async def run(self) -> None:
        await self._seed()
        informer = Informer(self.client, IMAGE_CONFIG, self._on_image, resync=self.settings.resync_seconds)
        try:
            await informer.run()
        finally:
            for t in self._done.values():
                t.cancel()
            await asyncio.gather(*self._done.values(), return_exceptions=True)
