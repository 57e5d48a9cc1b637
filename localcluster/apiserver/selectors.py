"""Label selectors and field selectors, parsed once per request."""
from __future__ import annotations

import re

from .errors import bad_request

_KEY = r"[A-Za-z0-9./_-]+"
_TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|>|<|[^\s(),!=<>]+)")


def _tokens(text):
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise bad_request(f"unable to parse requirement: {text!r}")
        out.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class LabelSelector:
    """`a=b,c!=d,e in (f,g),h notin (i),j,!k,l>3`. Empty matches everything."""

    def __init__(self, text: str | None):
        self.reqs = []  # (key, op, values)
        if text:
            self._parse(text)

    def _parse(self, text):
        toks = _tokens(text)
        i = 0

        def err():
            return bad_request(f"unable to parse requirement: found '{toks[i] if i < len(toks) else ''}', "
                               f"in selector {text!r}")
        while i < len(toks):
            if toks[i] == "!":
                i += 1
                if i >= len(toks):
                    raise err()
                self.reqs.append((toks[i], "!", ()))
                i += 1
            else:
                key = toks[i]
                if not re.fullmatch(_KEY, key):
                    raise err()
                i += 1
                if i >= len(toks) or toks[i] == ",":
                    self.reqs.append((key, "exists", ()))
                else:
                    op = toks[i]
                    i += 1
                    if op in ("=", "==", "!="):
                        val = ""
                        if i < len(toks) and toks[i] != ",":
                            val = toks[i]
                            i += 1
                        self.reqs.append((key, "!=" if op == "!=" else "=", (val,)))
                    elif op in (">", "<"):
                        if i >= len(toks):
                            raise err()
                        try:
                            num = int(toks[i])
                        except ValueError:
                            raise err() from None
                        i += 1
                        self.reqs.append((key, op, (num,)))
                    elif op in ("in", "notin"):
                        if i >= len(toks) or toks[i] != "(":
                            raise err()
                        i += 1
                        vals = []
                        while i < len(toks) and toks[i] != ")":
                            if toks[i] != ",":
                                vals.append(toks[i])
                            i += 1
                        if i >= len(toks):
                            raise err()
                        i += 1
                        self.reqs.append((key, op, tuple(vals)))
                    else:
                        raise err()
            if i < len(toks):
                if toks[i] != ",":
                    raise err()
                i += 1

    def matches(self, labels: dict | None) -> bool:
        labels = labels or {}
        for key, op, vals in self.reqs:
            has = key in labels
            v = labels.get(key)
            if op == "exists" and not has:
                return False
            if op == "!" and has:
                return False
            if op == "=" and (not has or v != vals[0]):
                return False
            if op == "!=" and has and v == vals[0]:
                return False
            if op == "in" and (not has or v not in vals):
                return False
            if op == "notin" and has and v in vals:
                return False
            if op in (">", "<"):
                try:
                    n = int(v)
                except (TypeError, ValueError):
                    return False
                if (op == ">" and not n > vals[0]) or (op == "<" and not n < vals[0]):
                    return False
        return True

    def __bool__(self):
        return bool(self.reqs)


def label_selector_from_dict(sel: dict | None) -> LabelSelector:
    """A metav1.LabelSelector ({matchLabels, matchExpressions}) as a LabelSelector."""
    s = LabelSelector(None)
    if not sel:
        return s
    for k, v in (sel.get("matchLabels") or {}).items():
        s.reqs.append((k, "=", (v,)))
    for e in sel.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}[e["operator"]]
        s.reqs.append((e["key"], op, tuple(e.get("values") or ())))
    return s


COMMON_FIELDS = ("metadata.name", "metadata.namespace")
# Field selectors each kind supports beyond metadata.name/namespace (as kube-apiserver does).
KIND_FIELDS = {
    ("", "events"): ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                     "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                     "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"),
    ("events.k8s.io", "events"): ("regarding.kind", "regarding.namespace", "regarding.name",
                                  "regarding.uid", "reason", "type", "reportingController"),
    ("", "pods"): ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                   "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"),
    ("", "secrets"): ("type",),
    ("", "nodes"): ("spec.unschedulable",),
    ("", "namespaces"): ("status.phase",),
    ("", "persistentvolumeclaims"): (),
    ("apps", "replicasets"): ("status.replicas",),
}


def _lookup(obj, path):
    if path == "source":
        return (obj.get("source") or {}).get("component", "")
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


class FieldSelector:
    def __init__(self, text: str | None, group: str = "", plural: str = ""):
        self.reqs = []  # (field, negate, value)
        if not text:
            return
        allowed = COMMON_FIELDS + KIND_FIELDS.get((group, plural), ())
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            m = re.fullmatch(r"([^=!]+?)\s*(==|=|!=)\s*(.*)", part)
            if not m:
                raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
            field, op, val = m.group(1).strip(), m.group(2), m.group(3).strip()
            if field not in allowed:
                raise bad_request(f'field label not supported: {field}')
            self.reqs.append((field, op == "!=", val))

    def matches(self, obj: dict) -> bool:
        for field, negate, val in self.reqs:
            if (_lookup(obj, field) == val) == negate:
                return False
        return True

    def __bool__(self):
        return bool(self.reqs)
