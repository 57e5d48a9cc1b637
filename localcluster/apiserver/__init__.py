"""The local cluster's Kubernetes-style API server (HTTPS, aiohttp, in-memory store).

Public API: `APIServer(settings, cert_pem, key_pem, users, host="127.0.0.1", port=0, history_size=10000)`
with `async start()`, `.url` (`https://127.0.0.1:PORT`), `.port` and `async stop()`.
Users: `localcluster.apiserver.auth.User(name, token, groups=(), rules=(Rule(...), ...))`; a `Rule` is like
an RBAC PolicyRule (verbs, groups, resources such as "pods" or "imagestreams/layers", optional names and
namespaces; "*" matches all). `default_users()` gives kube:admin, nobody and puller with random tokens.

Modules: resources.py (the served resources, data-driven), store.py (objects, resourceVersion, bounded
watch history, indexes), server.py (HTTP, kube semantics), patch.py, selectors.py, validation.py (CRD
schemas, `SCHEMAS[(group, plural)]`), errors.py (Status bodies), auth.py, rbac.py (client certificates
with `client_ca_pem`, ServiceAccount TokenRequest tokens, RBAC from RoleBindings, the escalation check), portforward.py
(`pods/portforward` over WebSocket: relays to the pod's status.podIP; `create` on pods/portforward),
podexec.py (`pods/exec` over WebSocket: the command runs through `APIServer.kubelet`; `get` and `create` on
pods/exec), channels.py (the channel framing both speak),
chaos.py (fault injection for the suite's requests: `APIServer.chaos`, `GET|PUT|PATCH /localcluster/chaos`;
requests with the header `X-Localcluster-Component` are exempt).
"""
from .auth import Rule, User, default_users
from .server import APIServer

__all__ = ["APIServer", "User", "Rule", "default_users"]
