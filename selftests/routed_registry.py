"""A local cluster (`python -m localcluster serve`) whose registry is Managed and exposed on its
`default-route`, for clients that push and pull through the route (selftests/router, bench/).

    with RoutedRegistry(tmp_path) as rr:
        rr.host            # the default-route host (does not resolve)
        rr.ingress_address # "127.0.0.1:PORT": the router, where to connect for route hosts
        rr.proxy_url       # the cluster network proxy: HTTPS_PROXY for clients without a connect-to option
        rr.ca_file         # the ingress CA (PEM file); rr.cert_dir holds it as ca.crt (skopeo --*-cert-dir)
        rr.token           # the admin's API token: the registry's password (user name ignored)

The registry is configured the way the procedure does (Managed, the storage given, defaultRoute) and the
helper waits, polling, until the Config says Available=True/Ready, Progressing=False and the route is
admitted.
"""
from __future__ import annotations

import time
from pathlib import Path

from utilities.kube import CONFIG_GVR, CONFIG_NAME, ROUTE_GVR, Cluster, load_cluster
from utilities.localcluster_process import LocalClusterProcess

IR = "openshift-image-registry"


def _cond(obj: dict, type_: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == type_), {})


class RoutedRegistry:
    def __init__(self, workdir: Path, extra_args=("--no-odf",), storage: dict | None = None,
                 replicas: int = 1, start_timeout: float = 90.0, ready_timeout: float = 120.0):
        self.workdir = Path(workdir)
        self.proc = LocalClusterProcess(self.workdir / "cluster", list(extra_args), start_timeout=start_timeout)
        self.storage = storage if storage is not None else {"emptyDir": {}}
        self.replicas = replicas
        self.ready_timeout = ready_timeout
        self.cluster: Cluster | None = None
        self.host = self.ingress_address = self.proxy_url = self.token = ""
        self.ca_file = self.workdir / "ingress-ca.pem"
        self.cert_dir = self.workdir / "certs"

    def start(self) -> "RoutedRegistry":
        self.proc.start()
        try:
            info = self.proc.info
            self.ingress_address = info["ingress_address"]
            self.proxy_url = info.get("proxy_url", "")
            self.cluster = load_cluster(self.proc.kubeconfig, embedded=True, ingress_address=self.ingress_address,
                                        info=info)
            self.token = self.cluster.token
            ca = self.cluster.router_ca_pem()
            self.ca_file.write_bytes(ca)
            self.cert_dir.mkdir(parents=True, exist_ok=True)
            (self.cert_dir / "ca.crt").write_bytes(ca)
            self.configure()
        except BaseException:
            self.proc.stop()
            raise
        return self

    def configure(self) -> None:
        c = self.cluster
        g, v, p = CONFIG_GVR
        deadline = time.monotonic() + self.ready_timeout
        while c.registry_config() is None:
            if time.monotonic() > deadline:
                raise AssertionError("the operator made no Config cluster")
            time.sleep(0.1)
        c.custom.patch_cluster_custom_object(g, v, p, CONFIG_NAME, {"spec": {
            "managementState": "Managed", "replicas": self.replicas, "defaultRoute": True,
            "storage": self.storage}})
        last = None
        while time.monotonic() < deadline:
            cfg = c.registry_config() or {}
            last = cfg
            route = None
            try:
                route = c.custom.get_namespaced_custom_object(ROUTE_GVR[0], ROUTE_GVR[1], IR, ROUTE_GVR[2],
                                                             "default-route")
            except Exception:  # noqa: BLE001 - not there yet
                pass
            admitted = route and any(c_.get("type") == "Admitted" and c_.get("status") == "True"
                                     for i in (route.get("status") or {}).get("ingress") or []
                                     for c_ in i.get("conditions") or [])
            if (_cond(cfg, "Available").get("reason") == "Ready" and _cond(cfg, "Progressing").get("status") == "False"
                    and admitted):
                self.host = route["spec"]["host"]
                if self._route_serves():
                    return
            time.sleep(0.1)
        raise AssertionError(f"registry not ready on its route within {self.ready_timeout}s: "
                             f"{(last or {}).get('status', {}).get('conditions')}")

    def _route_serves(self) -> bool:
        import requests
        from utilities.registry_client import RouteAdapter
        s = requests.Session()
        s.trust_env = False
        s.mount(f"https://{self.host}", RouteAdapter(self.host, self.ingress_address))
        try:
            return s.get(f"https://{self.host}/v2/", verify=str(self.ca_file), timeout=5).status_code == 401
        except requests.RequestException:
            return False
        finally:
            s.close()

    def client(self, **kwargs):
        from utilities.registry_client import RegistryClient
        return RegistryClient(self.host, ca_file=str(self.ca_file), token=self.token,
                              connect_to=self.ingress_address, **kwargs)

    def stop(self) -> None:
        self.proc.stop()

    def __enter__(self) -> "RoutedRegistry":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
