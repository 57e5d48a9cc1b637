"""The kubelet: one for all nodes. Runs the containers of every pod bound to a node.

- Pod IPs are unique 127.1.x.y addresses (containers listen there for real); hostIP is the node's
  InternalIP (127.0.x.1 in the seed) or a per-node 127.0.x.y address.
- Volumes: a PV is the directory named by its annotation `localcluster.openshift.io/host-path`, shared
  by every pod that mounts it (ReadWriteOnce-only PVs are attached to one node at a time: Multi-Attach
  error otherwise); emptyDir is a fresh directory removed with the pod; secret/configMap/projected
  volumes are written as files.
- Containers: the registry image runs `localcluster.registrypod.RegistryContainer` (a real
  docker-registry process + its OpenShift front); any other image is a pause container.
- Readiness comes from the container's readinessProbe (httpGet) against the real process.
- pods/exec (`exec_in`, called by the API server): a stand-in. The command runs as a process of this
  machine, not inside the image (see `_Exec`).
- Fault knobs (configmap localcluster-system/localcluster-faults): `kubelet.neverReady`, and the
  transient volume troubles real clusters show (issue 7): `kubelet.attachFailSeconds`,
  `kubelet.detachDelaySeconds`, `kubelet.failMountTimes` (localcluster/README.md).
"""
from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import aiohttp

from localcluster import settings as S
from localcluster.client import ApiError, Informer, path
from localcluster.controllers.events import record
from localcluster.registrypod import RegistryContainer, TokenSigner

log = logging.getLogger("localcluster.kubelet")

COMPONENT = "kubelet"
HOST_PATH_ANNOTATION = "localcluster.openshift.io/host-path"
CA_ANCHOR_MOUNTS = ("/etc/pki/ca-trust/source/anchors", "/usr/share/pki/ca-trust-source")
STOP_GRACE = 1.5  # seconds between SIGTERM and SIGKILL (the pod's 55 s grace is not honoured)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Wait(Exception):
    """The pod cannot start yet: emit an event (type, reason, message) and retry."""

    def __init__(self, reason: str, message: str, type_: str = "Warning", waiting_reason: str = "ContainerCreating"):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.type = type_
        self.waiting_reason = waiting_reason


def _b64(s: str) -> bytes:
    return base64.b64decode(s or "")


def _ip_free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
            return True
        except OSError:
            return False


class _Container:
    def __init__(self, spec: dict):
        self.spec = spec
        self.name = spec["name"]
        self.image = spec.get("image", "")
        # The real operator's node-ca DaemonSet (4.16-4.20) runs the registry image too, with a shell loop
        # that copies CAs, and the suite's ReadWriteOnce probe runs it with a sleep: the registry image
        # with a command that does not start /usr/bin/dockerregistry is a pause container here.
        command = " ".join(spec.get("command") or []) + " " + " ".join(spec.get("args") or [])
        self.is_registry = (self.image == S.REGISTRY_IMAGE and self.name != "node-ca"
                            and (not command.strip() or "dockerregistry" in command))
        self.runtime: RegistryContainer | None = None
        self.started_at: str | None = None
        self.started_mono: float | None = None     # time.monotonic() of the (re)start, for initialDelaySeconds
        self.ready = False
        self.restart_count = 0
        self.last_state: dict = {}
        self.waiting: dict | None = {"reason": "ContainerCreating"}
        self.container_id = ""

    def status(self) -> dict:
        if self.waiting is not None:
            state = {"waiting": self.waiting}
        else:
            state = {"running": {"startedAt": self.started_at}}
        return {
            "name": self.name, "image": self.image, "imageID": "", "containerID": self.container_id,
            "ready": self.ready, "started": self.waiting is None, "restartCount": self.restart_count,
            "state": state, "lastState": self.last_state,
        }


class ExecRefused(Exception):
    """pods/exec cannot start in this container (kube answers such a request 400, before the upgrade)."""


class _Exec:
    """A command "in" a running container, as a stand-in: a process of this machine, as this user.

    The local cluster shares the host's filesystem, so the command sees it through the container's
    mounts: `python`/`python3` is this Python (sys.executable; the suite's image has Python), any other
    program is looked up on this machine's PATH; every argument, and the container's workingDir, that lies
    under a volumeMount's mountPath is mapped to that volume's host directory (a PV's directory, an
    emptyDir's, a secret/configMap volume's files), the longest mountPath first; the environment is the
    container's (mapped the same way) plus PATH and HOME. readOnly mounts are not enforced (no mount
    namespace here): what runs must only read them. The run is bounded by `timeout`: the process group is
    killed then (exit 137, as a SIGKILLed process), as it is when the pod goes or the client leaves.
    """

    def __init__(self, worker: "_PodWorker", argv: list[str], cwd: Path, env: dict[str, str], timeout: float):
        self.worker = worker
        self.argv, self.cwd, self.env, self.timeout = argv, cwd, env, timeout
        self.proc: asyncio.subprocess.Process | None = None

    async def run(self, out, err) -> int:
        """Run to the end, handing stdout and stderr chunks to the async callables `out` and `err`."""
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            # What runc says for a program it cannot start; 126 as a shell answers "cannot execute".
            await err(f"exec: {self.argv[0]!r}: {e.strerror}\n".encode())
            return 126
        self.worker.execs.add(self)

        async def pump(stream, sink) -> None:
            while chunk := await stream.read(64 * 1024):
                await sink(chunk)

        try:
            await asyncio.wait_for(asyncio.gather(pump(self.proc.stdout, out), pump(self.proc.stderr, err),
                                                  self.proc.wait()), self.timeout)
        except asyncio.TimeoutError:
            self.kill()
            await self.proc.wait()
            await err(f"localcluster: exec ended after its {self.timeout:g} s timeout\n".encode())
            return 137
        finally:
            self.kill()
            self.worker.execs.discard(self)
        return self.proc.returncode if self.proc.returncode >= 0 else 128 - self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


class _PodWorker:
    def __init__(self, kubelet: "Kubelet", pod: dict):
        self.k = kubelet
        self.pod = pod
        meta = pod["metadata"]
        self.uid = meta["uid"]
        self.name = meta["name"]
        self.namespace = meta.get("namespace", "default")
        self.node = pod["spec"]["nodeName"]
        self.dir = kubelet.pods_dir / self.uid
        self.pod_ip: str | None = None
        self.containers = [_Container(c) for c in pod["spec"].get("containers", [])]
        self.conditions: dict[str, tuple[str, str]] = {}
        self.start_time = _now()
        self.phase = "Pending"
        self.task: asyncio.Task | None = None
        self.terminating: asyncio.Task | None = None
        self._last_status: dict | None = None
        self._last_event: dict[str, float] = {}
        self.volume_dirs: dict[str, Path] = {}
        self._attach_started: float | None = None   # first attach attempt (kubelet.attachFailSeconds)
        self._mount_failures = 0                    # kubelet.failMountTimes
        self.execs: set[_Exec] = set()              # pods/exec processes, killed with the pod

    # ------------------------------------------------------------------ helpers
    def obj(self) -> dict:
        o = dict(self.pod)
        o.setdefault("apiVersion", "v1")
        o.setdefault("kind", "Pod")
        return o

    async def event(self, type_: str, reason: str, message: str, every: float = 0.0) -> None:
        now = asyncio.get_running_loop().time()
        key = f"{reason}\0{message}"
        if every and now - self._last_event.get(key, -1e9) < every:
            return
        self._last_event[key] = now
        await record(self.k.client, self.obj(), type_, reason, message, COMPONENT)

    def _condition(self, type_: str, status: bool) -> dict:
        value = "True" if status else "False"
        prev = self.conditions.get(type_)
        if prev is None or prev[0] != value:
            self.conditions[type_] = (value, _now())
        c = {"type": type_, "status": value, "lastProbeTime": None,
             "lastTransitionTime": self.conditions[type_][1]}
        if not status and type_ in ("Ready", "ContainersReady"):
            not_ready = [c.name for c in self.containers if not c.ready]
            c["reason"] = "ContainersNotReady"
            c["message"] = f"containers with unready status: [{' '.join(not_ready)}]"
        return c

    def build_status(self) -> dict:
        all_ready = bool(self.containers) and all(c.ready for c in self.containers)
        status = {
            "phase": self.phase,
            "conditions": [
                self._condition("PodReadyToStartContainers", self.pod_ip is not None),
                self._condition("Initialized", True),
                self._condition("Ready", all_ready),
                self._condition("ContainersReady", all_ready),
                self._condition("PodScheduled", True),
            ],
            "hostIP": self.k.host_ip(self.node),
            "hostIPs": [{"ip": self.k.host_ip(self.node)}],
            "startTime": self.start_time,
            "containerStatuses": [c.status() for c in self.containers],
            "qosClass": "Burstable",
        }
        if self.pod_ip:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        return status

    async def push_status(self, force: bool = False) -> None:
        status = self.build_status()
        if not force and status == self._last_status:
            return
        try:
            await self.k.client.patch(path("v1", "pods", self.namespace, self.name, "status"), {"status": status})
            self._last_status = status
        except ApiError as e:
            if e.status != 404:
                log.warning("pod %s/%s status: %s", self.namespace, self.name, e)

    # ------------------------------------------------------------------ volumes
    async def _get(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> dict | None:
        try:
            return await self.k.client.get(path(api_version, plural, namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def _source_files(self, kind: str, src: dict, vol: str) -> dict[str, bytes] | None:
        """Files of a secret/configMap volume source; None when optional and missing."""
        name = src.get("secretName") if kind == "secret" else src.get("name")
        plural = "secrets" if kind == "secret" else "configmaps"
        obj = await self._get("v1", plural, name, self.namespace)
        optional = bool(src.get("optional"))
        if obj is None:
            if optional:
                return None
            label = "secret" if kind == "secret" else "configmap"
            raise _Wait("FailedMount", f'MountVolume.SetUp failed for volume "{vol}" : {label} "{name}" not found')
        data: dict[str, bytes] = {}
        if kind == "secret":
            for k, v in (obj.get("data") or {}).items():
                data[k] = _b64(v)
            for k, v in (obj.get("stringData") or {}).items():
                data[k] = v.encode()
        else:
            for k, v in (obj.get("data") or {}).items():
                data[k] = v.encode()
            for k, v in (obj.get("binaryData") or {}).items():
                data[k] = _b64(v)
        items = src.get("items")
        if not items:
            return data
        out = {}
        for it in items:
            if it["key"] not in data:
                if optional:
                    continue
                raise _Wait("FailedMount", f'MountVolume.SetUp failed for volume "{vol}" : '
                                           f'{"secret" if kind == "secret" else "configmap"} references '
                                           f'non-existent {"secret" if kind == "secret" else "config"} key: {it["key"]}')
            out[it.get("path") or it["key"]] = data[it["key"]]
        return out

    async def _files_for(self, vol: dict) -> dict[str, bytes] | None:
        name = vol["name"]
        if "secret" in vol:
            return await self._source_files("secret", vol["secret"], name)
        if "configMap" in vol:
            return await self._source_files("configMap", vol["configMap"], name)
        if "projected" in vol:
            files: dict[str, bytes] = {}
            for src in vol["projected"].get("sources") or []:
                if "secret" in src:
                    s = dict(src["secret"])
                    s["secretName"] = s.get("name")
                    got = await self._source_files("secret", s, name)
                elif "configMap" in src:
                    got = await self._source_files("configMap", src["configMap"], name)
                else:  # serviceAccountToken, downwardAPI, clusterTrustBundle: skipped
                    got = None
                files.update(got or {})
            return files
        return None

    @staticmethod
    def _write_files(target: Path, files: dict[str, bytes]) -> None:
        target.mkdir(parents=True, exist_ok=True)
        wanted = set()
        for rel, data in files.items():
            p = target / rel
            wanted.add(p)
            p.parent.mkdir(parents=True, exist_ok=True)
            try:
                if p.read_bytes() == data:
                    continue
            except OSError:
                pass
            tmp = p.with_name(p.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, p)
        for p in target.rglob("*"):
            if p.is_file() and p not in wanted:
                p.unlink()

    def _knob(self, key: str) -> float:
        try:
            return float(str(self.k.faults.get(key, "0")).strip() or 0)
        except ValueError:
            return 0.0

    def _knob_on(self, key: str) -> bool:
        return str(self.k.faults.get(key, "")).strip().lower() == "true"

    async def setup_volumes(self) -> None:
        claims = [v for v in self.pod["spec"].get("volumes") or [] if "persistentVolumeClaim" in v]
        if claims and self._mount_failures < self._knob("kubelet.failMountTimes"):
            # Fault knob: the first N mounts of a pod's volumes fail (a CSI node plugin hiccup), then work.
            self._mount_failures += 1
            raise _Wait("FailedMount", f'MountVolume.SetUp failed for volume "{claims[0]["name"]}" : rpc error: '
                                       "code = Internal desc = staging path not ready (injected: localcluster "
                                       "kubelet.failMountTimes)")
        for vol in self.pod["spec"].get("volumes") or []:
            name = vol["name"]
            if "persistentVolumeClaim" in vol:
                self.volume_dirs[name] = await self._attach_pvc(name, vol["persistentVolumeClaim"]["claimName"])
            elif "emptyDir" in vol:
                d = self.dir / "volumes" / "empty-dir" / name
                if str(self.k.faults.get("kubelet.keepEmptyDir", "")).lower() == "true":
                    # Fault (issue 9): emptyDir outlives the pod: replacements of the same owner reuse it.
                    owner = next((r.get("name") for r in self.pod["metadata"].get("ownerReferences") or []), "")
                    owner = owner.rsplit("-", 1)[0] if owner else self.pod["metadata"]["name"]
                    d = self.k.settings.state_dir / "kept-empty-dirs" / self.namespace / owner / name
                d.mkdir(parents=True, exist_ok=True)
                self.volume_dirs[name] = d
            elif "hostPath" in vol:
                d = self.k.settings.state_dir / "nodes" / self.node / "host-path" / vol["hostPath"]["path"].strip("/")
                d.mkdir(parents=True, exist_ok=True)
                self.volume_dirs[name] = d
            else:
                files = await self._files_for(vol)
                d = self.dir / "volumes" / "files" / name
                self._write_files(d, files or {})
                self.volume_dirs[name] = d

    async def refresh_file_volumes(self) -> None:
        """Like the kubelet's periodic sync: secrets and configmaps changed later show up in the files."""
        for vol in self.pod["spec"].get("volumes") or []:
            if any(k in vol for k in ("secret", "configMap", "projected")):
                try:
                    files = await self._files_for(vol)
                except (_Wait, ApiError):
                    continue
                self._write_files(self.dir / "volumes" / "files" / vol["name"], files or {})

    async def _attach_pvc(self, vol: str, claim: str) -> Path:
        pvc = await self._get("v1", "persistentvolumeclaims", claim, self.namespace)
        if pvc is None:
            raise _Wait("FailedMount", f'MountVolume.SetUp failed for volume "{vol}" : '
                                       f'persistentvolumeclaim "{claim}" not found')
        pv_name = (pvc.get("spec") or {}).get("volumeName")
        if (pvc.get("status") or {}).get("phase") != "Bound" or not pv_name:
            raise _Wait("FailedMount", f'MountVolume.SetUp failed for volume "{vol}" : '
                                       f'persistentvolumeclaim "{claim}" is not bound')
        pv = await self._get("v1", "persistentvolumes", pv_name)
        if pv is None:
            raise _Wait("FailedMount", f'MountVolume.SetUp failed for volume "{vol}" : '
                                       f'persistentvolume "{pv_name}" not found')
        host_dir = ((pv.get("metadata") or {}).get("annotations") or {}).get(HOST_PATH_ANNOTATION)
        host = Path(host_dir) if host_dir else self.k.settings.state_dir / "volumes" / pv_name
        modes = (pv.get("spec") or {}).get("accessModes") or []
        # No await between the check and the registration: attachments are decided atomically.
        users = self.k.attachments.setdefault(pv_name, {})
        # Fault knob kubelet.ignoreAccessModes: a ReadWriteOnce volume is attached wherever a pod wants it.
        if "ReadWriteMany" not in modes and "ReadOnlyMany" not in modes and not self._knob_on("kubelet.ignoreAccessModes"):
            others = sorted(n for uid, (node, n) in users.items()
                            if uid != self.uid and node != self.node and uid not in self.k.detaching)
            if others:
                raise _Wait("FailedAttachVolume",
                            f'Multi-Attach error for volume "{pv_name}" Volume is already used by pod(s) '
                            f'{", ".join(others)}')
            if any(uid != self.uid and node != self.node for uid, (node, _n) in users.items()):
                # The old pod is gone but its node still holds the volume (kubelet.detachDelaySeconds).
                raise _Wait("FailedAttachVolume",
                            f'Multi-Attach error for volume "{pv_name}" Volume is already exclusively attached '
                            "to one node and can't be attached to another")
        # Fault knob: attaching fails for a while (vSphere attach retried by the attach/detach controller).
        attach_fail = self._knob("kubelet.attachFailSeconds")
        loop = asyncio.get_running_loop()
        if self._attach_started is None:
            self._attach_started = loop.time()
        if attach_fail and loop.time() - self._attach_started < attach_fail:
            handle = ((pv.get("spec") or {}).get("csi") or {}).get("volumeHandle") or pv_name
            raise _Wait("FailedAttachVolume",
                        f'AttachVolume.Attach failed for volume "{pv_name}" : rpc error: code = Internal desc = '
                        f'failed to attach disk: "{handle}" with node: "{self.node}" err failed to attach cns '
                        "volume: ServerFaultCode: CNS: Failed to attach volume (injected: localcluster "
                        "kubelet.attachFailSeconds)")
        users[self.uid] = (self.node, self.name)
        host.mkdir(parents=True, exist_ok=True)
        return host

    def release_volumes(self) -> None:
        delay = self._knob("kubelet.detachDelaySeconds")
        if delay > 0 and any(self.uid in users for users in self.k.attachments.values()):
            # Fault knob: the volume stays attached to this node for a while after the pod is gone
            # (detach takes time on vSphere): a new pod on another node sees Multi-Attach meanwhile.
            self.k.detaching.add(self.uid)
            asyncio.get_running_loop().call_later(delay, self.k.detach, self.uid)
            return
        self.k.detach(self.uid)

    # ------------------------------------------------------------------ environment
    def _mounts(self, c: dict) -> list[tuple[str, Path]]:
        out = []
        for m in c.get("volumeMounts") or []:
            d = self.volume_dirs.get(m["name"])
            if d is None:
                continue
            if m.get("subPath"):
                d = d / m["subPath"]
            out.append((m["mountPath"].rstrip("/") or "/", d))
        out.sort(key=lambda x: len(x[0]), reverse=True)
        return out

    @staticmethod
    def _rewrite(value: str, mounts: list[tuple[str, Path]]) -> str:
        for mp, d in mounts:
            if value == mp or value.startswith(mp + "/"):
                return str(d) + value[len(mp):]
        return value

    async def _key_ref(self, kind: str, ref: dict) -> str | None:
        plural = "secrets" if kind == "secret" else "configmaps"
        obj = await self._get("v1", plural, ref.get("name"), self.namespace)
        if obj is None or ref["key"] not in ((obj.get("data") or {})):
            if ref.get("optional"):
                return None
            what = "secret" if kind == "secret" else "configmap"
            msg = (f'{what} "{ref.get("name")}" not found' if obj is None
                   else f"couldn't find key {ref['key']} in {'Secret' if kind == 'secret' else 'ConfigMap'} "
                        f"{self.namespace}/{ref.get('name')}")
            raise _Wait("Failed", f"Error: {msg}", waiting_reason="CreateContainerConfigError")
        raw = obj["data"][ref["key"]]
        return _b64(raw).decode(errors="replace") if kind == "secret" else raw

    async def resolve_env(self, c: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        for ef in c.get("envFrom") or []:
            prefix = ef.get("prefix", "")
            for kind, key in (("secret", "secretRef"), ("configMap", "configMapRef")):
                if key in ef:
                    ref = ef[key]
                    obj = await self._get("v1", "secrets" if kind == "secret" else "configmaps", ref["name"],
                                          self.namespace)
                    if obj is None:
                        if ref.get("optional"):
                            continue
                        raise _Wait("Failed", f'Error: {"secret" if kind == "secret" else "configmap"} '
                                              f'"{ref["name"]}" not found',
                                    waiting_reason="CreateContainerConfigError")
                    for k, v in (obj.get("data") or {}).items():
                        env[prefix + k] = _b64(v).decode(errors="replace") if kind == "secret" else v
        fields = {
            "metadata.name": self.name, "metadata.namespace": self.namespace,
            "metadata.uid": self.uid, "spec.nodeName": self.node,
            "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName", "default"),
            "status.podIP": self.pod_ip or "", "status.hostIP": self.k.host_ip(self.node),
        }
        for e in c.get("env") or []:
            if "valueFrom" not in e:
                env[e["name"]] = str(e.get("value", ""))
                continue
            vf = e["valueFrom"]
            value = None
            if "secretKeyRef" in vf:
                value = await self._key_ref("secret", vf["secretKeyRef"])
            elif "configMapKeyRef" in vf:
                value = await self._key_ref("configMap", vf["configMapKeyRef"])
            elif "fieldRef" in vf:
                fp = vf["fieldRef"].get("fieldPath", "")
                if fp.startswith("metadata.labels['"):
                    value = (self.pod["metadata"].get("labels") or {}).get(fp[17:-2], "")
                else:
                    value = fields.get(fp, "")
            if value is not None:
                env[e["name"]] = value
        mounts = self._mounts(c)
        return {k: self._rewrite(v, mounts) for k, v in env.items()}

    # ------------------------------------------------------------------ containers
    async def start_container(self, c: _Container) -> None:
        if c.is_registry:
            env = await self.resolve_env(c.spec)
            mounts = self._mounts(c.spec)
            anchors = [str(d) for mp, d in mounts if any(mp == a or mp.startswith(a + "/") for a in CA_ANCHOR_MOUNTS)]
            if str(self.k.faults.get("registry.ignoreTrustedCA", "")).lower() == "true":
                # Fault (issue 9): the registry trusts the ingress CA whatever the trustedCA config map
                # says (an image with that CA baked in; to the suite, the same as skipping verification).
                cm = await self._get("v1", "configmaps", "default-ingress-cert", "openshift-config-managed")
                pem = ((cm or {}).get("data") or {}).get("ca-bundle.crt")
                if pem:
                    d = self.dir / "baked-in-trust"
                    d.mkdir(parents=True, exist_ok=True)
                    (d / "ingress-ca.crt").write_text(pem)
                    anchors.append(str(d))
            if anchors:
                env["LOCALCLUSTER_CA_ANCHOR_DIRS"] = os.pathsep.join(anchors)
            proxy = getattr(self.k.settings, "netproxy_url", "")
            if proxy:
                # The pod network: cluster names (route hosts, <svc>.<ns>.svc) through the cluster proxy.
                from localcluster.netproxy import NO_PROXY
                env.setdefault("HTTP_PROXY", proxy)
                env.setdefault("HTTPS_PROXY", proxy)
                env.setdefault("NO_PROXY", NO_PROXY)
            port = 5000
            addr = env.get("REGISTRY_HTTP_ADDR", "")
            if addr.rpartition(":")[2].isdigit():
                port = int(addr.rpartition(":")[2])
            elif c.spec.get("ports"):
                port = int(c.spec["ports"][0]["containerPort"])
            c.runtime = RegistryContainer(
                pod_ip=self.pod_ip, env=env, workdir=self.dir / "containers" / c.name, signer=self.k.signer,
                api_server=self.k.api_server, api_ca_pem=self.k.api_ca_pem, port=port,
                faults=lambda: self.k.faults, name=c.name,
                pods=lambda: self.k.pods.items() if self.k.pods else [],
                on_manifest=self.k.image_api.record if self.k.image_api else None)
            await c.runtime.start()
        c.container_id = "cri-o://" + secrets.token_hex(32)
        c.started_at = _now()
        c.started_mono = time.monotonic()
        c.waiting = None
        if not c.is_registry:
            c.ready = True
        await self.event("Normal", "Pulled", f'Container image "{c.image}" already present on machine')
        await self.event("Normal", "Created", f"Created container {c.name}")
        await self.event("Normal", "Started", f"Started container {c.name}")

    async def exec_in(self, c: _Container, command: list[str], timeout: float) -> _Exec:
        """The command as `_Exec` runs it; ExecRefused when the container is not running."""
        if c.waiting is not None or c.started_at is None or self.terminating is not None:
            raise ExecRefused(f'unable to upgrade connection: container not found ("{c.name}")')
        mounts = self._mounts(c.spec)
        argv = [self._rewrite(a, mounts) for a in command]
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        elif "/" not in argv[0]:
            argv[0] = shutil.which(argv[0]) or argv[0]
        home = self.dir / "containers" / c.name
        home.mkdir(parents=True, exist_ok=True)
        cwd = Path(self._rewrite(c.spec["workingDir"], mounts)) if c.spec.get("workingDir") else home
        try:
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "HOSTNAME": self.name,
                   **await self.resolve_env(c.spec)}
        except _Wait as e:      # a secret or config map gone since the start
            raise ExecRefused(f"unable to upgrade connection: {e.message}") from None
        return _Exec(self, argv, cwd if cwd.is_dir() else home, env, timeout)

    async def probe(self, c: _Container) -> bool:
        if c.runtime is None or c.runtime.exited() is not None:
            return False
        if str(self.k.faults.get("kubelet.neverReady", "")).lower() == "true":
            # as a real kubelet reports a failing readiness probe
            await self.event("Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503",
                             every=2)
            return False
        readiness = c.spec.get("readinessProbe") or {}
        # No probe before initialDelaySeconds (scaled: Settings.probe_delay_scale), as a real kubelet:
        # the registry's 15 s is the window in which a restarted registry is seen down.
        delay = float(readiness.get("initialDelaySeconds") or 0) * self.k.settings.probe_delay_scale
        if c.started_mono is not None and time.monotonic() - c.started_mono < delay:
            return False
        probe = readiness.get("httpGet")
        if probe is None:
            return c.runtime.exited() is None
        port = probe.get("port", 5000)
        if isinstance(port, str) and not port.isdigit():
            port = next((p["containerPort"] for p in c.spec.get("ports") or [] if p.get("name") == port), 5000)
        scheme = probe.get("scheme", "HTTP").lower()
        url = f"{scheme}://{probe.get('host') or self.pod_ip}:{int(port)}{probe.get('path', '/')}"
        try:
            async with self.k.http.get(url, ssl=False, timeout=aiohttp.ClientTimeout(total=2)) as r:
                await r.read()
                ok = 200 <= r.status < 400
                if not ok:
                    await self.event("Warning", "Unhealthy",
                                     f"Readiness probe failed: HTTP probe failed with statuscode: {r.status}", every=5)
                return ok
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            await self.event("Warning", "Unhealthy", f"Readiness probe failed: {type(e).__name__}", every=5)
            return False

    async def handle_exit(self, c: _Container, code: int) -> None:
        c.restart_count += 1
        c.ready = False
        c.last_state = {"terminated": {"exitCode": code, "reason": "Error" if code else "Completed",
                                       "startedAt": c.started_at, "finishedAt": _now(),
                                       "containerID": c.container_id}}
        delay = min(0.2 * (2 ** (c.restart_count - 1)), 3.0)
        if c.restart_count >= 2:
            c.waiting = {"reason": "CrashLoopBackOff",
                         "message": f"back-off {delay:.1f}s restarting failed container={c.name} "
                                    f"pod={self.name}_{self.namespace}({self.uid})"}
            await self.event("Warning", "BackOff",
                             f"Back-off restarting failed container {c.name} in pod "
                             f"{self.name}_{self.namespace}({self.uid})")
        else:
            c.waiting = {"reason": "ContainerCreating"}
        await self.push_status()
        await asyncio.sleep(delay)
        await c.runtime.restart_process()
        c.container_id = "cri-o://" + secrets.token_hex(32)
        c.started_at = _now()
        c.started_mono = time.monotonic()
        c.waiting = None
        await self.event("Normal", "Started", f"Started container {c.name}")

    # ------------------------------------------------------------------ main loop
    async def run(self) -> None:
        self.pod_ip = self.k.allocate_ip(self.uid)
        await self.push_status(force=True)
        await asyncio.sleep(self.k.settings.pod_start_delay)
        retry = 0.1
        while True:
            try:
                await self.setup_volumes()
                for c in self.containers:
                    if c.waiting is not None:
                        await self.start_container(c)
                break
            except _Wait as w:
                for c in self.containers:
                    if c.waiting is not None:
                        c.waiting = {"reason": w.waiting_reason, "message": w.message} \
                            if w.waiting_reason != "ContainerCreating" else {"reason": "ContainerCreating"}
                await self.push_status()
                await self.event(w.type, w.reason, w.message, every=2.0)
                await asyncio.sleep(retry)
                retry = min(retry * 2, 1.0)
        self.phase = "Running"
        await self.push_status()
        loop = asyncio.get_running_loop()
        last_refresh = loop.time()
        while True:
            for c in self.containers:
                if c.runtime is None:
                    continue
                code = c.runtime.exited()
                if code is not None:
                    await self.handle_exit(c, code)
                c.ready = await self.probe(c)
            await self.push_status()
            if loop.time() - last_refresh > 5:
                last_refresh = loop.time()
                await self.refresh_file_volumes()
            await asyncio.sleep(self.k.settings.probe_interval)

    async def stop(self) -> None:
        """Stop the containers and free the pod's resources (the API object is not touched)."""
        for e in list(self.execs):
            e.kill()
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        await asyncio.gather(*(c.runtime.stop() for c in self.containers if c.runtime is not None),
                             return_exceptions=True)
        self.release_volumes()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.k.release_ip(self.uid)

    async def terminate(self, delete_object: bool) -> None:
        if any(c.runtime is not None for c in self.containers):
            for c in self.containers:
                await self.event("Normal", "Killing", f"Stopping container {c.name}")
        await self.stop()
        if delete_object:
            try:
                await self.k.client.delete(path("v1", "pods", self.namespace, self.name), grace_period_seconds=0)
            except ApiError as e:
                if e.status != 404:
                    log.warning("delete pod %s/%s: %s", self.namespace, self.name, e)


class Kubelet:
    def __init__(self, client, settings: S.Settings, token_signer: TokenSigner | None = None,
                 api_server: str | None = None, api_ca_pem: bytes | None = None):
        self.client = client
        self.settings = settings
        self.signer = token_signer or TokenSigner.create()
        self.api_server = api_server or client.server
        self.api_ca_pem = api_ca_pem or client.ca_pem
        self.pods_dir = Path(settings.state_dir) / "pods"
        self.workers: dict[str, _PodWorker] = {}
        self.attachments: dict[str, dict[str, tuple[str, str]]] = {}
        self.faults: dict = {}
        self.detaching: set[str] = set()     # pods gone whose volumes are still attached (detachDelaySeconds)
        self._ips: dict[str, str] = {}
        self._node_ips: dict[str, str] = {}
        self._stopping: set[asyncio.Task] = set()
        self.http: aiohttp.ClientSession | None = None
        self.pods: Informer | None = None
        self.image_api = None      # localcluster.images.ImageAPI once running

    # ------------------------------------------------------------------ addresses
    def detach(self, uid: str) -> None:
        self.detaching.discard(uid)
        for pv_name in list(self.attachments):
            self.attachments[pv_name].pop(uid, None)
            if not self.attachments[pv_name]:
                del self.attachments[pv_name]

    # The first two octets of pod IPs. The real control plane (localcluster/realcp/) uses a non-loopback
    # range routed to lo in its network namespace: kube-apiserver refuses loopback Endpoints.
    pod_network = "127.1"

    def allocate_ip(self, uid: str) -> str:
        if uid in self._ips:
            return self._ips[uid]
        used = set(self._ips.values())
        start = random.randrange(0, 250 * 250)
        for i in range(250 * 250):
            n = (start + i) % (250 * 250)
            ip = f"{self.pod_network}.{n // 250}.{n % 250 + 2}"
            if ip not in used and _ip_free(ip, 5000):
                self._ips[uid] = ip
                return ip
        raise RuntimeError(f"no free pod IP in {self.pod_network}.0.0/16")

    def release_ip(self, uid: str) -> None:
        self._ips.pop(uid, None)

    def host_ip(self, node: str) -> str:
        if node not in self._node_ips:
            idx = zlib.crc32(node.encode()) % 250
            self._node_ips[node] = f"127.0.{idx + 1}.1"
        return self._node_ips[node]

    async def _load_node_ip(self, node: str) -> None:
        if node in self._node_ips:
            return
        try:
            n = await self.client.get(path("v1", "nodes", None, node))
            for a in (n.get("status") or {}).get("addresses") or []:
                if a.get("type") == "InternalIP":
                    self._node_ips[node] = a["address"]
                    return
        except ApiError:
            pass

    # ------------------------------------------------------------------ events from the API
    async def _on_faults(self, event_type: str, cm: dict) -> None:
        if (cm.get("metadata") or {}).get("name") != S.FAULTS_CONFIGMAP:
            return
        self.faults = {} if event_type == "DELETED" else dict(cm.get("data") or {})

    def _terminate(self, worker: _PodWorker, delete_object: bool) -> None:
        if worker.terminating is not None:
            return

        async def go():
            try:
                await worker.terminate(delete_object)
            finally:
                if self.workers.get(worker.uid) is worker:
                    del self.workers[worker.uid]

        worker.terminating = asyncio.create_task(go())
        self._stopping.add(worker.terminating)
        worker.terminating.add_done_callback(self._stopping.discard)

    async def _on_pod(self, event_type: str, pod: dict) -> None:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        uid = meta.get("uid")
        if not spec.get("nodeName") or not uid:
            return
        worker = self.workers.get(uid)
        if event_type == "DELETED":
            if worker is not None:
                self._terminate(worker, delete_object=False)
            return
        if meta.get("deletionTimestamp"):
            if worker is None:
                worker = _PodWorker(self, pod)
                self.workers[uid] = worker
            self._terminate(worker, delete_object=True)
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        if worker is not None:
            worker.pod = pod
            return
        await self._load_node_ip(spec["nodeName"])
        worker = _PodWorker(self, pod)
        self.workers[uid] = worker
        worker.task = asyncio.create_task(self._run_worker(worker), name=f"pod {meta.get('namespace')}/{meta.get('name')}")

    async def _run_worker(self, worker: _PodWorker) -> None:
        try:
            await worker.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("pod %s/%s worker failed", worker.namespace, worker.name)

    # ------------------------------------------------------------------ pods/exec
    exec_timeout = 600.0   # seconds an exec may run (the stand-in's bound; kube's is the stream idle timeout)

    async def exec_in(self, uid: str, container: str, command: list[str]) -> _Exec:
        """pods/exec into a container of the pod `uid` (the API server has checked the names)."""
        worker = self.workers.get(uid)
        c = next((c for c in worker.containers if c.name == container), None) if worker else None
        if c is None:
            raise ExecRefused(f'unable to upgrade connection: container not found ("{container}")')
        return await worker.exec_in(c, command, self.exec_timeout)

    # ------------------------------------------------------------------ run
    async def run(self) -> None:
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.http = aiohttp.ClientSession(trust_env=False)
        self.pods = Informer(self.client, path("v1", "pods"), self._on_pod, resync=self.settings.resync_seconds)
        from localcluster.images import ImageAPI        # issue 7: pushes leave ImageStreams and Images
        self.image_api = ImageAPI(self.client)
        faults = Informer(self.client, path("v1", "configmaps", S.FAULTS_NAMESPACE), self._on_faults,
                          resync=self.settings.resync_seconds)
        try:
            await asyncio.gather(self.pods.run(), faults.run())
        finally:
            await asyncio.shield(self._shutdown())

    async def _shutdown(self) -> None:
        workers = list(self.workers.values())
        try:
            await asyncio.gather(*(w.stop() for w in workers), *list(self._stopping), return_exceptions=True)
        finally:
            for w in workers:  # whatever is left, killed synchronously
                for c in w.containers:
                    if c.runtime is not None:
                        c.runtime.kill_now()
            self.workers.clear()
            if self.http is not None:
                await self.http.close()
