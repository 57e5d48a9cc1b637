"""Kubernetes `Status` errors, with kube-apiserver's message forms."""
from __future__ import annotations


class APIError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(rt, name=None, causes=None, kind=None):
    d = {}
    if name:
        d["name"] = name
    if rt is not None and rt.group:
        d["group"] = rt.group
    d["kind"] = kind or (rt.plural if rt is not None else "")
    if causes:
        d["causes"] = causes
    return d


def not_found(rt, name):
    return APIError(404, "NotFound", f'{rt.qualified} "{name}" not found', _details(rt, name))


def already_exists(rt, name):
    return APIError(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists', _details(rt, name))


def conflict(rt, name, why="the object has been modified; please apply your changes to the latest "
                           "version and try again"):
    return APIError(409, "Conflict", f'Operation cannot be fulfilled on {rt.qualified} "{name}": {why}',
                    _details(rt, name))


def namespace_not_found(ns):
    return APIError(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"})


def namespace_terminating(rt, name, ns):
    msg = (f'{rt.qualified} "{name}" is forbidden: unable to create new content in namespace {ns} '
           f'because it is being terminated') if name else \
        f"{rt.qualified} is forbidden: unable to create new content in namespace {ns} because it is being terminated"
    return APIError(403, "Forbidden", msg, _details(rt, name, [
        {"reason": "NamespaceTerminating", "message": f"namespace {ns} is being terminated",
         "field": "metadata.namespace"}]))


def forbidden(user, verb, rt_group, resource, subresource, name, namespace):
    full = f"{resource}/{subresource}" if subresource else resource
    shown = f"{resource}.{rt_group}" if rt_group else resource
    head = f'{shown} "{name}"' if name else shown
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    msg = (f'{head} is forbidden: User "{user}" cannot {verb} resource "{full}" in API group '
           f'"{rt_group}" {where}')
    d = {"kind": resource}
    if name:
        d = {"name": name, **({"group": rt_group} if rt_group else {}), "kind": resource}
    elif rt_group:
        d = {"group": rt_group, "kind": resource}
    return APIError(403, "Forbidden", msg, d)


def unauthorized():
    return APIError(401, "Unauthorized", "Unauthorized")


def bad_request(message):
    return APIError(400, "BadRequest", message)


def method_not_allowed():
    return APIError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def unsupported_media(accepted="application/json-patch+json, application/merge-patch+json, "
                               "application/apply-patch+yaml"):
    return APIError(415, "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: {accepted}")


def invalid(rt, name, causes: list[dict]):
    """causes: [{"field": ..., "reason": FieldValueInvalid|..., "message": "Invalid value: ..."}]."""
    parts = [f'{c["field"]}: {c["message"]}' if c.get("field") else c["message"] for c in causes]
    text = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    msg = f'{rt.kind_qualified} "{name}" is invalid: {text}'
    return APIError(422, "Invalid", msg, _details(rt, name, causes, kind=rt.kind))


def gone(message):
    return APIError(410, "Expired", message)
