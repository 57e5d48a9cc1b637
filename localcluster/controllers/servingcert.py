"""ServiceCA: OpenShift's service-ca controllers, in the essentials.

- For every Service annotated `service.beta.openshift.io/serving-cert-secret-name` (or the alpha
  form), a `kubernetes.io/tls` secret of that name: `tls.crt` = leaf + signing CA, `tls.key`, for
  `<svc>.<ns>.svc` and `<svc>.<ns>.svc.cluster.local` (plus `*.<svc>.<ns>.svc` for headless
  services), annotated with the originating service's name and uid and the expiry, owned by the
  service. A deleted secret is issued again. A secret of that name that belongs to another service
  is left alone and the service gets `serving-cert-generation-error` annotations.
- In every namespace, configmap `openshift-service-ca.crt` with key `service-ca.crt` = the CA.
"""
from __future__ import annotations

import base64

from cryptography import x509

from localcluster.client import ApiError, path
from localcluster.controllers.deployment import Controller, is_terminating

BETA = "service.beta.openshift.io"
ALPHA = "service.alpha.openshift.io"
SECRET_NAME = "serving-cert-secret-name"
CA_CONFIGMAP = "openshift-service-ca.crt"
CA_KEY = "service-ca.crt"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def requested_secret(svc: dict) -> str | None:
    ann = svc.get("metadata", {}).get("annotations") or {}
    return ann.get(f"{BETA}/{SECRET_NAME}") or ann.get(f"{ALPHA}/{SECRET_NAME}")


def dns_names(svc: dict) -> list[str]:
    name, ns = svc["metadata"]["name"], svc["metadata"]["namespace"]
    names = [f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"]
    if (svc.get("spec") or {}).get("clusterIP") == "None":
        names += [f"*.{name}.{ns}.svc", f"*.{name}.{ns}.svc.cluster.local"]
    return names


class ServiceCA(Controller):
    component = "service-ca-controller"
    workers = 2

    def __init__(self, client, settings, ca=None, **extra):
        super().__init__(client, settings, **extra)
        if ca is None:
            raise ValueError("ServiceCA needs ca=CertificateAuthority")
        self.ca = ca
        self.signer = ca.cert.subject.rfc4514_string().removeprefix("CN=")
        self.services = self.informer(path("v1", "services"), self._on_service)
        self.secrets = self.informer(path("v1", "secrets"), self._on_secret)
        self.namespaces = self.informer(path("v1", "namespaces"), self._on_namespace)
        self.configmaps = self.informer(path("v1", "configmaps"), self._on_configmap)

    def _on_service(self, _type, obj):
        if requested_secret(obj):
            self.queue.add(("svc", obj["metadata"].get("namespace"), obj["metadata"]["name"]))

    def _on_secret(self, type_, obj):
        ns = obj["metadata"].get("namespace")
        for svc in self.services.items():
            if svc["metadata"].get("namespace") == ns and requested_secret(svc) == obj["metadata"]["name"]:
                self.queue.add(("svc", ns, svc["metadata"]["name"]))

    def _on_namespace(self, type_, obj):
        if type_ != "DELETED":
            self.queue.add(("ns", obj["metadata"]["name"], None))

    def _on_configmap(self, type_, obj):
        if obj["metadata"].get("name") == CA_CONFIGMAP:
            self.queue.add(("ns", obj["metadata"].get("namespace"), None))

    def enqueue_all(self):
        for n in self.namespaces.items():
            self.queue.add(("ns", n["metadata"]["name"], None))
        for s in self.services.items():
            self._on_service("ADDED", s)

    async def sync(self, key):
        if key[0] == "ns":
            await self._sync_namespace(key[1])
        else:
            await self._sync_service(key[1], key[2])

    async def _sync_namespace(self, ns):
        n = self.namespaces.get(None, ns)
        if n is None or is_terminating(n) or (n.get("status") or {}).get("phase") == "Terminating":
            return
        ca_pem = self.ca.cert_pem.decode()
        cm = self.configmaps.get(ns, CA_CONFIGMAP)
        if cm is not None and (cm.get("data") or {}).get(CA_KEY) == ca_pem:
            return
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": CA_CONFIGMAP, "namespace": ns,
                             "annotations": {f"{BETA}/inject-cabundle": "true"}},
                "data": {CA_KEY: ca_pem}}
        try:
            if cm is None:
                await self.client.create(path("v1", "configmaps", ns), body)
            else:
                await self.client.patch(path("v1", "configmaps", ns, CA_CONFIGMAP), {"data": {CA_KEY: ca_pem}})
        except ApiError as e:
            if e.status == 409:   # created meanwhile: check it on the next pass
                raise
            if e.status in (403, 404):   # namespace going away
                return
            raise

    async def _sync_service(self, ns, name):
        svc = self.services.get(ns, name)
        if svc is None or is_terminating(svc):
            return
        secret_name = requested_secret(svc)
        if not secret_name:
            return
        uid = svc["metadata"]["uid"]
        existing = self.secrets.get(ns, secret_name)
        if existing is None:
            try:
                existing = await self.client.get(path("v1", "secrets", ns, secret_name))
            except ApiError as e:
                if e.status != 404:
                    raise
        if existing is not None:
            ann = existing["metadata"].get("annotations") or {}
            owner_uid = ann.get(f"{BETA}/originating-service-uid") or ann.get(f"{ALPHA}/originating-service-uid")
            if owner_uid != uid:
                await self._mark_error(svc, f"secret/{secret_name} references serviceUID {owner_uid}, "
                                            f"which does not match {uid}")
                return
            if self._valid(existing, svc):
                await self._mark_signed(svc)
                return
        await self._issue(svc, secret_name, existing)
        await self._mark_signed(svc)

    def _valid(self, secret: dict, svc: dict) -> bool:
        try:
            pem = base64.b64decode((secret.get("data") or {}).get("tls.crt", ""))
            cert = x509.load_pem_x509_certificates(pem)[0]
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            return (cert.issuer == self.ca.cert.subject
                    and sorted(sans.get_values_for_type(x509.DNSName)) == sorted(dns_names(svc)))
        except Exception:  # noqa: BLE001 - anything unreadable is re-issued
            return False

    async def _issue(self, svc, secret_name, existing):
        ns, name, uid = svc["metadata"]["namespace"], svc["metadata"]["name"], svc["metadata"]["uid"]
        names = dns_names(svc)
        cert_pem, key_pem = self.ca.issue(names[0], dns_names=names)
        cert = x509.load_pem_x509_certificate(cert_pem)
        expiry = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        annotations = {}
        for prefix in (BETA, ALPHA):
            annotations[f"{prefix}/originating-service-name"] = name
            annotations[f"{prefix}/originating-service-uid"] = uid
            annotations[f"{prefix}/expiry"] = expiry
        body = {
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": secret_name, "namespace": ns, "annotations": annotations,
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name, "uid": uid}]},
            "data": {"tls.crt": _b64(cert_pem + self.ca.cert_pem), "tls.key": _b64(key_pem)},
        }
        if existing is None:
            await self.client.create(path("v1", "secrets", ns), body)
        else:
            body["metadata"]["resourceVersion"] = existing["metadata"].get("resourceVersion")
            await self.client.replace(path("v1", "secrets", ns, secret_name), body)

    async def _mark_signed(self, svc):
        ann = svc["metadata"].get("annotations") or {}
        want = {f"{BETA}/serving-cert-signed-by": self.signer, f"{ALPHA}/serving-cert-signed-by": self.signer}
        patch = {k: v for k, v in want.items() if ann.get(k) != v}
        for k in (f"{BETA}/serving-cert-generation-error", f"{BETA}/serving-cert-generation-error-num",
                  f"{ALPHA}/serving-cert-generation-error", f"{ALPHA}/serving-cert-generation-error-num"):
            if k in ann:
                patch[k] = None
        if patch:
            m = svc["metadata"]
            await self.client.patch(path("v1", "services", m["namespace"], m["name"]),
                                    {"metadata": {"annotations": patch}})

    async def _mark_error(self, svc, message):
        ann = svc["metadata"].get("annotations") or {}
        if ann.get(f"{BETA}/serving-cert-generation-error") == message:
            return
        num = int(ann.get(f"{BETA}/serving-cert-generation-error-num", "0") or 0) + 1
        patch = {f"{prefix}/{k}": v for prefix in (BETA, ALPHA)
                 for k, v in (("serving-cert-generation-error", message),
                              ("serving-cert-generation-error-num", str(num)))}
        m = svc["metadata"]
        await self.client.patch(path("v1", "services", m["namespace"], m["name"]),
                                {"metadata": {"annotations": patch}})
