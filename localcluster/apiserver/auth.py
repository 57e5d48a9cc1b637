"""Users, bearer tokens and RBAC-like rules of the API server.

A `Rule` is like an RBAC PolicyRule: verbs, API groups, resources (a resource may name a subresource as
`pods/status`; `*` matches everything, subresources included), optionally names and namespaces.
A request is allowed when any rule of the user matches it.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rule:
    verbs: tuple = ("*",)
    groups: tuple = ("*",)
    resources: tuple = ("*",)
    names: tuple = ()          # empty: any name
    namespaces: tuple = ()     # empty: any namespace (and cluster scope)

    def matches(self, verb: str, group: str, resource: str, subresource: str = "", name: str = "",
                namespace: str = "") -> bool:
        if "*" not in self.verbs and verb not in self.verbs:
            return False
        if "*" not in self.groups and group not in self.groups:
            return False
        full = f"{resource}/{subresource}" if subresource else resource
        ok = False
        for r in self.resources:
            if r == "*" or r == full:
                ok = True
            elif r.endswith("/*") and subresource and r[:-2] == resource:
                ok = True
            elif r.startswith("*/") and subresource and r[2:] == subresource:
                ok = True
            if ok:
                break
        if not ok:
            return False
        if self.names and name not in self.names:
            return False
        if self.namespaces and namespace not in self.namespaces:
            return False
        return True


ADMIN_RULES = (Rule(),)
READ_RULES = (
    Rule(verbs=("get", "list", "watch")),
    # Pull from the registry: get imagestreams/layers (covered above, but explicit like system:image-puller).
    Rule(verbs=("get",), groups=("image.openshift.io",), resources=("imagestreams/layers",)),
)


@dataclass
class User:
    name: str
    token: str
    groups: tuple = ()
    rules: tuple = ()
    uid: str = field(default_factory=lambda: secrets.token_hex(16))

    def allowed(self, verb, group, resource, subresource="", name="", namespace="") -> bool:
        return any(r.matches(verb, group, resource, subresource, name, namespace) for r in self.rules)


def default_users() -> list[User]:
    """The three users of design.md, with random tokens."""
    return [
        User("kube:admin", "sha256~" + secrets.token_urlsafe(32),
             ("system:cluster-admins", "system:authenticated", "system:authenticated:oauth"), ADMIN_RULES),
        User("nobody", "sha256~" + secrets.token_urlsafe(32),
             ("system:authenticated", "system:authenticated:oauth"), ()),
        User("puller", "sha256~" + secrets.token_urlsafe(32),
             ("system:authenticated", "system:authenticated:oauth"), READ_RULES),
    ]
