"""JSON merge patch (RFC 7386), JSON patch (RFC 6902, via `jsonpatch`) and strategic merge patch."""
from __future__ import annotations

import copy

import jsonpatch

from .errors import APIError, bad_request


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def json_patch(target, patch):
    if not isinstance(patch, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    try:
        return jsonpatch.apply_patch(target, patch, in_place=False)
    except jsonpatch.JsonPatchTestFailed as e:
        raise APIError(422, "Invalid", f"the server rejected our request due to an error in our request: {e}")
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
        raise APIError(422, "Invalid", f"the server rejected our request due to an error in our request: {e}")
    except (TypeError, KeyError, ValueError, IndexError) as e:
        raise bad_request(f"invalid JSON patch: {e}")


# Strategic merge: the patch merge keys of the built-in types (field name -> merge key).
# A list field not named here is replaced as a whole (atomic), as kube does for lists without a key.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "env": "name",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "secrets": "name",            # serviceaccounts
    "resourceClaims": "name",
    "taints": "key",
}
# `ports` depends on where it is: container ports are keyed by containerPort, service ports by port.
# Primitive lists merged as sets.
SET_LISTS = {"finalizers"}


def _ports_key(items):
    for it in items:
        if isinstance(it, dict):
            if "containerPort" in it:
                return "containerPort"
            if "port" in it:
                return "port"
    return None


def strategic_merge(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k.startswith("$retainKeys") or k == "$patch":
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [x for x in result[field] if x not in (v or [])]
            continue
        if v is None:
            result.pop(k, None)
            continue
        cur = result.get(k)
        if isinstance(v, dict):
            merged = strategic_merge(cur, v)
            if merged is None:
                result.pop(k, None)
            else:
                result[k] = merged
        elif isinstance(v, list):
            result[k] = _merge_list(k, cur if isinstance(cur, list) else [], v)
        else:
            result[k] = v
    return result


def _merge_list(field, current, patch):
    replace = any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch)
    items = [x for x in patch if not (isinstance(x, dict) and x.get("$patch") == "replace")]
    if replace:
        return [copy.deepcopy(x) for x in items]
    if field in SET_LISTS:
        out = list(current)
        for x in items:
            if x not in out:
                out.append(x)
        return out
    key = MERGE_KEYS.get(field)
    if field == "ports":
        key = _ports_key(items) or _ports_key(current)
    if key is None or not all(isinstance(x, dict) for x in items):
        return copy.deepcopy(items)
    out = [copy.deepcopy(x) for x in current]
    for x in items:
        kv = x.get(key)
        idx = next((i for i, c in enumerate(out) if isinstance(c, dict) and c.get(key) == kv), None)
        if x.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(strategic_merge({}, x))
        else:
            out[idx] = strategic_merge(out[idx], x)
    return out
