"""Routes as clients reach them: the scheme comes from the route itself.

A route with `spec.tls` is served over HTTPS by the router (edge, reencrypt, passthrough); a route without
it only over plain HTTP (port 80). ODF's RGW route differs by release: ocs-operator release-4.12 creates
`ocs-storagecluster-cephobjectstore` without TLS, later releases as an edge route (operator-facts §12.9),
so the S3 `regionEndpoint` built from it must take the scheme from the route, not assume https.
"""
from __future__ import annotations


def route_scheme(route: dict) -> str:
    """"https" when the route has `spec.tls` (any termination), else "http"."""
    tls = ((route or {}).get("spec") or {}).get("tls")
    return "https" if isinstance(tls, dict) and tls.get("termination") else "http"


def route_host(route: dict) -> str | None:
    """The admitted host of a route, else its spec.host."""
    for ing in ((route or {}).get("status") or {}).get("ingress") or []:
        if ing.get("host"):
            return ing["host"]
    return ((route or {}).get("spec") or {}).get("host") or None


def route_url(route: dict) -> str:
    """`<scheme>://<host>` of a route (the S3 regionEndpoint of an ODF object store)."""
    host = route_host(route)
    if not host:
        meta = (route or {}).get("metadata") or {}
        raise LookupError(f"route {meta.get('namespace')}/{meta.get('name')} has no host yet (not admitted)")
    return f"{route_scheme(route)}://{host}"
