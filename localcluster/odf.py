"""OpenShift Data Foundation on the local cluster: real S3 servers and the ObjectBucketClaim provisioner.

- `S3Server`: one moto server process (plain HTTP on 127.0.0.1, on a socket it inherits; own process group,
  killed at exit) that CHECKS SIGNATURES: it starts with `INITIAL_NO_AUTH_ACTION_COUNT=3`, and those
  three unauthenticated calls create the `odf-admin` IAM user (inline policy `*`) and its key. From then
  on every request must be signed by a known key, and IAM policies are enforced.
  Two of them: `rgw` (Ceph RGW, behind service `rook-ceph-rgw-ocs-storagecluster-cephobjectstore` and
  route `ocs-storagecluster-cephobjectstore`) and `noobaa` (NooBaa, service and route `s3`).
- `seed_odf(client, settings, odf)`: namespace `openshift-storage`, the four ODF StorageClasses,
  selectorless Services + Endpoints pointing at the servers, edge Routes.
- `ObjectBucketProvisioner`: ObjectBucketClaim (objectbucket.io/v1alpha1) -> bucket, IAM user with an
  inline policy `s3:*` on that bucket, access key, Secret + ConfigMap `<obc>`, ObjectBucket
  `obc-<ns>-<name>`, `status.phase: Bound`; finalizer `objectbucket.io/finalizer` for the clean-up.
  It also runs the `s3.dropWrites` fault knob.
"""
from __future__ import annotations

import asyncio
import atexit
import base64
import datetime
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from localcluster import settings as S
from localcluster.client import ApiError, Informer, path

log = logging.getLogger("localcluster.odf")

NAMESPACE = "openshift-storage"
OBC_API = "objectbucket.io/v1alpha1"
OBC_FINALIZER = "objectbucket.io/finalizer"
RGW_PROVISIONER = "openshift-storage.ceph.rook.io/bucket"
NOOBAA_PROVISIONER = "openshift-storage.noobaa.io/obc"
RGW_CLASS = "ocs-storagecluster-ceph-rgw"
NOOBAA_CLASS = "openshift-storage.noobaa.io"
CEPHFS_CLASS = "ocs-storagecluster-cephfs"
RBD_CLASS = "ocs-storagecluster-ceph-rbd"
REGION = "us-east-1"
COMPONENT = "objectbucket-provisioner"

FAULT_WRONG_KEYS = "obc.wrongKeys"
FAULT_SHADOW_BUCKET = "obc.shadowBucket"      # issue 9
FAULT_DROP_WRITES = "s3.dropWrites"

# Environment variables a moto process must not inherit (CA bundles, proxies: it serves plain HTTP).
_SCRUBBED_ENV = ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "HTTP_PROXY",
                 "HTTPS_PROXY", "http_proxy", "https_proxy", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN", "AWS_PROFILE")


@dataclass(frozen=True)
class Backend:
    """One object store as ODF exposes it: service, route, bucket provisioner."""
    key: str                 # "rgw" | "noobaa"
    provisioner: str
    service: str
    route: str
    port_name: str
    bucket_port: int         # BUCKET_PORT in the OBC configmap

    @property
    def service_host(self) -> str:
        return f"{self.service}.{NAMESPACE}.svc"


RGW = Backend("rgw", RGW_PROVISIONER, "rook-ceph-rgw-ocs-storagecluster-cephobjectstore",
              "ocs-storagecluster-cephobjectstore", "http", 80)
NOOBAA = Backend("noobaa", NOOBAA_PROVISIONER, "s3", "s3", "s3", 80)
BACKENDS = (RGW, NOOBAA)


def route_host(backend: Backend, apps_domain: str = S.APPS_DOMAIN) -> str:
    return f"{backend.route}-{NAMESPACE}.{apps_domain}"


# --------------------------------------------------------------------------- processes
_LIVE_PGIDS: set[int] = set()


def _kill_all_at_exit() -> None:
    for pgid in list(_LIVE_PGIDS):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    _LIVE_PGIDS.clear()


atexit.register(_kill_all_at_exit)


def _child_setup() -> None:  # between fork and exec: die with the parent
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # pragma: no cover
        pass


def _listener(host: str = "127.0.0.1") -> socket.socket:
    """A listening socket on a port the kernel picks, for the server process to inherit. Handing the
    process a port number instead (bind, close, let the child bind again) leaves a gap in which any
    socket bound to port 0, in this process or another, can get the same port; the S3 server then
    fails to bind and its clients talk to that socket's owner (CI: the IAM bootstrap was answered by a
    network proxy)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def moto_command(host: str, fd: int) -> list[str]:
    # moto's server, taught presigned URLs (storage redirects, facts §12.3), serving on an inherited
    # listening socket: localcluster/s3server.py
    return [sys.executable, "-m", "localcluster.s3server", "-H", host, "--fd", str(fd)]


def admin_policy() -> str:
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def bucket_policy(bucket: str) -> str:
    """The inline policy of an OBC's user: everything on its own bucket, nothing else."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]})


def _boto_client(service: str, endpoint: str, key: str, secret: str):
    import boto3
    from botocore.config import Config
    return boto3.session.Session().client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id=key,
        aws_secret_access_key=secret, verify=False,
        config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2},
                      s3={"addressing_style": "path"}, proxies={}))


class S3Server:
    """One signature-checking moto S3/IAM server process."""

    def __init__(self, name: str, state_dir: Path, host: str = "127.0.0.1"):
        self.name = name
        self.host = host
        self.port: Optional[int] = None
        self.dir = Path(state_dir) / "odf" / name
        self.proc: Optional[subprocess.Popen] = None
        self.admin_key = self.admin_secret = ""
        self._clients: dict = {}

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start_sync(self, timeout: float = 30.0) -> None:
        self.spawn()
        self.bootstrap(timeout)

    def spawn(self) -> None:
        """Start the process. Call it from a long-lived thread (the event loop's): PR_SET_PDEATHSIG
        kills the child when the thread that forked it ends."""
        self.dir.mkdir(parents=True, exist_ok=True)
        listener = _listener(self.host)
        self.port = listener.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        env["MOTO_ALLOW_NONEXISTENT_REGION"] = "true"
        # Path-style only: route hosts (ocs-...-openshift-storage.apps...) are not "<bucket>.<s3 host>".
        env["S3_IGNORE_SUBDOMAIN_BUCKETNAME"] = "true"
        repo_root = str(Path(__file__).resolve().parent.parent)   # for `-m localcluster.s3server`
        env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH")) if p)
        env["MOTO_PORT"] = str(self.port)
        logf = open(self.dir / "moto.log", "ab")
        try:
            self.proc = subprocess.Popen(moto_command(self.host, listener.fileno()), env=env,
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=_child_setup, cwd=self.dir,
                                         pass_fds=(listener.fileno(),))
        finally:
            logf.close()
            listener.close()   # the child's copy is the only one: if it dies, connections are refused
        _LIVE_PGIDS.add(self.proc.pid)

    def bootstrap(self, timeout: float = 30.0) -> None:
        """Create the admin user and key (the 3 unauthenticated actions). The socket listens from before
        the process starts, so the first call waits in its backlog until moto serves."""
        deadline = time.monotonic() + timeout
        # The three unauthenticated actions: the admin user, its policy, its key. Plain signed IAM
        # query requests: a boto3 client would load the whole IAM model (most of a second) at start-up.
        self._iam("CreateUser", deadline, UserName="odf-admin")
        self._iam("PutUserPolicy", deadline, UserName="odf-admin", PolicyName="odf-admin",
                  PolicyDocument=admin_policy())
        root = self._iam("CreateAccessKey", deadline, UserName="odf-admin")
        self.admin_key = next(e.text for e in root.iter() if e.tag.endswith("AccessKeyId"))
        self.admin_secret = next(e.text for e in root.iter() if e.tag.endswith("SecretAccessKey"))
        log.info("S3 server %s (moto) at %s", self.name, self.endpoint)

    def _iam(self, action: str, deadline: float, **params):
        """One IAM query API call (form POST, SigV4 with the bootstrap key); the parsed XML answer."""
        import urllib.error
        import urllib.parse
        import urllib.request
        import xml.etree.ElementTree as ET

        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        body = urllib.parse.urlencode({"Action": action, "Version": "2010-05-08", **params})
        req = AWSRequest(method="POST", url=self.endpoint + "/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        SigV4Auth(Credentials("bootstrap", "bootstrap"), "iam", REGION).add_auth(req)
        prepared = req.prepare()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        http = urllib.request.Request(prepared.url, data=body.encode(), headers=dict(prepared.headers), method="POST")
        try:
            with opener.open(http, timeout=max(1.0, deadline - time.monotonic())) as resp:
                return ET.fromstring(resp.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"moto server {self.name}: IAM {action}: HTTP {e.code}: {e.read()[:300]!r}") from None
        except OSError as e:   # refused or reset: the process died; timed out: it never served
            code = None
            if self.proc is not None:
                try:   # a dying process closes its socket (the reset) a moment before it can be reaped
                    code = self.proc.wait(2)
                except subprocess.TimeoutExpired:
                    pass
            state = f"exited with {code}" if code is not None else "did not answer"
            self.stop_sync()
            raise RuntimeError(f"moto server {self.name} {state} (IAM {action}: {e}); "
                               f"see {self.dir / 'moto.log'}") from None

    def client(self, service: str = "s3"):
        """A boto3 client with the admin key (signed requests; straight to the process)."""
        if service not in self._clients:
            self._clients[service] = _boto_client(service, self.endpoint, self.admin_key, self.admin_secret)
        return self._clients[service]

    def stop_sync(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(3)
            except ProcessLookupError:
                pass
        _LIVE_PGIDS.discard(self.proc.pid)
        self.proc = None

    # ---------------------------------------------------------------- bucket operations (blocking)
    def create_bucket(self, bucket: str) -> None:
        s3 = self.client("s3")
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass

    def create_user(self, user: str, bucket: str) -> tuple[str, str]:
        iam = self.client("iam")
        try:
            iam.create_user(UserName=user)
        except iam.exceptions.EntityAlreadyExistsException:
            pass
        iam.put_user_policy(UserName=user, PolicyName=f"{user}-bucket", PolicyDocument=bucket_policy(bucket))
        k = iam.create_access_key(UserName=user)["AccessKey"]
        return k["AccessKeyId"], k["SecretAccessKey"]

    def allow_user(self, user: str, bucket: str) -> None:
        self.client("iam").put_user_policy(UserName=user, PolicyName=f"{user}-{bucket}",
                                           PolicyDocument=bucket_policy(bucket))

    def delete_user(self, user: str) -> None:
        iam = self.client("iam")
        try:
            for k in iam.list_access_keys(UserName=user).get("AccessKeyMetadata") or []:
                iam.delete_access_key(UserName=user, AccessKeyId=k["AccessKeyId"])
            for p in iam.list_user_policies(UserName=user).get("PolicyNames") or []:
                iam.delete_user_policy(UserName=user, PolicyName=p)
            iam.delete_user(UserName=user)
        except iam.exceptions.NoSuchEntityException:
            pass

    def empty_bucket(self, bucket: str, newer_than: Optional[datetime.datetime] = None) -> int:
        """Delete every object (or those modified at/after `newer_than`); returns how many."""
        s3 = self.client("s3")
        n = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [o["Key"] for o in page.get("Contents") or []
                    if newer_than is None or o["LastModified"] >= newer_than]
            for i in range(0, len(keys), 1000):
                s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]],
                                                         "Quiet": True})
                n += len(keys[i:i + 1000])
        for up in s3.list_multipart_uploads(Bucket=bucket).get("Uploads") or []:
            if newer_than is None or up["Initiated"] >= newer_than:
                s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
        return n

    def delete_bucket(self, bucket: str) -> None:
        s3 = self.client("s3")
        try:
            self.empty_bucket(bucket)
            s3.delete_bucket(Bucket=bucket)
        except s3.exceptions.NoSuchBucket:
            pass

    def buckets(self) -> list[str]:
        return [b["Name"] for b in self.client("s3").list_buckets().get("Buckets") or []]


class ODF:
    """Both S3 servers of the local ODF; started before the seed, stopped with the cluster."""

    def __init__(self, settings: S.Settings):
        self.settings = settings
        self.servers = {b.key: S3Server(b.key, settings.state_dir) for b in BACKENDS}
        self._starting: asyncio.Future | None = None

    def server(self, backend: Backend) -> S3Server:
        return self.servers[backend.key]

    def begin(self) -> asyncio.Future:
        """Spawn the servers and bootstrap them in the background, so that their start-up (a Python
        process importing moto, then boto3 calls) overlaps the rest of the cluster's; `start()` awaits it."""
        if self._starting is None:
            loop = asyncio.get_running_loop()
            for s in self.servers.values():
                s.spawn()
            self._starting = asyncio.gather(*(loop.run_in_executor(None, s.bootstrap)
                                              for s in self.servers.values()))
        return self._starting

    async def start(self) -> None:
        try:
            await self.begin()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, s.stop_sync) for s in self.servers.values()),
                             return_exceptions=True)


def backend_for_provisioner(provisioner: str) -> Optional[Backend]:
    return next((b for b in BACKENDS if b.provisioner == provisioner), None)


# --------------------------------------------------------------------------- seed
def storage_classes() -> list[dict]:
    def sc(name, provisioner, parameters, **extra):
        return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
                "provisioner": provisioner, "parameters": parameters, "reclaimPolicy": "Delete",
                "volumeBindingMode": "Immediate", **extra}
    return [
        sc(CEPHFS_CLASS, "openshift-storage.cephfs.csi.ceph.com",
           {"clusterID": NAMESPACE, "fsName": "ocs-storagecluster-cephfilesystem"}, allowVolumeExpansion=True),
        sc(RBD_CLASS, "openshift-storage.rbd.csi.ceph.com",
           {"clusterID": NAMESPACE, "pool": "ocs-storagecluster-cephblockpool", "imageFormat": "2",
            "imageFeatures": "layering"}, allowVolumeExpansion=True),
        sc(RGW_CLASS, RGW_PROVISIONER,
           {"objectStoreName": "ocs-storagecluster-cephobjectstore", "objectStoreNamespace": NAMESPACE,
            "region": REGION}),
        sc(NOOBAA_CLASS, NOOBAA_PROVISIONER, {"bucketclass": "noobaa-default-bucket-class"}),
    ]


def route_tls(backend: Backend, odf_version: str = "4.18") -> dict | None:
    """spec.tls of an object store's route: ocs-operator release-4.12 creates the RGW route without TLS
    (plain HTTP, controllers/storagecluster/routes.go); from 4.13 it is an edge route with
    insecureEdgeTerminationPolicy Allow (operator-facts §12.9). NooBaa's `s3` route is edge throughout."""
    if backend is RGW and S.version_tuple(odf_version) < (4, 13):
        return None
    return {"termination": "edge", "insecureEdgeTerminationPolicy": "Allow"}


def service_objects(backend: Backend, server: S3Server, odf_version: str = "4.18") -> list[tuple[str, dict]]:
    """(collection path, body) of the Service, Endpoints and Route of one object store."""
    route_spec = {"to": {"kind": "Service", "name": backend.service, "weight": 100},
                  "port": {"targetPort": backend.port_name}, "wildcardPolicy": "None"}
    tls = route_tls(backend, odf_version)
    if tls:
        route_spec["tls"] = tls
    labels = {"app": "rook-ceph-rgw" if backend is RGW else "noobaa"}
    ports = [{"name": backend.port_name, "port": 80, "targetPort": server.port, "protocol": "TCP"}]
    return [
        (path("v1", "services", NAMESPACE), {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": backend.service, "namespace": NAMESPACE, "labels": labels},
            "spec": {"ports": ports, "type": "ClusterIP"}}),
        (path("v1", "endpoints", NAMESPACE), {
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": backend.service, "namespace": NAMESPACE, "labels": labels},
            "subsets": [{"addresses": [{"ip": server.host}],
                         "ports": [{"name": backend.port_name, "port": server.port, "protocol": "TCP"}]}]}),
        (path("route.openshift.io/v1", "routes", NAMESPACE), {
            "apiVersion": "route.openshift.io/v1", "kind": "Route",
            "metadata": {"name": backend.route, "namespace": NAMESPACE, "labels": labels},
            "spec": route_spec}),
    ]


async def _create(client, collection: str, body: dict) -> None:
    try:
        await client.create(collection, body)
    except ApiError as e:
        if e.status != 409:
            raise


async def seed_odf(client, settings: S.Settings, odf: ODF) -> None:
    await _create(client, path("v1", "namespaces"), {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {"kubernetes.io/metadata.name": NAMESPACE,
                                                    "openshift.io/cluster-monitoring": "true"}}})
    for sc in storage_classes():
        await _create(client, path("storage.k8s.io/v1", "storageclasses"), sc)
    for b in BACKENDS:
        for collection, body in service_objects(b, odf.server(b), settings.odf_version):
            await _create(client, collection, body)


# --------------------------------------------------------------------------- OBC provisioner
def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def generated_bucket_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


def wrong_secret(secret: str) -> str:
    """A secret key of the same shape that the S3 server rejects (SignatureDoesNotMatch)."""
    out = secret
    while out == secret:
        out = "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                      for _ in secret)
    return out


def user_name(ns: str, name: str) -> str:
    return f"obc-{ns}-{name}"


def _owner_ref(obc: dict) -> dict:
    return {"apiVersion": OBC_API, "kind": "ObjectBucketClaim", "name": obc["metadata"]["name"],
            "uid": obc["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def obc_configmap(obc: dict, backend: Backend, bucket: str) -> dict:
    m = obc["metadata"]
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": m["name"], "namespace": m["namespace"], "ownerReferences": [_owner_ref(obc)],
                         "labels": {"bucket-provisioner": backend.provisioner.replace("/", "-")}},
            "data": {"BUCKET_HOST": backend.service_host, "BUCKET_NAME": bucket,
                     "BUCKET_PORT": str(backend.bucket_port), "BUCKET_REGION": REGION, "BUCKET_SUBREGION": ""}}


def obc_secret(obc: dict, backend: Backend, key: str, secret: str) -> dict:
    m = obc["metadata"]
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": m["name"], "namespace": m["namespace"], "ownerReferences": [_owner_ref(obc)],
                         "labels": {"bucket-provisioner": backend.provisioner.replace("/", "-")}},
            "data": {"AWS_ACCESS_KEY_ID": _b64(key), "AWS_SECRET_ACCESS_KEY": _b64(secret)}}


def object_bucket(obc: dict, sc: dict, backend: Backend, bucket: str) -> dict:
    m = obc["metadata"]
    return {"apiVersion": OBC_API, "kind": "ObjectBucket",
            "metadata": {"name": f"obc-{m['namespace']}-{m['name']}", "finalizers": [OBC_FINALIZER],
                         "labels": {"bucket-provisioner": backend.provisioner.replace("/", "-")}},
            "spec": {"storageClassName": sc["metadata"]["name"],
                     "reclaimPolicy": sc.get("reclaimPolicy") or "Delete",
                     "claimRef": {"apiVersion": OBC_API, "kind": "ObjectBucketClaim", "name": m["name"],
                                  "namespace": m["namespace"], "uid": m["uid"]},
                     "endpoint": {"bucketHost": backend.service_host, "bucketPort": backend.bucket_port,
                                  "bucketName": bucket, "region": REGION, "subRegion": "",
                                  "additionalConfig": {}},
                     "authentication": {}, "additionalState": {"cephUser": user_name(m["namespace"], m["name"])}}}


class ObjectBucketProvisioner:
    """The lib-bucket-provisioner for both ODF bucket provisioners, as a client of the API."""

    def __init__(self, client, settings: S.Settings, odf: ODF, **extra):
        self.client = client
        self.settings = settings
        self.odf = odf
        self.queue: asyncio.Queue = asyncio.Queue()
        self._queued: set = set()
        self.obcs = self.classes = self.faults_informer = None
        self._drop_since: Optional[datetime.datetime] = None

    # ---------------------------------------------------------------- helpers
    def faults(self) -> dict:
        cm = self.faults_informer.get(S.FAULTS_NAMESPACE, S.FAULTS_CONFIGMAP) if self.faults_informer else None
        return dict((cm or {}).get("data") or {})

    def _fault(self, key: str) -> bool:
        return self.faults().get(key, "").strip().lower() == "true"

    def enqueue(self, ns: str, name: str) -> None:
        if (ns, name) not in self._queued:
            self._queued.add((ns, name))
            self.queue.put_nowait((ns, name))

    async def _on_obc(self, etype: str, obc: dict) -> None:
        m = obc.get("metadata") or {}
        if etype != "DELETED":
            self.enqueue(m.get("namespace"), m.get("name"))

    async def _on_class(self, etype: str, sc: dict) -> None:
        name = (sc.get("metadata") or {}).get("name")
        for obc in self.obcs.items() if self.obcs else []:
            if (obc.get("spec") or {}).get("storageClassName") == name and \
                    ((obc.get("status") or {}).get("phase") != "Bound"):
                self.enqueue(obc["metadata"]["namespace"], obc["metadata"]["name"])

    async def _get(self, p: str) -> Optional[dict]:
        return await self.client.get_or_none(p)

    async def _delete(self, p: str) -> None:
        await self.client.delete_if_exists(p)

    async def _blocking(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def _event(self, obc: dict, type_: str, reason: str, message: str) -> None:
        from localcluster.controllers.events import record
        await record(self.client, obc, type_, reason, message, COMPONENT)

    # ---------------------------------------------------------------- reconcile
    async def reconcile(self, ns: str, name: str) -> None:
        p = path(OBC_API, "objectbucketclaims", ns, name)
        obc = await self._get(p)
        if obc is None:
            return
        meta, spec = obc["metadata"], obc.get("spec") or {}
        if meta.get("deletionTimestamp"):
            if OBC_FINALIZER in (meta.get("finalizers") or []):
                await self.deprovision(obc)
            return
        if (obc.get("status") or {}).get("phase") == "Bound":
            return
        class_name = spec.get("storageClassName") or ""
        sc = await self._get(path("storage.k8s.io/v1", "storageclasses", None, class_name)) if class_name else None
        if sc is None:
            msg = (f'storageclass.storage.k8s.io "{class_name}" not found' if class_name
                   else "no storageClassName given")
            await self._event(obc, "Warning", "ProvisioningFailed", f"failed to provision bucket: {msg}")
            if (obc.get("status") or {}).get("phase") != "Pending":
                await self.client.patch(p + "/status", {"status": {"phase": "Pending"}})
            return
        backend = backend_for_provisioner(sc.get("provisioner") or "")
        if backend is None:
            return   # another provisioner's claim
        bucket = spec.get("bucketName") or ""
        if not bucket:
            prefix = spec.get("generateBucketName") or ""
            if not prefix:
                await self._event(obc, "Warning", "ProvisioningFailed",
                                  "expected either bucketName or generateBucketName defined")
                return
            bucket = generated_bucket_name(prefix)
        # Finalizer and bucket name first, so a retry reuses the name and deletion cleans up.
        finalizers = list(meta.get("finalizers") or [])
        if OBC_FINALIZER not in finalizers:
            finalizers.append(OBC_FINALIZER)
        obc = await self.client.patch(p, {"metadata": {"finalizers": finalizers,
                                                       "resourceVersion": meta.get("resourceVersion")},
                                          "spec": {"bucketName": bucket}})
        server = self.odf.server(backend)
        user = user_name(ns, name)
        try:
            await self._blocking(server.create_bucket, bucket)
            key, secret = await self._blocking(server.create_user, user, bucket)
            if self._fault(FAULT_SHADOW_BUCKET):
                # Fault (issue 9): a second bucket "<bucket>-shadow" the claim's user may write too (for
                # operator.s3BucketSuffix: a registry that writes somewhere else than the claimed bucket).
                shadow = bucket[:63 - len("-shadow")] + "-shadow"     # bucket names end at 63 characters
                await self._blocking(server.create_bucket, shadow)
                await self._blocking(server.allow_user, user, shadow)
        except Exception as e:  # noqa: BLE001 - a botocore error: report it and retry later
            await self._event(obc, "Warning", "ProvisioningFailed", f"failed to provision bucket: {e}")
            raise
        if self._fault(FAULT_WRONG_KEYS):
            secret = wrong_secret(secret)
        for collection, body in ((path("v1", "secrets", ns), obc_secret(obc, backend, key, secret)),
                                 (path("v1", "configmaps", ns), obc_configmap(obc, backend, bucket))):
            try:
                await self.client.create(collection, body)
            except ApiError as e:
                if e.status != 409:
                    raise
                await self.client.replace(f"{collection}/{name}", body)
        ob = object_bucket(obc, sc, backend, bucket)
        try:
            await self.client.create(path(OBC_API, "objectbuckets"), ob)
        except ApiError as e:
            if e.status != 409:
                raise
        await self.client.patch(path(OBC_API, "objectbuckets", None, ob["metadata"]["name"], "status"),
                                {"status": {"phase": "Bound"}})
        await self.client.patch(p, {"spec": {"bucketName": bucket, "objectBucketName": ob["metadata"]["name"]}})
        await self.client.patch(p + "/status", {"status": {"phase": "Bound"}})
        log.info("ObjectBucketClaim %s/%s bound to bucket %s on %s", ns, name, bucket, backend.key)

    async def deprovision(self, obc: dict) -> None:
        meta, spec = obc["metadata"], obc.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        ob_name = spec.get("objectBucketName") or f"obc-{ns}-{name}"
        ob = await self._get(path(OBC_API, "objectbuckets", None, ob_name))
        sc = await self._get(path("storage.k8s.io/v1", "storageclasses", None, spec.get("storageClassName") or ""))
        provisioner = (sc or {}).get("provisioner") or ""
        if ob is not None:
            reclaim = (ob.get("spec") or {}).get("reclaimPolicy") or "Delete"
            backend = backend_for_provisioner(provisioner) or (
                RGW if (ob.get("metadata") or {}).get("labels", {}).get("bucket-provisioner", "").startswith(
                    "openshift-storage.ceph") else NOOBAA)
        else:
            reclaim = (sc or {}).get("reclaimPolicy") or "Delete"
            backend = backend_for_provisioner(provisioner)
        bucket = spec.get("bucketName") or ""
        if backend is not None:
            server = self.odf.server(backend)
            if bucket and reclaim == "Delete":
                await self._blocking(server.delete_bucket, bucket)
            await self._blocking(server.delete_user, user_name(ns, name))
        if ob is not None:
            await self.client.patch(path(OBC_API, "objectbuckets", None, ob_name),
                                    {"metadata": {"finalizers": [f for f in ob["metadata"].get("finalizers") or []
                                                                 if f != OBC_FINALIZER]}})
            await self._delete(path(OBC_API, "objectbuckets", None, ob_name))
        await self._delete(path("v1", "secrets", ns, name))
        await self._delete(path("v1", "configmaps", ns, name))
        await self.client.patch(path(OBC_API, "objectbucketclaims", ns, name), {"metadata": {
            "finalizers": [f for f in meta.get("finalizers") or [] if f != OBC_FINALIZER],
            "resourceVersion": meta.get("resourceVersion")}})
        log.info("ObjectBucketClaim %s/%s released (bucket %s, reclaimPolicy %s)", ns, name, bucket, reclaim)

    # ---------------------------------------------------------------- s3.dropWrites
    def _drop_new_objects(self, since: datetime.datetime) -> int:
        n = 0
        for server in self.odf.servers.values():
            for bucket in server.buckets():
                try:
                    n += server.empty_bucket(bucket, newer_than=since)
                except Exception as e:  # noqa: BLE001 - a bucket deleted meanwhile
                    log.debug("dropWrites %s/%s: %s", server.name, bucket, e)
        return n

    async def _drop_writes_loop(self) -> None:
        while True:
            await asyncio.sleep(0.3)
            if not self._fault(FAULT_DROP_WRITES):
                self._drop_since = None
                continue
            if self._drop_since is None:
                # S3 LastModified has whole seconds: start of the second half a second ago.
                self._drop_since = (datetime.datetime.now(datetime.timezone.utc)
                                    - datetime.timedelta(seconds=0.5)).replace(microsecond=0)
            try:
                n = await self._blocking(self._drop_new_objects, self._drop_since)
                if n:
                    log.info("s3.dropWrites: dropped %d new object(s)", n)
            except Exception as e:  # noqa: BLE001
                log.warning("s3.dropWrites failed: %s", e)

    # ---------------------------------------------------------------- loop
    async def _worker(self) -> None:
        while True:
            ns, name = await self.queue.get()
            self._queued.discard((ns, name))
            try:
                await self.reconcile(ns, name)
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                if e.status == 409:
                    self.enqueue(ns, name)
                else:
                    log.warning("ObjectBucketClaim %s/%s: %s", ns, name, e)
                    asyncio.get_running_loop().call_later(2.0, self.enqueue, ns, name)
            except Exception:  # noqa: BLE001 - a controller keeps running
                log.exception("ObjectBucketClaim %s/%s failed", ns, name)
                asyncio.get_running_loop().call_later(2.0, self.enqueue, ns, name)

    async def run(self) -> None:
        resync = self.settings.resync_seconds
        self.faults_informer = Informer(self.client, path("v1", "configmaps", S.FAULTS_NAMESPACE), None,
                                        resync=resync)
        self.obcs = Informer(self.client, path(OBC_API, "objectbucketclaims"), self._on_obc, resync=resync)
        self.classes = Informer(self.client, path("storage.k8s.io/v1", "storageclasses"), self._on_class,
                                resync=resync)
        tasks = [asyncio.create_task(i.run()) for i in (self.faults_informer, self.obcs, self.classes)]
        tasks.append(asyncio.create_task(self._drop_writes_loop()))
        try:
            await self.faults_informer.synced.wait()
            await self._worker()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["BACKENDS", "NOOBAA", "RGW", "ODF", "ObjectBucketProvisioner", "S3Server", "seed_odf",
           "storage_classes", "route_host", "backend_for_provisioner", "bucket_policy", "wrong_secret"]
