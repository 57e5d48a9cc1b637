"""Which cluster a run is against, chosen as `oc`/`kubectl` choose their kubeconfig.

    --kubeconfig=PATH   that file;
    else $KUBECONFIG    a list of files (":"-separated), merged as kubectl merges them: empty entries and
                        files that do not exist are skipped, the first file to define a name (cluster,
                        user, context) or the current-context wins;
    else                the embedded local stand-in cluster (`--local-cluster` forces it even when
                        KUBECONFIG is set). Unlike oc, ~/.kube/config is never read by default: a run
                        that may change a registry needs the cluster named.

The official client (kubernetes.config.load_kube_config) already splits and merges such a list, but it
lets the LAST file's current-context win; `current_context` gives kubectl's answer, and
`utilities.kube.load_cluster` passes it on.
"""
from __future__ import annotations

import dataclasses
import os

import yaml

ENV = "KUBECONFIG"
SEPARATOR = os.pathsep          # ":" (";" on Windows), as kubectl and the official client split it

OPTION, ENVIRONMENT, LOCAL, MUST_GATHER = "option", "environment", "local", "must-gather"


@dataclasses.dataclass(frozen=True)
class Source:
    """Where the cluster under test comes from. `value` is what the suite's `--kubeconfig` option holds
    for the run (a path, or KUBECONFIG's list as it is); None for the local cluster."""
    kind: str
    value: str | None = None
    suite: bool = True          # the suite (which has --local-cluster), not a `python -m utilities` command

    @property
    def real(self) -> bool:
        return self.kind in (OPTION, ENVIRONMENT)

    def fix_hint(self) -> str:
        """What to do when that kubeconfig cannot be used."""
        if self.kind == ENVIRONMENT:
            return (f"point {ENV} at a readable kubeconfig (as for oc)" +
                    (", give --kubeconfig=PATH, or pass --local-cluster to run on the embedded local stand-in "
                     "cluster" if self.suite else " or give --kubeconfig=PATH"))
        return "give a readable kubeconfig with --kubeconfig=PATH (and --context NAME)"


def choose(option: str | None, environ: dict, *, local_cluster: bool = False,
           must_gather: str | None = None) -> Source:
    """The run's cluster source (module docstring). A must-gather review is served by the local
    cluster, so KUBECONFIG does not apply to it."""
    if option:
        return Source(OPTION, str(option))
    if must_gather:
        return Source(MUST_GATHER, None)
    listed = environ.get(ENV) or ""
    if local_cluster or not listed.strip(SEPARATOR + " "):
        return Source(LOCAL, None)
    return Source(ENVIRONMENT, listed)


def paths(value) -> list[str]:
    """The files of a kubeconfig value (one path or a KUBECONFIG list) that exist, in order."""
    out = []
    for p in str(value).split(SEPARATOR):
        p = os.path.expanduser(p.strip())
        if p and os.path.exists(p) and p not in out:
            out.append(p)
    return out


def listed(value) -> list[str]:
    """Every entry of a kubeconfig value, existing or not (for messages)."""
    return [p for p in str(value).split(SEPARATOR) if p.strip()]


def _load(path: str) -> dict:
    with open(path) as f:
        doc = yaml.safe_load(f)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path} is not a kubeconfig (not a mapping)")
    return doc


def merged(value) -> dict:
    """The kubeconfig as kubectl sees it: the files merged, the first definition of a name winning,
    the first current-context winning. Raises OSError/ValueError/yaml.YAMLError for an unreadable one."""
    out: dict = {"clusters": [], "contexts": [], "users": []}
    for path in paths(value):
        doc = _load(path)
        for section in ("clusters", "contexts", "users"):
            known = {e.get("name") for e in out[section]}
            for entry in doc.get(section) or []:
                if isinstance(entry, dict) and entry.get("name") not in known:
                    out[section].append(entry)
                    known.add(entry.get("name"))
        if doc.get("current-context") and "current-context" not in out:
            out["current-context"] = doc["current-context"]
    return out


def current_context(value) -> str | None:
    """kubectl's current context of a kubeconfig value (the first file that sets one)."""
    try:
        return merged(value).get("current-context") or None
    except (OSError, ValueError, yaml.YAMLError):
        return None


def server_of(value, context: str | None) -> str | None:
    """The API server URL the context (default: the current one) points at, read without connecting."""
    try:
        doc = merged(value)
    except (OSError, ValueError, yaml.YAMLError):
        return None
    name = context or doc.get("current-context")
    ctx = next((c.get("context") or {} for c in doc["contexts"] if c.get("name") == name), None)
    if ctx is None:
        return None
    cl = next((c.get("cluster") or {} for c in doc["clusters"] if c.get("name") == ctx.get("cluster")), {})
    return cl.get("server")


def describe(source: Source, context: str | None = None, *, local_detail: str = "") -> str:
    """The cluster in words, for the report header and the certificate."""
    if source.kind == MUST_GATHER:
        return "a must-gather served read-only by the embedded local cluster, not a live cluster"
    if not source.real:
        return "the embedded local stand-in cluster, not a real cluster" + (f" ({local_detail})" if local_detail
                                                                           else "")
    where = (f"the kubeconfig given by --kubeconfig ({source.value})" if source.kind == OPTION else
             f"the kubeconfig in ${ENV} ({source.value})")
    ctx = context or current_context(source.value)
    server = server_of(source.value, context)
    return where + (f", context {ctx}" if ctx else "") + (f", server {server}" if server else "")


def is_readable(value) -> tuple[bool, str]:
    """(True, "") when the value names at least one file; else (False, why) for the one-line error."""
    if paths(value):
        return True, ""
    entries = listed(value)
    if len(entries) > 1:
        return False, "none of its files exists (" + ", ".join(entries) + ")"
    return False, "No such file or directory"

