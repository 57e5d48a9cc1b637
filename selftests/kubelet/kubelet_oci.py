"""A small OCI distribution client on plain `requests` (token flow, POST then PUT uploads, digests checked)."""
from __future__ import annotations

import hashlib
import json
import re

import requests


class RegistryError(Exception):
    def __init__(self, status: int, text: str, headers=None):
        super().__init__(f"{status}: {text[:300]}")
        self.status = status
        self.text = text
        self.headers = dict(headers or {})


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    """`base` like https://host:port; `password` an OpenShift API token (None: anonymous)."""

    def __init__(self, base: str, password: str | None = None, verify=False, user: str = "unused",
                 resolve: str | None = None):
        self.base = base.rstrip("/")
        self.auth = (user, password) if password else None
        self.verify = verify
        self.session = requests.Session()
        self.session.trust_env = False
        self.tokens: dict[str, str] = {}
        self.resolve = resolve  # "host:port" to connect to instead (the router), keeping the Host header

    def _url(self, path: str) -> str:
        return self.base + path

    def _send(self, method, url, headers=None, **kw):
        headers = dict(headers or {})
        if self.resolve:
            from urllib.parse import urlsplit
            u = urlsplit(url)
            headers["Host"] = u.netloc
            url = u._replace(netloc=self.resolve).geturl()
        return self.session.request(method, url, headers=headers, verify=self.verify, allow_redirects=False,
                                    timeout=30, **kw)

    def request(self, method, path_or_url, scope: str, headers=None, **kw) -> requests.Response:
        url = path_or_url if path_or_url.startswith("http") else self._url(path_or_url)
        headers = dict(headers or {})
        if scope in self.tokens:
            headers["Authorization"] = f"Bearer {self.tokens[scope]}"
        r = self._send(method, url, headers=headers, **kw)
        if r.status_code == 401 and scope not in self.tokens:
            challenge = r.headers.get("WWW-Authenticate", "")
            params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            realm = params["realm"]
            t = self._send("GET", realm, params={"service": params.get("service", ""), "scope": scope},
                           auth=self.auth)
            if t.status_code != 200:
                raise RegistryError(t.status_code, "token: " + t.text)
            self.tokens[scope] = t.json()["token"]
            headers["Authorization"] = f"Bearer {self.tokens[scope]}"
            if hasattr(kw.get("data"), "seek"):
                kw["data"].seek(0)
            r = self._send(method, url, headers=headers, **kw)
        return r

    def push_blob(self, repo: str, data: bytes) -> str:
        scope = f"repository:{repo}:pull,push"
        digest = _digest(data)
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope)
        if r.status_code != 202:
            raise RegistryError(r.status_code, r.text, r.headers)
        loc = r.headers["Location"]
        if not loc.startswith("http"):
            loc = self.base + loc
        sep = "&" if "?" in loc else "?"
        r = self.request("PUT", f"{loc}{sep}digest={digest}", scope, data=data,
                         headers={"Content-Type": "application/octet-stream"})
        if r.status_code != 201:
            raise RegistryError(r.status_code, r.text, r.headers)
        assert r.headers["Docker-Content-Digest"] == digest
        return digest

    def push_image(self, repo: str, tag: str, layer: bytes = b"hello layer\n") -> str:
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]}}).encode()
        cd = self.push_blob(repo, config)
        ld = self.push_blob(repo, layer)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)}],
        }).encode()
        r = self.request("PUT", f"/v2/{repo}/manifests/{tag}", f"repository:{repo}:pull,push", data=manifest,
                         headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        if r.status_code != 201:
            raise RegistryError(r.status_code, r.text, r.headers)
        assert r.headers["Docker-Content-Digest"] == _digest(manifest)
        return _digest(manifest)

    def pull_image(self, repo: str, tag: str) -> dict:
        """Pull and verify every digest; returns {"manifest": dict, "blobs": {digest: bytes}}."""
        scope = f"repository:{repo}:pull"
        r = self.request("GET", f"/v2/{repo}/manifests/{tag}", scope,
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        if r.status_code != 200:
            raise RegistryError(r.status_code, r.text, r.headers)
        manifest = r.json()
        if tag.startswith("sha256:"):
            assert _digest(r.content) == tag
        blobs = {}
        for desc in [manifest["config"]] + manifest["layers"]:
            b = self.request("GET", f"/v2/{repo}/blobs/{desc['digest']}", scope)
            if b.status_code in (302, 307) and "Location" in b.headers:   # storage redirect (S3)
                b = self._send("GET", b.headers["Location"])
            if b.status_code != 200:
                raise RegistryError(b.status_code, b.text)
            if _digest(b.content) != desc["digest"]:
                raise RegistryError(b.status_code, f"digest mismatch for {desc['digest']}")
            blobs[desc["digest"]] = b.content
        return {"manifest": manifest, "blobs": blobs}
