"""The HTTPS Kubernetes-style API server (aiohttp)."""
from __future__ import annotations

import asyncio
import copy
import datetime
import json
import logging
import secrets
import ssl
import tempfile
import uuid
from pathlib import Path

from aiohttp import web

from ..aio import close_all
from . import errors, podexec, portforward
from .auth import User
from .rbac import (BOOTSTRAP_CLUSTER_ROLE_BINDINGS, BOOTSTRAP_CLUSTER_ROLES, DEFAULT_TOKEN_SECONDS,
                   MAX_TOKEN_SECONDS, MIN_TOKEN_SECONDS, RBAC, RBAC_GROUP, ServiceAccountTokens,
                   certificate_user)
from .chaos import CHAOS_PATH, COMPONENT_HEADER, Chaos
from .errors import APIError
from .patch import json_patch, merge_patch, strategic_merge
from .resources import CONNECT_SUBRESOURCES, SUBRESOURCE_KINDS, Registry
from .selectors import FieldSelector, LabelSelector
from .store import Store, Watcher
from .validation import validate

log = logging.getLogger("localcluster.apiserver")

KUBE_VERSION = {
    "major": "1", "minor": "31", "gitVersion": "v1.31.8", "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean", "buildDate": "2025-04-01T00:00:00Z", "goVersion": "go1.22.12", "compiler": "gc",
    "platform": "linux/amd64",
}
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_WRITE_VERBS = ("get", "patch", "update")
# The request's Chaos (or None when the caller is a local cluster component, exempt from faults).
_CHAOS = web.RequestKey("localcluster_chaos", object)
REQUESTS_PATH = "/localcluster/requests"
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def now_iso(offset: float = 0) -> str:
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _precondition(body) -> bool:
    """Whether a PUT/PATCH body names a resourceVersion: only such a write can be answered 409 by
    kube-apiserver (without one, an update is unconditional and a patch is retried server-side)."""
    meta = body.get("metadata") if isinstance(body, dict) else None
    return isinstance(meta, dict) and bool(meta.get("resourceVersion"))


def _truthy(v) -> bool:
    return str(v).lower() in ("true", "1")


def _spec_part(obj):
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _selector_string(sel):
    if not sel:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op = e["operator"]
        if op == "Exists":
            parts.append(e["key"])
        elif op == "DoesNotExist":
            parts.append("!" + e["key"])
        else:
            parts.append(f"{e['key']} {op.lower()} ({','.join(e.get('values') or [])})")
    return ",".join(parts)


def _defaults(rt, obj):
    """A few of kube's defaults that controllers rely on."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = None
    if rt.group == "" and rt.plural == "pods" and spec is not None:
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            if isinstance(c, dict):
                c.setdefault("terminationMessagePath", "/dev/termination-log")
                c.setdefault("imagePullPolicy", "Always" if str(c.get("image", "")).endswith(":latest")
                             or ":" not in str(c.get("image", "")) else "IfNotPresent")
    elif rt.group == "apps" and spec is not None and rt.plural in ("deployments", "replicasets", "statefulsets"):
        spec.setdefault("replicas", 1)
        if rt.plural == "deployments":
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
            if strategy.get("type", "RollingUpdate") == "RollingUpdate":
                strategy.setdefault("type", "RollingUpdate")
                ru = strategy.setdefault("rollingUpdate", {})
                ru.setdefault("maxUnavailable", "25%")
                ru.setdefault("maxSurge", "25%")
    elif rt.group == "" and rt.plural == "services" and spec is not None:
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                p.setdefault("targetPort", p.get("port"))
    elif rt.group == "" and rt.plural == "secrets":
        obj.setdefault("type", "Opaque")
    elif rt.group == "" and rt.plural == "persistentvolumes" and spec is not None:
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain" if not spec.get("claimRef") else "Retain")


class APIServer:
    """A kube-apiserver stand-in. `await start()`, then `.url`; `await stop()`."""

    def __init__(self, settings, cert_pem: bytes, key_pem: bytes, users, host: str = "127.0.0.1",
                 port: int = 0, history_size: int = 10000, client_ca_pem: bytes | None = None):
        self.settings = settings
        self.cert_pem = cert_pem
        self.key_pem = key_pem
        self.users = list(users)
        self.by_token = {u.token: u for u in self.users}
        self.host = host
        self.port = port
        self.registry = Registry()
        self.store = Store(history_size)
        # Client certificates signed by this CA authenticate (CN = user, O = groups); RBAC objects and
        # ServiceAccount tokens (TokenRequest) as on a real cluster (rbac.py).
        self.client_ca_pem = client_ca_pem
        self.rbac = RBAC(self.store)
        self.sa_tokens = ServiceAccountTokens.create()
        self._cert_users: dict[tuple, User] = {}
        self.url = None
        self._runner = None
        self._tasks: set[asyncio.Task] = set()
        self._orphan: set[str] = set()    # uids whose dependents are orphaned when they go
        self._ns_tasks: dict[str, asyncio.Task] = {}
        self.stats = {"requests": 0, "watches": 0}   # counters, for tests and debugging
        # Requests by verb (issue 10: a read-only run must make no write): the suite's requests (no
        # X-Localcluster-Component header) under "client", the cluster's own under "components".
        # GET /localcluster/requests answers them (admin only).
        self.requests_by_verb = {"client": {}, "components": {}}
        # Read-only (a must-gather served by `serve --must-gather`): writes are answered 405.
        self.read_only = False
        self.not_gathered = None   # callable(rt, namespace, name) -> missing file or None
        # Fault injection (chaos.py): initial values from settings, changed through PUT /localcluster/chaos.
        self.chaos = Chaos.from_settings(settings)
        self._websockets: set = set()   # open pods/portforward and pods/exec connections
        self.kubelet = None             # what runs pods/exec (controllers.kubelet.Kubelet), set by the cluster

    # ---------------- lifecycle ----------------
    async def start(self):
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as d:
            cert, key = Path(d, "tls.crt"), Path(d, "tls.key")
            cert.write_bytes(self.cert_pem)
            key.write_bytes(self.key_pem)
            ctx.load_cert_chain(str(cert), str(key))
        if self.client_ca_pem:
            ctx.load_verify_locations(cadata=self.client_ca_pem.decode())
            ctx.verify_mode = ssl.CERT_OPTIONAL
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ctx)
        await site.start()
        sock = site._server.sockets[0]
        self.port = sock.getsockname()[1]
        self.url = f"https://{self.host}:{self.port}"
        self._bootstrap()

    async def stop(self):
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        # Close open watch streams and port-forwards so the runner can shut down promptly.
        for w in [w for s in self.store.watchers.values() for w in s]:
            w.queue.put_nowait(None)
        await close_all(self._websockets)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _spawn(self, coro):
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    def _bootstrap(self):
        ns_rt = self.registry.get("", "v1", "namespaces")
        for ns in ("default", "kube-system", "kube-public", "openshift-config", "openshift-config-managed"):
            if self.store.get(ns_rt.key, "", ns) is None:
                self._create_object(ns_rt, "", {"metadata": {"name": ns}})
        # The bootstrap policy's ClusterRoles and ClusterRoleBindings that the local cluster needs.
        cr_rt = self.registry.get(RBAC_GROUP, "v1", "clusterroles")
        for name, rules in BOOTSTRAP_CLUSTER_ROLES.items():
            if self.store.get(cr_rt.key, "", name) is None:
                self._create_object(cr_rt, "", {"metadata": {"name": name, "annotations": {
                    "rbac.authorization.kubernetes.io/autoupdate": "true"}}, "rules": copy.deepcopy(rules)})
        crb_rt = self.registry.get(RBAC_GROUP, "v1", "clusterrolebindings")
        for name, (role, subjects) in BOOTSTRAP_CLUSTER_ROLE_BINDINGS.items():
            if self.store.get(crb_rt.key, "", name) is None:
                self._create_object(crb_rt, "", {"metadata": {"name": name}, "subjects": copy.deepcopy(subjects),
                                                 "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole",
                                                             "name": role}})

    # ---------------- HTTP ----------------
    async def _handle(self, request: web.Request):
        try:
            path = request.path.rstrip("/") or "/"
            if path in ("/healthz", "/readyz", "/livez"):
                return web.Response(text="ok")
            self.stats["requests"] += 1
            user = self._authenticate(request)
            if path == CHAOS_PATH:
                return await self._chaos_endpoint(request, user)
            if path == REQUESTS_PATH:
                if not user.allowed("get", "localcluster", "requests"):
                    raise APIError(403, "Forbidden", f'User "{user.name}" cannot get {REQUESTS_PATH}', {})
                return self._json(self.requests_by_verb)
            exempt = bool(request.headers.get(COMPONENT_HEADER))
            request[_CHAOS] = None if exempt else self.chaos
            if not exempt and self.chaos.active:
                delay = self.chaos.latency()
                if delay > 0:
                    await asyncio.sleep(delay)
                if not (request.method == "GET" and _truthy(request.query.get("watch"))):
                    err = self.chaos.error()
                    if err is not None:
                        resp = self._json(err.status(), err.code)
                        if err.code == 429:
                            resp.headers["Retry-After"] = str(self.chaos.retry_after())
                        resp.headers["X-Localcluster-Chaos"] = "error"
                        return resp
            return await self._dispatch(request, path, user)
        except APIError as e:
            return self._json(e.status(), e.code)
        except asyncio.CancelledError:
            raise
        except ConnectionResetError:
            raise
        except Exception as e:  # noqa: BLE001
            log.exception("internal error on %s %s", request.method, request.path)
            return self._json(APIError(500, "InternalError", f"Internal error occurred: {e}").status(), 500)

    @staticmethod
    def _json(body, status=200):
        return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status,
                            content_type="application/json")

    def _authenticate(self, request) -> User:
        h = request.headers.get("Authorization", "")
        if h[:7].lower() == "bearer ":
            token = h[7:].strip()
            user = self.by_token.get(token) or self.sa_tokens.user(token, self.store)
            if user is not None:
                return user
            raise errors.unauthorized()
        if self.client_ca_pem and request.transport is not None:
            user = certificate_user(request.transport.get_extra_info("peercert"))
            if user is not None:    # one uid per certificate identity
                return self._cert_users.setdefault((user.name, user.groups), user)
        raise errors.unauthorized()

    def allowed(self, user: User, verb, group, resource, subresource="", name="", namespace="") -> bool:
        """The user's fixed rules, or what RBAC objects grant it."""
        return user.allowed(verb, group, resource, subresource, name, namespace) or \
            self.rbac.allows(user, verb, group, resource, subresource, name, namespace)

    async def _body(self, request):
        raw = await request.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            raise errors.bad_request(f"the object provided is unrecognized or could not be decoded: {e}") from None

    async def _dispatch(self, request, path, user):
        segs = [s for s in path.split("/") if s]
        method = request.method
        if path == "/version":
            return self._json(KUBE_VERSION)
        if path == "/api":
            return self._json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}]})
        if path == "/apis":
            return self._json(self._api_group_list())
        if segs[0] == "apis" and len(segs) == 2:
            g = self._api_group(segs[1])
            if g is None:
                raise self._not_found_path()
            return self._json(g)
        if segs[0] == "api" and len(segs) >= 2 and segs[1] == "v1":
            group, version, rest = "", "v1", segs[2:]
        elif segs[0] == "apis" and len(segs) >= 3:
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise self._not_found_path()
        if group not in self.registry.groups or version not in self.registry.groups[group]:
            raise self._not_found_path()
        if not rest:
            return self._json(self._resource_list(group, version))
        if group == "user.openshift.io" and rest == ["users", "~"]:
            return self._json(self._user_object(user))
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and group == "" and
                                                               rest[2] in ("status", "finalize")):
            namespace, rest = rest[1], rest[2:]
        rt = self.registry.get(group, version, rest[0])
        if rt is None or len(rest) > 3 or (namespace and not rt.namespaced):
            raise self._not_found_path()
        name = rest[1] if len(rest) >= 2 else ""
        sub = rest[2] if len(rest) == 3 else ""
        if sub and sub not in rt.subresources:
            raise self._not_found_path()
        q = request.query
        if sub in CONNECT_SUBRESOURCES:
            if self.read_only:
                raise errors.method_not_allowed()
            return await self._connect(request, user, rt, namespace, name, sub)
        if method == "GET":
            verb = "get" if name else ("watch" if _truthy(q.get("watch")) else "list")
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if name else "deletecollection"
        else:
            raise errors.method_not_allowed()
        who = "components" if request.headers.get(COMPONENT_HEADER) else "client"
        counts = self.requests_by_verb[who]
        # An access review is a POST that stores nothing: counted apart from the writes.
        key = "review" if rt.plural == "selfsubjectaccessreviews" else verb
        counts[key] = counts.get(key, 0) + 1
        if rt.plural == "selfsubjectaccessreviews":
            if verb != "create" or name:
                raise errors.method_not_allowed()
            return self._json(self._ssar(user, await self._body(request)), 201)
        if verb == "create" and name and not sub:
            raise errors.method_not_allowed()
        if verb not in rt.verbs:
            raise errors.method_not_allowed()
        if self.read_only and verb in WRITE_VERBS:
            raise errors.method_not_allowed()
        if not self.allowed(user, verb, group, rt.plural, sub, name, namespace):
            raise errors.forbidden(user.name, verb, group, rt.plural, sub, name, namespace)
        if self.not_gathered is not None and verb in ("get", "list", "watch"):
            missing = self.not_gathered(rt, namespace, name)
            if missing:
                raise APIError(404, "NotFound", f"{rt.qualified} not in the must-gather: {missing} is missing",
                               {"kind": rt.plural, "name": name,
                                "causes": [{"reason": "MustGatherFileMissing", "field": missing,
                                            "message": f"{missing} is not in the must-gather"}]})
        if rt.key == ("", "v1", "serviceaccounts") and sub == "token":
            if verb != "create":
                raise errors.method_not_allowed()
            return self._json(self._token_request(namespace, name, await self._body(request)), 201)
        if group == RBAC_GROUP and rt.plural in ("rolebindings", "clusterrolebindings") and \
                verb in ("create", "update", "patch"):
            await self._check_escalation(request, user, rt, namespace, name, verb)
        if verb == "get":
            return self._json(self._get(rt, namespace, name, sub))
        if verb == "list":
            return self._json(self._list(rt, namespace, q))
        if verb == "watch":
            return await self._watch(request, rt, namespace, q)
        if verb == "create":
            body = await self._body(request)
            obj = self._create(rt, namespace, body)
            return self._json(obj, 201)
        if verb in ("update", "patch"):
            body = await self._body(request)
            chaos = request.get(_CHAOS)
            if (chaos is not None and _precondition(body) and self.store.get(rt.key, namespace, name) is not None
                    and chaos.conflict()):
                raise errors.conflict(rt, name)
        if verb == "update":
            return self._json(self._update(rt, namespace, name, body, sub))
        if verb == "patch":
            ctype = request.content_type
            return self._json(self._patch(rt, namespace, name, body, ctype, sub))
        if verb == "delete":
            body = await self._body(request) or {}
            if sub:
                raise errors.method_not_allowed()
            obj, code = self._delete(rt, namespace, name, q, body)
            return self._json(obj, code)
        if verb == "deletecollection":
            body = await self._body(request) or {}
            return self._json(self._delete_collection(rt, namespace, q, body))
        raise errors.method_not_allowed()

    async def _check_escalation(self, request, user, rt, namespace, name, verb):
        """kube's RBAC escalation check: binding a role needs `bind` on it or all of its rights."""
        body = await self._body(request)
        binding = body if verb in ("create", "update") and isinstance(body, dict) else \
            (self.store.get(rt.key, namespace, name) or {})
        if verb == "patch" and isinstance(body, dict) and isinstance(body.get("roleRef"), dict):
            binding = {"roleRef": body["roleRef"]}
        missing = self.rbac.missing_for_binding(self.allowed, user, binding, namespace)
        if missing:
            shown = (binding.get("metadata") or {}).get("name") or name
            groups = " ".join(user.groups)
            raise APIError(403, "Forbidden", f'{rt.qualified} "{shown}" is forbidden: user "{user.name}" '
                           f'(groups=[{groups}]) is attempting to grant RBAC permissions not currently held:\n'
                           + "\n".join(missing), {"name": shown, "group": RBAC_GROUP, "kind": rt.plural})

    def _token_request(self, namespace, name, body):
        """TokenRequest (authentication.k8s.io/v1) for a ServiceAccount."""
        sa = self._must_get(self.registry.get("", "v1", "serviceaccounts"), namespace, name)
        spec = (body or {}).get("spec") or {}
        seconds = spec.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS
        if not isinstance(seconds, int) or seconds < MIN_TOKEN_SECONDS:
            raise APIError(422, "Invalid", f'TokenRequest.authentication.k8s.io "{name}" is invalid: '
                           f'spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less '
                           f'than {MIN_TOKEN_SECONDS // 60} minutes', {"name": name, "group": "authentication.k8s.io",
                                                                      "kind": "TokenRequest"})
        seconds = min(seconds, MAX_TOKEN_SECONDS)
        token, stamp = self.sa_tokens.issue(sa, seconds, spec.get("audiences"))
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
                "spec": {"audiences": spec.get("audiences") or ["https://kubernetes.default.svc"],
                         "expirationSeconds": seconds, "boundObjectRef": spec.get("boundObjectRef")},
                "status": {"token": token, "expirationTimestamp": stamp}}

    @staticmethod
    def _not_found_path():
        return APIError(404, "NotFound", "the server could not find the requested resource", {})

    # ---------------- connect subresources (pods/portforward, pods/exec) ----------------
    async def _connect(self, request, user, rt, namespace, name, sub):
        # kube authorizes WebSocket connects as `create` on the subresource (whatever the HTTP method).
        # An exec over WebSocket is a GET, authorized as `get` on pods/exec (Kubernetes before 1.35) and,
        # with AuthorizePodWebsocketUpgradeCreatePermission (on by default from 1.35), `create` as well:
        # both are checked here, so what passes here passes on either.
        if request.method not in ("GET", "POST"):
            raise errors.method_not_allowed()
        verbs = ("get", "create") if sub == "exec" and request.method == "GET" else ("create",)
        for verb in verbs:
            if not self.allowed(user, verb, rt.group, rt.plural, sub, name, namespace):
                raise errors.forbidden(user.name, verb, rt.group, rt.plural, sub, name, namespace)
        pod = self._must_get(rt, namespace, name)
        if sub == "exec":
            return await podexec.serve(request, pod, self.kubelet, self._websockets)
        ports = portforward.parse_ports(request.query)
        return await portforward.serve(request, pod, ports, self._websockets)

    # ---------------- fault injection ----------------
    async def _chaos_endpoint(self, request, user):
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch"}.get(request.method)
        if verb is None:
            raise errors.method_not_allowed()
        if not user.allowed(verb, "localcluster", "chaos"):
            raise APIError(403, "Forbidden", f'User "{user.name}" cannot {verb} the local cluster\'s chaos '
                                             f'configuration ({CHAOS_PATH})', {"kind": "chaos"})
        if verb == "get":
            return self._json(self.chaos.describe())
        body = await self._body(request)
        if isinstance(body, dict) and isinstance(body.get("spec"), dict) and set(body) - {"spec"} <= {
                "kind", "apiVersion", "status"}:
            body = body["spec"]   # the GET answer, edited and sent back
        if verb == "update":
            return self._json(self.chaos.replace(body or {}))
        return self._json(self.chaos.merge(body or {}))

    # ---------------- discovery ----------------
    def _group_entry(self, group):
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in self.registry.groups[group]]
        return {"name": group, "versions": versions, "preferredVersion": versions[0]}

    def _api_group_list(self):
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [self._group_entry(g) for g in self.registry.groups if g]}

    def _api_group(self, group):
        if group not in self.registry.groups or not group:
            return None
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group_entry(group)}

    def _resource_list(self, group, version):
        out = []
        for rt in self.registry.in_group_version(group, version):
            entry = {"name": rt.plural, "singularName": rt.singular_name(), "namespaced": rt.namespaced,
                     "kind": rt.kind, "verbs": list(rt.verbs)}
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            out.append(entry)
            for sub in rt.subresources:
                sg, sv, sk = SUBRESOURCE_KINDS.get(sub, (None, None, rt.kind))
                verbs = ["update"] if sub == "finalize" else ["create"] if sub == "token" else \
                    list(CONNECT_SUBRESOURCES.get(sub, _WRITE_VERBS))
                se = {"name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced,
                      "kind": sk, "verbs": verbs}
                if sg is not None and sub == "scale":
                    se["group"], se["version"] = sg, sv
                out.append(se)
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}

    # ---------------- users / reviews ----------------
    def _user_object(self, user):
        return {"kind": "User", "apiVersion": "user.openshift.io/v1",
                "metadata": {"name": user.name, "uid": user.uid}, "identities": [],
                "groups": list(user.groups)}

    def _ssar(self, user, body):
        if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
            raise errors.bad_request("spec.resourceAttributes or spec.nonResourceAttributes is required")
        spec = body["spec"]
        ra = spec.get("resourceAttributes")
        if ra:
            allowed = self.allowed(user, ra.get("verb", ""), ra.get("group", ""), ra.get("resource", ""),
                                   ra.get("subresource", ""), ra.get("name", ""), ra.get("namespace", ""))
        elif spec.get("nonResourceAttributes"):
            path = spec["nonResourceAttributes"].get("path", "")
            allowed = user.allowed("*", "*", "*") or path.startswith(("/api", "/version", "/healthz"))
        else:
            raise errors.bad_request("spec.resourceAttributes or spec.nonResourceAttributes is required")
        status = {"allowed": allowed}
        if allowed and user.allowed("*", "*", "*"):
            status["reason"] = 'RBAC: allowed by ClusterRoleBinding "cluster-admins" of ClusterRole ' \
                               '"cluster-admin" to Group "system:cluster-admins"'
        out = {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
               "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}
        return out

    # ---------------- helpers ----------------
    def _decorate(self, rt, obj):
        if obj.get("kind") == rt.kind and obj.get("apiVersion") == rt.api_version:
            return obj
        out = dict(obj)
        out["kind"], out["apiVersion"] = rt.kind, rt.api_version
        return out

    def _must_get(self, rt, ns, name):
        obj = self.store.get(rt.key, ns, name)
        if obj is None:
            raise errors.not_found(rt, name)
        return obj

    def _get(self, rt, ns, name, sub):
        obj = self._must_get(rt, ns, name)
        if sub == "scale":
            return self._scale_view(rt, obj)
        return self._decorate(rt, obj)

    def _scale_view(self, rt, obj):
        m = obj["metadata"]
        status = obj.get("status") or {}
        if rt.group == "apps":
            sel = _selector_string((obj.get("spec") or {}).get("selector"))
        else:
            sel = status.get("selector", "")
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                               "creationTimestamp") if k in m},
                "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
                "status": {"replicas": status.get("replicas", 0), "selector": sel}}

    def _list(self, rt, ns, q):
        lsel = LabelSelector(q.get("labelSelector"))
        fsel = FieldSelector(q.get("fieldSelector"), rt.group, rt.plural)
        items = []
        for obj in self.store.items(rt.key, ns or None):
            if lsel and not lsel.matches(obj["metadata"].get("labels")):
                continue
            if fsel and not fsel.matches(obj):
                continue
            items.append(self._decorate(rt, obj))
        meta = {"resourceVersion": str(self.store.rv)}
        limit = int(q.get("limit") or 0)
        cont = q.get("continue")
        if cont:
            try:
                start = int(cont)
            except ValueError:
                raise errors.bad_request("continue key is not valid") from None
            items = items[start:]
        else:
            start = 0
        if limit and len(items) > limit:
            items = items[:limit]
            meta["continue"] = str(start + limit)
            meta["remainingItemCount"] = len(self.store.items(rt.key, ns or None)) - start - limit \
                if not (lsel or fsel) else None
            if meta["remainingItemCount"] is None:
                del meta["remainingItemCount"]
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta, "items": items}

    def _namespace_ok(self, rt, ns, name):
        if not rt.namespaced:
            return
        ns_obj = self.store.get(("", "v1", "namespaces"), "", ns)
        if ns_obj is None:
            raise errors.namespace_not_found(ns)
        if ns_obj["metadata"].get("deletionTimestamp"):
            raise errors.namespace_terminating(rt, name, ns)

    # ---------------- create ----------------
    def _create(self, rt, ns, body):
        if not isinstance(body, dict):
            raise errors.bad_request("the object provided is unrecognized (must be a JSON object)")
        body = copy.deepcopy(body)
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            meta = body["metadata"] = {}
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                         "sent on the request")
        return self._create_object(rt, ns, body)

    def _create_object(self, rt, ns, body):
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
        if rt.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        body["kind"], body["apiVersion"] = rt.kind, rt.api_version
        name = meta.get("name") or ""
        if rt.namespaced:
            self._namespace_ok(rt, ns, name)
        _defaults(rt, body)
        causes = validate(rt, body)
        if causes:
            raise errors.invalid(rt, name, causes)
        if self.store.get(rt.key, ns, name) is not None:
            raise errors.already_exists(rt, name)
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink"):
            meta.pop(k, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        meta["generation"] = 1
        if rt.has_status:
            if rt.create_status == "clear":
                body.pop("status", None)
            elif isinstance(rt.create_status, dict):
                body["status"] = copy.deepcopy(rt.create_status)
        if rt.key == ("", "v1", "namespaces"):
            body.setdefault("spec", {})["finalizers"] = ["kubernetes"]
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        stored = self.store.put(rt.key, body)
        # The garbage collector deletes what is created under an owner in foreground deletion (a
        # ReplicaSet controller that raced the deletion of its ReplicaSet, for example).
        for ref in meta.get("ownerReferences") or ():
            owner = self.store.by_uid_get(ref.get("uid"))
            if owner is not None and owner["metadata"].get("deletionTimestamp") and \
                    "foregroundDeletion" in (owner["metadata"].get("finalizers") or ()):
                self._spawn(self._delete_dependents(ref["uid"], "Foreground"))
        return stored

    # ---------------- update / patch ----------------
    def _update(self, rt, ns, name, body, sub):
        if not isinstance(body, dict):
            raise errors.bad_request("the object provided is unrecognized (must be a JSON object)")
        old = self._must_get(rt, ns, name)
        meta = body.get("metadata") or {}
        if sub == "scale":
            return self._write_scale(rt, old, body)
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on "
                                     f"the URL ({name})")
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent "
                                     "on the request")
        rv = meta.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt, name)
        return self._write(rt, old, copy.deepcopy(body), sub)

    def _patch(self, rt, ns, name, body, ctype, sub):
        old = self._must_get(rt, ns, name)
        base = self._scale_view(rt, old) if sub == "scale" else self._decorate(rt, copy.deepcopy(old))
        if ctype == "application/merge-patch+json":
            if not isinstance(body, dict):
                raise errors.bad_request("merge patch must be a JSON object")
            patched = merge_patch(base, body)
        elif ctype == "application/json-patch+json":
            patched = json_patch(base, body)
        elif ctype == "application/strategic-merge-patch+json":
            if not rt.strategic:
                raise errors.unsupported_media()
            if not isinstance(body, dict):
                raise errors.bad_request("strategic merge patch must be a JSON object")
            patched = strategic_merge(base, body)
        elif ctype == "application/apply-patch+yaml":
            raise errors.unsupported_media()
        else:
            raise errors.unsupported_media()
        if not isinstance(patched, dict):
            raise errors.bad_request("the patched object is not a JSON object")
        pm = patched.get("metadata") if isinstance(patched.get("metadata"), dict) else {}
        rv = pm.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt, name)
        if sub == "scale":
            return self._write_scale(rt, old, patched)
        if pm.get("name") and pm["name"] != name:
            raise errors.bad_request(f"the name of the object ({pm['name']}) does not match the name on the "
                                     f"URL ({name})")
        return self._write(rt, old, patched, sub)

    def _write_scale(self, rt, old, scale):
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid(rt, old["metadata"]["name"], [{
                "reason": "FieldValueInvalid", "field": "spec.replicas",
                "message": f"Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0"}])
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt, old["metadata"]["name"])
        new = copy.deepcopy(old)
        new.setdefault("spec", {})["replicas"] = replicas
        obj = self._write(rt, old, new, "")
        return self._scale_view(rt, obj)

    def _write(self, rt, old, new, sub):
        """Store `new` as the next version of `old` (kube's update rules); returns the stored object."""
        name = old["metadata"]["name"]
        if sub == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif rt.has_status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        nm = new.get("metadata")
        if not isinstance(nm, dict):
            nm = new["metadata"] = {}
        om = old["metadata"]
        for k in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generation", "resourceVersion"):
            if k in om:
                nm[k] = om[k]
            else:
                nm.pop(k, None)
        if rt.key == ("", "v1", "namespaces") and sub != "finalize":
            new["spec"] = copy.deepcopy(old.get("spec", {}))
        new["kind"], new["apiVersion"] = rt.kind, rt.api_version
        if sub != "status":
            _defaults(rt, new)
        causes = validate(rt, new)
        if causes:
            raise errors.invalid(rt, name, causes)
        if _spec_part(new) != _spec_part(old):
            nm["generation"] = int(om.get("generation", 1)) + 1
        if om.get("deletionTimestamp"):
            added = set(nm.get("finalizers") or ()) - set(om.get("finalizers") or ())
            if added:
                raise errors.invalid(rt, name, [{
                    "reason": "FieldValueForbidden", "field": "metadata.finalizers",
                    "message": f"Forbidden: no new finalizers can be added if the object is being deleted, "
                               f"found new finalizers {json.dumps(sorted(added))}"}])
        if self._decorate(rt, new) == self._decorate(rt, old):
            return self._decorate(rt, old)          # no-op: no new resourceVersion, no event
        stored = self.store.put(rt.key, new, old)
        if nm.get("deletionTimestamp") and not nm.get("finalizers") and not nm.get("deletionGracePeriodSeconds"):
            if rt.key == ("", "v1", "namespaces"):
                return self._decorate(rt, stored)
            final = self._remove(rt, stored)
            return self._decorate(rt, final)
        return self._decorate(rt, stored)

    # ---------------- delete ----------------
    def _delete_options(self, q, body):
        grace = q.get("gracePeriodSeconds")
        if grace is None:
            grace = body.get("gracePeriodSeconds")
        policy = q.get("propagationPolicy") or body.get("propagationPolicy")
        if policy is None:
            orphan = q.get("orphanDependents", body.get("orphanDependents"))
            if orphan in (True, "true"):
                policy = "Orphan"
        if grace is not None:
            try:
                grace = int(grace)
            except ValueError:
                raise errors.bad_request(f"invalid gracePeriodSeconds: {grace}") from None
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise errors.bad_request(f"propagationPolicy {policy!r} is not supported")
        return grace, policy, body.get("preconditions") or {}

    def _delete(self, rt, ns, name, q, body):
        grace, policy, pre = self._delete_options(q, body)
        obj = self._must_get(rt, ns, name)
        if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
            raise errors.conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID in "
                                            f"object meta: {obj['metadata']['uid']}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise errors.conflict(rt, name, f"Precondition failed: ResourceVersion in precondition: "
                                            f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                            f"{obj['metadata']['resourceVersion']}")
        result, gone_now = self.delete_object(rt, obj, grace, policy)
        return self._decorate(rt, result), 200 if gone_now else 200

    def _delete_collection(self, rt, ns, q, body):
        grace, policy, _ = self._delete_options(q, body)
        lsel = LabelSelector(q.get("labelSelector"))
        fsel = FieldSelector(q.get("fieldSelector"), rt.group, rt.plural)
        for obj in self.store.items(rt.key, ns or None):
            if lsel and not lsel.matches(obj["metadata"].get("labels")):
                continue
            if fsel and not fsel.matches(obj):
                continue
            self.delete_object(rt, obj, grace, policy)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}

    def delete_object(self, rt, obj, grace=None, policy=None):
        """Delete as kube does; returns (object as now stored or as deleted, removed?)."""
        meta = obj["metadata"]
        if rt.key == ("", "v1", "namespaces"):
            return self._delete_namespace(rt, obj), False
        if rt.key == ("", "v1", "pods"):
            spec = obj.get("spec") or {}
            if grace is None:
                grace = spec.get("terminationGracePeriodSeconds", 30)
                if grace is None:
                    grace = 30
            phase = (obj.get("status") or {}).get("phase")
            if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
                grace = 0
            grace = max(int(grace), 0)
        else:
            grace = 0
        if policy == "Orphan":
            self._orphan.add(meta["uid"])
        finalizers = list(meta.get("finalizers") or ())
        if policy == "Foreground" and self.store.dependents(meta["uid"]) and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if meta.get("deletionTimestamp"):
            cur_grace = meta.get("deletionGracePeriodSeconds") or 0
            if finalizers == list(meta.get("finalizers") or ()) and grace >= cur_grace:
                if not finalizers and cur_grace == 0:
                    return self._remove(rt, obj), True
                return obj, False
        if finalizers or grace > 0:
            new = copy.deepcopy(obj)
            nm = new["metadata"]
            nm["finalizers"] = finalizers
            if not nm.get("deletionTimestamp") or grace < (meta.get("deletionGracePeriodSeconds") or 0):
                nm["deletionTimestamp"] = now_iso(grace)
            nm["deletionGracePeriodSeconds"] = grace
            if not finalizers:
                nm.pop("finalizers")
            stored = self.store.put(rt.key, new, obj)
            if "foregroundDeletion" in finalizers:
                self._spawn(self._delete_dependents(meta["uid"], "Foreground"))
            return stored, False
        return self._remove(rt, obj), True

    def _remove(self, rt, obj):
        final = self.store.remove(rt.key, obj)
        uid = final["metadata"]["uid"]
        if self.store.dependents(uid):
            if uid in self._orphan:
                self._orphan_dependents(uid)
            else:
                self._spawn(self._delete_dependents(uid, "Background"))
        self._orphan.discard(uid)
        # An owner waiting in foreground deletion for its last dependent.
        for ref in final["metadata"].get("ownerReferences") or ():
            if not self.store.dependents(ref.get("uid")):
                self._spawn(self._finish_foreground(ref.get("uid"), ref))
        return final

    def _orphan_dependents(self, uid):
        for rtkey, ns, name in self.store.dependents(uid):
            dep = self.store.get(rtkey, ns, name)
            if dep is None:
                continue
            new = copy.deepcopy(dep)
            refs = [r for r in new["metadata"].get("ownerReferences") or () if r.get("uid") != uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            self.store.put(rtkey, new, dep)

    async def _delete_dependents(self, uid, policy):
        await asyncio.sleep(0)
        for rtkey, ns, name in self.store.dependents(uid):
            dep = self.store.get(rtkey, ns, name)
            if dep is None or dep["metadata"].get("deletionTimestamp"):
                continue
            rt = self.registry.get(*rtkey)
            self.delete_object(rt, dep, None, "Background" if policy != "Foreground" else "Foreground")

    async def _finish_foreground(self, uid, ref):
        await asyncio.sleep(0)
        if not uid or self.store.dependents(uid):
            return
        rt = self.registry.find_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if rt is None:
            return
        for (ns, name), owner in list(self.store.objects.get(rt.key, {}).items()):
            if name == ref.get("name") and owner["metadata"]["uid"] == uid:
                fins = owner["metadata"].get("finalizers") or []
                if "foregroundDeletion" in fins:
                    new = copy.deepcopy(owner)
                    new["metadata"]["finalizers"] = [f for f in fins if f != "foregroundDeletion"]
                    self._write(rt, owner, new, "")
                return

    def _delete_namespace(self, rt, obj):
        meta = obj["metadata"]
        name = meta["name"]
        if not meta.get("deletionTimestamp"):
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = now_iso()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["status"] = {"phase": "Terminating"}
            obj = self.store.put(rt.key, new, obj)
        if name not in self._ns_tasks:
            t = self._spawn(self._finalize_namespace(rt, name))
            self._ns_tasks[name] = t
            t.add_done_callback(lambda _t, n=name: self._ns_tasks.pop(n, None))
        return obj

    async def _finalize_namespace(self, rt, name):
        while True:
            for rtkey, obj_name in self.store.namespace_members(name):
                obj = self.store.get(rtkey, name, obj_name)
                if obj is not None and not obj["metadata"].get("deletionTimestamp"):
                    self.delete_object(self.registry.get(*rtkey), obj, None, "Background")
            if not self.store.namespace_members(name):
                break
            await asyncio.sleep(0.02)
        while True:
            ns = self.store.get(rt.key, "", name)
            if ns is None:
                return
            if not ns["metadata"].get("finalizers"):
                new = copy.deepcopy(ns)
                new["spec"]["finalizers"] = []
                ns = self.store.put(rt.key, new, ns)
                self._remove(rt, ns)
                return
            await asyncio.sleep(0.05)

    # ---------------- watch ----------------
    async def _watch(self, request, rt, ns, q):
        lsel = LabelSelector(q.get("labelSelector"))
        fsel = FieldSelector(q.get("fieldSelector"), rt.group, rt.plural)
        timeout = q.get("timeoutSeconds")
        timeout = float(timeout) if timeout else None
        rv = q.get("resourceVersion") or "0"
        bookmarks = _truthy(q.get("allowWatchBookmarks"))
        try:
            rv_int = int(rv)
        except ValueError:
            raise errors.bad_request(f"invalid resource version: {rv}") from None
        w = Watcher(ns or None, lsel, fsel)
        self.stats["watches"] += 1
        chaos = request.get(_CHAOS)
        drop_after = chaos.watch_drop_after() if chaos is not None else None
        # Backlog and registration happen without an await in between: nothing is lost or duplicated.
        backlog = []
        expired = None
        if rv_int == 0:
            for obj in self.store.items(rt.key, ns or None):
                if w.match(obj):
                    backlog.append(("ADDED", obj))
        else:
            evs = self.store.events_since(rt.key, rv_int)
            if evs is None:
                expired = errors.gone(f"too old resource version: {rv_int} ({self.store.compacted[rt.key] + 1})")
            else:
                for _, etype, obj, old in evs:
                    t = w.translate(etype, obj, old)
                    if t:
                        backlog.append((t, obj))
        if expired is None:
            self.store.add_watcher(rt.key, w)
        resp = web.StreamResponse(status=200)
        resp.content_type = "application/json"
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            if expired is not None:
                await resp.write(json.dumps({"type": "ERROR", "object": expired.status()}).encode() + b"\n")
                return resp
            for etype, obj in backlog:
                await resp.write(self._event_line(rt, etype, obj))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout else None
            if drop_after is not None:   # fault injection: this watch ends early
                deadline = min(deadline, loop.time() + drop_after) if deadline else loop.time() + drop_after
                bookmarks = False
            while True:
                wait = None if deadline is None else deadline - loop.time()
                if wait is not None and wait <= 0:
                    break
                try:
                    item = await asyncio.wait_for(w.queue.get(), wait if wait is not None else 30.0)
                except asyncio.TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        break
                    continue
                if item is None:
                    break
                await resp.write(self._event_line(rt, item[0], item[1]))
            if bookmarks:
                await resp.write(json.dumps({"type": "BOOKMARK", "object": {
                    "kind": rt.kind, "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": str(self.store.rv)}}}).encode() + b"\n")
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.store.remove_watcher(rt.key, w)
        try:
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError, RuntimeError):
            pass
        return resp

    def _event_line(self, rt, etype, obj):
        return json.dumps({"type": etype, "object": self._decorate(rt, obj)},
                          separators=(",", ":")).encode() + b"\n"
