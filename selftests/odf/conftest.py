"""One local cluster (`python -m localcluster serve`, ODF on) for the ODF selftests, with helpers."""
from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from utilities.localcluster_process import LocalClusterProcess

NS = "openshift-storage"
OBC = ("objectbucket.io", "v1alpha1")
FAULTS = ("localcluster-system", "localcluster-faults")


def wait_for(fn, timeout=20.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


class Odf:
    def __init__(self, proc: LocalClusterProcess, tmp: Path):
        import kubernetes
        self.proc = proc
        self.info = proc.info
        self.api = kubernetes.config.new_client_from_config(config_file=str(proc.kubeconfig))
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.co = kubernetes.client.CustomObjectsApi(self.api)
        self.apps = kubernetes.client.AppsV1Api(self.api)
        import yaml
        kc = yaml.safe_load(Path(proc.kubeconfig).read_text())
        self.token = next(u["user"]["token"] for u in kc["users"] if u["name"] == "admin")
        crt = self.core.read_namespaced_secret("router-certs-default", "openshift-ingress").data["tls.crt"]
        self.ingress_bundle = base64.b64decode(crt)
        self.ca_file = tmp / "ingress-ca.pem"
        self.ca_file.write_bytes(self.ingress_bundle)

    # ---------------------------------------------------------------- objects
    def route_host(self, name: str) -> str:
        return self.co.get_namespaced_custom_object("route.openshift.io", "v1", NS, "routes", name)["spec"]["host"]

    def create_obc(self, name: str, storage_class: str, **spec) -> None:
        body = {"apiVersion": "objectbucket.io/v1alpha1", "kind": "ObjectBucketClaim",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"storageClassName": storage_class, **spec}}
        if "bucketName" not in spec:
            body["spec"].setdefault("generateBucketName", name)
        self.co.create_namespaced_custom_object(*OBC, NS, "objectbucketclaims", body)

    def obc(self, name: str) -> dict | None:
        import kubernetes
        try:
            return self.co.get_namespaced_custom_object(*OBC, NS, "objectbucketclaims", name)
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                return None
            raise

    def wait_bound(self, name: str) -> dict:
        return wait_for(lambda: (o := self.obc(name)) and (o.get("status") or {}).get("phase") == "Bound" and o,
                        what=f"OBC {name} Bound")

    def obc_keys(self, name: str) -> tuple[str, str]:
        d = self.core.read_namespaced_secret(name, NS).data
        return base64.b64decode(d["AWS_ACCESS_KEY_ID"]).decode(), base64.b64decode(d["AWS_SECRET_ACCESS_KEY"]).decode()

    def delete_obc(self, name: str) -> None:
        self.co.delete_namespaced_custom_object(*OBC, NS, "objectbucketclaims", name)
        wait_for(lambda: self.obc(name) is None, what=f"OBC {name} gone")

    def s3(self, route: str, key: str, secret: str, verify=None):
        """boto3 against `https://<route host>` through the cluster proxy (router, ingress CA)."""
        import boto3
        from botocore.config import Config
        proxy = self.info["proxy_url"]
        return boto3.session.Session().client(
            "s3", endpoint_url=f"https://{self.route_host(route)}", region_name="us-east-1",
            aws_access_key_id=key, aws_secret_access_key=secret,
            verify=str(self.ca_file) if verify is None else verify,
            config=Config(proxies={"https": proxy, "http": proxy}, retries={"max_attempts": 1},
                          connect_timeout=5, read_timeout=20, s3={"addressing_style": "path"}))

    def set_fault(self, key: str, value: str | None) -> None:
        self.core.patch_namespaced_config_map(FAULTS[1], FAULTS[0], {"data": {key: value}})


@pytest.fixture(scope="session")
def odf(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("odf")
    proc = LocalClusterProcess(tmp / "cluster", start_timeout=60)
    proc.start()
    try:
        yield Odf(proc, tmp)
    finally:
        proc.stop()
