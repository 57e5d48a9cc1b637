"""Identities beyond the fixed token users, and RBAC from stored objects.

- Client certificates: the API server asks for one (optional) and trusts `client_ca`; the certificate's
  CN is the user name and its O attributes are the groups (kube's x509 authenticator). A user in
  `system:masters` is allowed everything, as on a real cluster (the installer's `system:admin`).
- ServiceAccount tokens from the TokenRequest API (`POST .../serviceaccounts/<name>/token`): JWTs
  signed by the cluster's ServiceAccount key, bound to the ServiceAccount's uid (deleting the
  ServiceAccount invalidates them) and expiring. User `system:serviceaccount:<ns>:<name>`, groups
  `system:serviceaccounts`, `system:serviceaccounts:<ns>`, `system:authenticated`.
- Authorization: a user's fixed rules (auth.py), or RBAC: ClusterRoleBindings and the RoleBindings of
  the request's namespace whose subjects name the user, one of its groups or its ServiceAccount, and the
  rules of the (Cluster)Role they reference.
- Escalation prevention (kube's RBAC registry): a (Cluster)RoleBinding may be created or changed only by
  a user who has `bind` on the referenced role, or who holds every rule of the role in that namespace.
"""
from __future__ import annotations

import datetime
import secrets
import time
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from .auth import ADMIN_RULES, Rule, User

RBAC_GROUP = "rbac.authorization.k8s.io"
SA_ISSUER = "https://kubernetes.default.svc"
SA_AUDIENCE = "https://kubernetes.default.svc"
DEFAULT_TOKEN_SECONDS = 3600
MIN_TOKEN_SECONDS = 600          # kube refuses shorter expirationSeconds
MAX_TOKEN_SECONDS = 48 * 3600

SA_KEY = ("", "v1", "serviceaccounts")
ROLE_KEY = (RBAC_GROUP, "v1", "roles")
CLUSTERROLE_KEY = (RBAC_GROUP, "v1", "clusterroles")
ROLEBINDING_KEY = (RBAC_GROUP, "v1", "rolebindings")
CLUSTERROLEBINDING_KEY = (RBAC_GROUP, "v1", "clusterrolebindings")

# ClusterRoles of OpenShift's bootstrap policy that the suite and the registry use
# (openshift-apiserver bootstrappolicy; operator-facts §9).
_BUILDS = ("build.openshift.io",)
BOOTSTRAP_CLUSTER_ROLES = {
    "cluster-admin": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    "system:image-puller": [
        {"apiGroups": ["", "image.openshift.io"], "resources": ["imagestreams/layers"], "verbs": ["get"]}],
    "system:image-pusher": [
        {"apiGroups": ["", "image.openshift.io"], "resources": ["imagestreams/layers"], "verbs": ["get", "update"]}],
    "system:image-builder": [
        {"apiGroups": ["", "image.openshift.io"], "resources": ["imagestreams/layers"], "verbs": ["get", "update"]},
        {"apiGroups": ["", "image.openshift.io"], "resources": ["imagestreams"], "verbs": ["create"]},
        {"apiGroups": ["", "build.openshift.io"], "resources": ["builds/details"], "verbs": ["update"]},
        {"apiGroups": ["", "build.openshift.io"], "resources": ["builds"], "verbs": ["get"]}],
}
BOOTSTRAP_CLUSTER_ROLE_BINDINGS = {
    "cluster-admins": ("cluster-admin", [{"kind": "Group", "apiGroup": RBAC_GROUP, "name": "system:cluster-admins"},
                                         {"kind": "User", "apiGroup": RBAC_GROUP, "name": "system:admin"}]),
}


def rules_of(role: dict | None) -> tuple[Rule, ...]:
    out = []
    for r in (role or {}).get("rules") or ():
        if not isinstance(r, dict):
            continue
        out.append(Rule(verbs=tuple(r.get("verbs") or ()), groups=tuple(r.get("apiGroups") or ()),
                        resources=tuple(r.get("resources") or ()), names=tuple(r.get("resourceNames") or ())))
    return tuple(out)


def subject_matches(subject: dict, user: User) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user.name
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        return user.name == f"system:serviceaccount:{subject.get('namespace', '')}:{subject.get('name', '')}"
    return False


class RBAC:
    """RBAC over the API server's store (read directly: the authorizer is part of the API server)."""

    def __init__(self, store):
        self.store = store

    def _role(self, ref: dict, namespace: str):
        if ref.get("kind") == "ClusterRole":
            return self.store.get(CLUSTERROLE_KEY, "", ref.get("name", ""))
        if ref.get("kind") == "Role" and namespace:
            return self.store.get(ROLE_KEY, namespace, ref.get("name", ""))
        return None

    def rules_for(self, user: User, namespace: str) -> list[Rule]:
        rules: list[Rule] = []
        for b in self.store.items(CLUSTERROLEBINDING_KEY):
            if any(subject_matches(s, user) for s in b.get("subjects") or ()):
                rules.extend(rules_of(self._role(b.get("roleRef") or {}, "")))
        if namespace:
            for b in self.store.items(ROLEBINDING_KEY, namespace):
                if any(subject_matches(s, user) for s in b.get("subjects") or ()):
                    rules.extend(rules_of(self._role(b.get("roleRef") or {}, namespace)))
        return rules

    def allows(self, user: User, verb, group, resource, subresource="", name="", namespace="") -> bool:
        return any(r.matches(verb, group, resource, subresource, name, "")
                   for r in self.rules_for(user, namespace))

    def missing_for_binding(self, allowed, user: User, binding: dict, namespace: str) -> list[str] | None:
        """None when `user` may create/update `binding`; else the rules of its role the user does not
        hold (kube's "attempting to grant RBAC permissions not currently held")."""
        ref = binding.get("roleRef") or {}
        plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
        if allowed(user, "bind", RBAC_GROUP, plural, "", ref.get("name", ""), namespace):
            return None
        role = self._role(ref, namespace)
        missing = []
        for r in (role or {}).get("rules") or ():
            for g in r.get("apiGroups") or [""]:
                for res in r.get("resources") or ():
                    resource, _, sub = res.partition("/")
                    for v in r.get("verbs") or ():
                        names = r.get("resourceNames") or [""]
                        if not all(allowed(user, v, g, resource, sub, n, namespace) for n in names):
                            missing.append(f"{{APIGroups:[{g!r}], Resources:[{res!r}], Verbs:[{v!r}]}}")
        return missing or None


@dataclass
class ServiceAccountTokens:
    """Signs and checks TokenRequest tokens."""
    key: ec.EllipticCurvePrivateKey
    kid: str

    @classmethod
    def create(cls) -> "ServiceAccountTokens":
        return cls(ec.generate_private_key(ec.SECP256R1()), secrets.token_hex(8))

    def issue(self, sa: dict, expiration_seconds: int, audiences=None) -> tuple[str, str]:
        now = int(time.time())
        exp = now + expiration_seconds
        m = sa["metadata"]
        claims = {
            "iss": SA_ISSUER, "aud": list(audiences or [SA_AUDIENCE]), "iat": now, "nbf": now, "exp": exp,
            "sub": f"system:serviceaccount:{m['namespace']}:{m['name']}",
            "kubernetes.io": {"namespace": m["namespace"],
                              "serviceaccount": {"name": m["name"], "uid": m["uid"]}},
        }
        token = jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})
        stamp = datetime.datetime.fromtimestamp(exp, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return token, stamp

    def user(self, token: str, store) -> User | None:
        """The ServiceAccount user of a valid, unexpired token whose ServiceAccount still exists."""
        if token.count(".") != 2:
            return None
        try:
            if jwt.get_unverified_header(token).get("kid") != self.kid:
                return None
            claims = jwt.decode(token, self.key.public_key(), algorithms=["ES256"], issuer=SA_ISSUER,
                                options={"verify_aud": False})
        except jwt.PyJWTError:
            return None
        k = claims.get("kubernetes.io") or {}
        ns, sa_ref = k.get("namespace"), k.get("serviceaccount") or {}
        sa = store.get(SA_KEY, ns or "", sa_ref.get("name") or "")
        if sa is None or sa["metadata"].get("uid") != sa_ref.get("uid") or sa["metadata"].get("deletionTimestamp"):
            return None
        return User(f"system:serviceaccount:{ns}:{sa_ref['name']}", token,
                    ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"), (),
                    uid=sa["metadata"]["uid"])


def certificate_user(peercert: dict | None) -> User | None:
    """kube's x509 authenticator: CN = user name, O = groups (system:masters is allowed everything)."""
    if not peercert:
        return None
    cn, orgs = None, []
    for rdn in peercert.get("subject") or ():
        for k, v in rdn:
            if k == "commonName":
                cn = v
            elif k == "organizationName":
                orgs.append(v)
    if not cn:
        return None
    groups = tuple(orgs) + ("system:authenticated",)
    return User(cn, "", groups, ADMIN_RULES if "system:masters" in orgs else ())
