"""A minimal S3 client for the checks: ListObjectsV2 signed with SigV4 (botocore's signer), sent with
`requests` through the suite's RouteAdapter, so a route host that DNS does not know is reached at the
ingress address while SNI, Host and the certificate check are all for the route host.

    keys = list_objects("https://HOST", bucket, access_key, secret_key, ca_file=..., connect_to="127.0.0.1:8443",
                        prefix="docker/registry/v2/")

The endpoint's scheme is the route's: ODF 4.12's RGW route is plain HTTP (no certificate to verify).

Nothing from the environment is used (trust_env=False; `verify=` is the CA file given).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import quote, urlencode

import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from utilities.registry_client import RouteAdapter

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class S3Error(AssertionError):
    """The S3 endpoint answered an error (its code and message are in the text)."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


def _error(resp: requests.Response, what: str) -> S3Error:
    code = message = None
    try:
        root = ET.fromstring(resp.content)
        code = root.findtext("Code") or root.findtext(f"{S3_NS}Code")
        message = root.findtext("Message") or root.findtext(f"{S3_NS}Message")
    except ET.ParseError:
        pass
    text = f"{what}: HTTP {resp.status_code}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    if not code:
        text += f": {resp.text[:300]}"
    return S3Error(text, resp.status_code, code)


def list_objects(endpoint: str, bucket: str, access_key: str, secret_key: str, *, ca_file: str,
                 connect_to: str | None = None, prefix: str = "", region: str = "us-east-1",
                 timeout: float = 30.0) -> list[str]:
    """Every key of `bucket` under `prefix` (path-style ENDPOINT/bucket?list-type=2, paginated).
    `endpoint`: "https://HOST" or "http://HOST" (the regionEndpoint); a bare HOST means https."""
    scheme, sep, host = endpoint.partition("://")
    if not sep:
        scheme, host = "https", endpoint
    host = host.rstrip("/")
    base = f"{scheme}://{host}"
    session = requests.Session()
    session.trust_env = False
    if connect_to:
        session.mount(base, RouteAdapter(host, connect_to))
    creds = Credentials(access_key, secret_key)
    keys: list[str] = []
    token = None
    try:
        while True:
            params = {"list-type": "2", "prefix": prefix}
            if token:
                params["continuation-token"] = token
            url = f"{base}/{quote(bucket)}?{urlencode(sorted(params.items()), quote_via=quote)}"
            req = AWSRequest(method="GET", url=url, headers={"Host": host})
            S3SigV4Auth(creds, "s3", region).add_auth(req)
            prepared = req.prepare()
            resp = session.get(prepared.url, headers=dict(prepared.headers), verify=ca_file, timeout=timeout)
            if resp.status_code != 200:
                raise _error(resp, f"S3 ListObjectsV2 s3://{bucket}/{prefix} at {base}")
            root = ET.fromstring(resp.content)
            for c in root.iter(f"{S3_NS}Contents"):
                keys.append(c.findtext(f"{S3_NS}Key"))
            if root.findtext(f"{S3_NS}IsTruncated") == "true":
                token = root.findtext(f"{S3_NS}NextContinuationToken")
                continue
            return keys
    finally:
        session.close()


def registry_keys(repository: str, manifest_digest: str, blob_digests: list[str]) -> list[str]:
    """The keys the distribution registry's storage layout must hold for a pushed image."""
    def blob_key(d):
        algo, hexa = d.split(":", 1)
        return f"docker/registry/v2/blobs/{algo}/{hexa[:2]}/{hexa}/data"
    algo, hexa = manifest_digest.split(":", 1)
    return ([blob_key(d) for d in [manifest_digest, *blob_digests]] +
            [f"docker/registry/v2/repositories/{repository}/_manifests/revisions/{algo}/{hexa}/link"])
