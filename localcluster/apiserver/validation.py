"""Validation of objects: CRD-style OpenAPI schemas (defaults, pruning, errors in kube's message forms)
and light checks for the other kinds (metadata.name).

Add a schema for a kind by putting it in `SCHEMAS[(group, plural)]`.
"""
from __future__ import annotations

import json
import re

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                  "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
                  "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
              "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
              "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
# Kinds whose names must be DNS-1123 labels rather than subdomains.
LABEL_NAMED = {("", "namespaces"), ("", "services")}


def _q(v):
    """A value as kube prints it in `Invalid value: ...`."""
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if v is None:
        return "null"
    return '"' + _jtype(v) + '"'


def _jtype(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def cause(field, reason, message):
    return {"reason": reason, "message": message, "field": field}


def validate_metadata(rt, obj) -> list[dict]:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        return [cause("metadata.name", "FieldValueRequired", "Required value: name or generateName is required")]
    # Path segment names: "system:image-builder"; an Image is named by its digest, "sha256:<hex>"
    # (openshift-apiserver validates image names as path segments).
    if rt.group == "rbac.authorization.k8s.io" or (rt.group, rt.plural) == ("image.openshift.io", "images"):
        if name in (".", "..") or "/" in name or "%" in name:
            return [cause("metadata.name", "FieldValueInvalid",
                          f"Invalid value: {_q(name)}: may not contain '/' or '%' or be '.' or '..'")]
        return []
    if (rt.group, rt.plural) in LABEL_NAMED:
        if len(name) > 63 or not DNS1123_LABEL.match(name):
            return [cause("metadata.name", "FieldValueInvalid", f"Invalid value: {_q(name)}: {_LABEL_MSG}")]
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        return [cause("metadata.name", "FieldValueInvalid", f"Invalid value: {_q(name)}: {_SUBDOMAIN_MSG}")]
    return []


# ---- a small structural-schema (OpenAPI v3 subset) validator ----

def _check(schema, value, path, errors):
    """Validate, apply defaults and prune unknown fields in place; returns the (possibly new) value."""
    t = schema.get("type")
    if t and not _type_ok(t, value):
        errors.append(cause(path, "FieldValueTypeInvalid" if False else "FieldValueInvalid",
                            f'Invalid value: "{_jtype(value)}": {path} in body must be of type {t}: '
                            f'"{_jtype(value)}"'))
        return value
    if t == "object" or isinstance(value, dict) and "properties" in schema:
        props = schema.get("properties")
        if props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
            for k in list(value):
                if k not in props:
                    del value[k]
        for k, sub in (props or {}).items():
            if k not in value and "default" in sub:
                value[k] = json.loads(json.dumps(sub["default"]))
        for k in list(value):
            sub = (props or {}).get(k)
            if sub is None:
                continue
            if value[k] is None:
                if sub.get("nullable"):
                    continue
                del value[k]     # kube prunes nulls of non-nullable fields
                if "default" in sub:
                    value[k] = json.loads(json.dumps(sub["default"]))
                continue
            value[k] = _check(sub, value[k], f"{path}.{k}" if path else k, errors)
        for req in schema.get("required", ()):
            if req not in value:
                errors.append(cause(f"{path}.{req}" if path else req, "FieldValueRequired", "Required value"))
        return value
    if t == "array":
        items = schema.get("items")
        if items:
            for i, v in enumerate(value):
                value[i] = _check(items, v, f"{path}[{i}]", errors)
        return value
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_q(x) for x in schema["enum"])
        errors.append(cause(path, "FieldValueNotSupported",
                            f"Unsupported value: {_q(value)}: supported values: {supported}"))
        return value
    if t == "string":
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(cause(path, "FieldValueTooLong", f"Too long: may not be longer than {schema['maxLength']}"))
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(cause(path, "FieldValueInvalid",
                                f"Invalid value: {_q(value)}: {path} in body should be at least "
                                f"{schema['minLength']} chars long"))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(cause(path, "FieldValueInvalid",
                                f"Invalid value: {_q(value)}: {path} in body should match '{schema['pattern']}'"))
    if t == "integer":
        fmt = schema.get("format")
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if fmt == "int32":
            lo = -2**31 if lo is None else lo
            hi = 2**31 - 1 if hi is None else hi
        if lo is not None and value < lo:
            errors.append(cause(path, "FieldValueInvalid",
                                f"Invalid value: {value}: {path} in body should be greater than or equal to {lo}"))
        if hi is not None and value > hi:
            errors.append(cause(path, "FieldValueInvalid",
                                f"Invalid value: {value}: {path} in body should be less than or equal to {hi}"))
    return value


def _type_ok(t, v):
    if t == "object":
        return isinstance(v, dict)
    if t == "array":
        return isinstance(v, list)
    if t == "string":
        return isinstance(v, str)
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool) or (isinstance(v, float) and v.is_integer())
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == "boolean":
        return isinstance(v, bool)
    return True


def _obj(props=None, required=(), preserve=False, **extra):
    s = {"type": "object"}
    if props is not None:
        s["properties"] = props
    if required:
        s["required"] = list(required)
    if preserve:
        s["x-kubernetes-preserve-unknown-fields"] = True
    s.update(extra)
    return s


_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_INT32 = {"type": "integer", "format": "int32"}
_INT64 = {"type": "integer", "format": "int64"}
_ANY_OBJ = _obj(preserve=True)
_ANY_LIST = {"type": "array", "items": _ANY_OBJ}
_LOG_LEVEL = {"type": "string", "enum": ["", "Normal", "Debug", "Trace", "TraceAll"], "default": "Normal"}
_DNS_NAME = {"type": "string", "maxLength": 253,
             "pattern": r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"}


def _storage_schema():
    return _obj({
        "emptyDir": _obj({}),
        "pvc": _obj({"claim": _STR}),
        "s3": _obj({
            "bucket": _STR, "region": _STR, "regionEndpoint": _STR,
            "chunkSizeMiB": {"type": "integer", "format": "int32", "minimum": 5, "maximum": 5120},
            "encrypt": _BOOL, "keyID": _STR, "virtualHostedStyle": _BOOL,
            "cloudFront": _obj({"baseURL": _STR, "privateKey": _ANY_OBJ, "keypairID": _STR, "duration": _STR},
                               required=("baseURL", "keypairID", "privateKey")),
            "trustedCA": _obj({"name": _DNS_NAME}),
        }),
        "gcs": _obj({"bucket": _STR, "region": _STR, "projectID": _STR, "keyID": _STR}),
        "swift": _obj({k: _STR for k in ("authURL", "authVersion", "container", "domain", "domainID",
                                         "tenant", "tenantID", "regionName")}),
        "azure": _obj({"accountName": _STR,
                       "container": {"type": "string", "minLength": 3, "maxLength": 63,
                                     "pattern": r"^[0-9a-z]+(-[0-9a-z]+)*$"},
                       "cloudName": _STR, "networkAccess": _ANY_OBJ}),
        "ibmcos": _obj({k: _STR for k in ("bucket", "location", "resourceGroupName", "resourceKeyCRN",
                                          "serviceInstanceCRN")}),
        "oss": _ANY_OBJ,
        "managementState": {"type": "string", "pattern": "^(Managed|Unmanaged)$"},
    })


def _registry_config_schema():
    spec = _obj({
        "managementState": {"type": "string", "pattern": "^(Managed|Unmanaged|Force|Removed)$"},
        "logLevel": _LOG_LEVEL,
        "operatorLogLevel": _LOG_LEVEL,
        "unsupportedConfigOverrides": {"type": "object", "nullable": True,
                                       "x-kubernetes-preserve-unknown-fields": True},
        "observedConfig": {"type": "object", "nullable": True, "x-kubernetes-preserve-unknown-fields": True},
        "httpSecret": _STR,
        "proxy": _obj({"http": _STR, "https": _STR, "noProxy": _STR}),
        "storage": _storage_schema(),
        "readOnly": _BOOL,
        "disableRedirect": _BOOL,
        "requests": _ANY_OBJ,
        "defaultRoute": _BOOL,
        "routes": {"type": "array", "items": _obj({"name": _STR, "hostname": _STR, "secretName": _STR},
                                                   required=("name",))},
        "replicas": _INT32,
        "logging": _INT64,
        "resources": _ANY_OBJ,
        "nodeSelector": _obj(preserve=True),
        "tolerations": _ANY_LIST,
        "rolloutStrategy": {"type": "string", "pattern": "^(RollingUpdate|Recreate)$"},
        "affinity": _ANY_OBJ,
        "topologySpreadConstraints": _ANY_LIST,
    }, required=("replicas",))
    status = _obj(preserve=True)
    return _obj({"apiVersion": _STR, "kind": _STR, "metadata": _obj(preserve=True), "spec": spec,
                 "status": status}, required=("metadata", "spec"))


SCHEMAS: dict[tuple, dict] = {
    ("imageregistry.operator.openshift.io", "configs"): _registry_config_schema(),
}


def validate(rt, obj) -> list[dict]:
    """Validate `obj` (defaults are applied and unknown fields pruned, in place). Returns causes."""
    errors = validate_metadata(rt, obj)
    schema = SCHEMAS.get((rt.group, rt.plural))
    if schema is not None:
        _check(schema, obj, "", errors)
    return errors
