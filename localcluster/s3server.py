"""The ODF S3 servers: moto, signature-checking, plus presigned URLs (SigV4 query authentication).

`python -m localcluster.s3server -H HOST --fd N` runs moto's server as `python -m moto.server` does, on a
listening socket inherited from the parent (so no other process can take its port while it starts).
moto checks header-signed requests (`Authorization: AWS4-HMAC-SHA256 ...`) against its IAM users, but
fails (500) on a presigned URL, which carries its signature in the query (`X-Amz-Credential`,
`X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Signature`). Ceph RGW and NooBaa serve
those, and the registry with S3 storage and redirects on (facts §12.3) answers blob GETs with 307 to
one, so here moto's S3 request check learns them: the signature is recomputed over the canonical
request (UNSIGNED-PAYLOAD) with the key's secret, the expiry is checked, and the key's IAM policies
decide, as for any other request. Wrong signature: 403 SignatureDoesNotMatch; expired: 403 AccessDenied.
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import sys
from urllib.parse import parse_qsl, quote, urlsplit

QUERY_AUTH = "X-Amz-Signature"


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def presigned_signature(secret: str, method: str, path: str, query: str, headers, amz_date: str, scope: str,
                        signed_headers: list[str]) -> str:
    """The SigV4 query-auth signature of a request (S3: the path is not encoded again, payload unsigned)."""
    params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != QUERY_AUTH]
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params))
    canonical_headers = "".join(f"{h}:{' '.join((headers.get(h) or '').split())}\n" for h in signed_headers)
    canonical = "\n".join([method, path or "/", canonical_query, canonical_headers, ";".join(signed_headers),
                           "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    date, region, service, terminal = scope.split("/")
    key = _sign(_sign(_sign(_sign(("AWS4" + secret).encode(), date), region), service), terminal)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def install() -> None:
    """Teach moto's S3 request check presigned URLs (a subclass of its S3IAMRequest, swapped in)."""
    from moto.iam import access_control as ac
    from moto.utilities.utils import get_partition

    base = ac.S3IAMRequest
    if getattr(base, "_presigned_aware", False):
        return

    class PresignedS3IAMRequest(base):
        _presigned_aware = True

        def __init__(self, account_id, method, path, data, body, headers, action):
            parts = urlsplit(path)
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            if "Authorization" in headers or QUERY_AUTH not in query:
                super().__init__(account_id=account_id, method=method, path=path, data=data, body=body,
                                 headers=headers, action=action)
                self._query_auth = None
                return
            self.account_id = account_id
            self._method, self._path, self._data, self._body, self._headers = method, path, data, body, headers
            credential = query.get("X-Amz-Credential", "").split("/")
            if len(credential) != 5:
                self._raise_access_denied()
            self._region, self._service = credential[2], credential[3]
            self._action = f"{self._service}:{action[0] if isinstance(action, list) else action}"
            self._query_auth = (parts.path, parts.query, query, "/".join(credential[1:]))
            try:
                self._access_key = ac.create_access_key(account_id=account_id, partition=get_partition(self._region),
                                                        access_key_id=credential[0], headers=headers)
            except ac.CreateAccessKeyFailure as e:
                self._raise_invalid_access_key(e.reason)

        def check_signature(self) -> None:
            if self._query_auth is None:
                return super().check_signature()
            path, raw_query, query, scope = self._query_auth
            amz_date = query.get("X-Amz-Date", "")
            try:
                signed_at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                    tzinfo=datetime.timezone.utc)
                expires = int(query.get("X-Amz-Expires", "0"))
            except ValueError:
                self._raise_access_denied()
            if datetime.datetime.now(datetime.timezone.utc) > signed_at + datetime.timedelta(seconds=expires):
                self._raise_access_denied()      # S3: "Request has expired"
            signed = [h for h in query.get("X-Amz-SignedHeaders", "host").split(";") if h]
            creds = self._access_key.create_credentials()
            want = presigned_signature(creds.secret_key, self._method, path, raw_query, self._headers, amz_date,
                                       scope, signed)
            if not hmac.compare_digest(want, query.get(QUERY_AUTH, "")):
                self._raise_signature_does_not_match()

    ac.S3IAMRequest = PresignedS3IAMRequest


def serve(host: str, fd: int) -> None:
    """moto's server application, as `python -m moto.server` builds it, on an inherited listening socket
    (the parent bound it, so the port is known and held from before this process starts)."""
    import signal

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True   # as moto.server.main sets it
    server = make_server(host, 0, app, threaded=True, request_handler=MotoRequestHandler, fd=fd)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main(argv=None) -> None:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m localcluster.s3server",
                                     description="moto's S3/IAM server with presigned URLs")
    parser.add_argument("-H", "--host", default="127.0.0.1", help="the address the socket is bound to")
    parser.add_argument("--fd", type=int, required=True,
                        help="an inherited listening TCP socket to serve on (its port is the parent's choice)")
    args = parser.parse_args(argv)
    install()
    serve(args.host, args.fd)


if __name__ == "__main__":
    main()
