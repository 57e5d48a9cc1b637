"""Which cluster a run talks to, chosen as `oc` and `kubectl` choose their kubeconfig.

The rule (issue 17 item 4): an explicit kubeconfig (`--kubeconfig`, or the notebook's
`REGISTRY_CONFORMANCE_KUBECONFIG`), else the `KUBECONFIG` variable, else the embedded local stand-in
cluster; forcing the local cluster (`--local-cluster`) overrides both. Unlike `oc`, there is no fallback
to `~/.kube/config`: without either the run uses the local cluster, which it starts itself, so a
forgotten variable never sends destructive checks to whatever cluster the user last logged in to.

`KUBECONFIG` may list several files (`a:b`), which `oc` merges; the suite reads one file, so such a
list is refused with a message that says how to make one file of it.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Mapping


class KubeconfigChoiceError(ValueError):
    """The variables name no usable single kubeconfig; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class KubeconfigSource:
    path: str | None        # None: the embedded local cluster
    origin: str             # "--kubeconfig" (or the caller's name for it), "KUBECONFIG", "local"
    why_local: str = ""     # for the local cluster: why it was chosen

    @property
    def local(self) -> bool:
        return self.path is None

    def describe(self) -> str:
        """In words, for a header or a certificate."""
        if self.local:
            return f"the embedded local cluster ({self.why_local})"
        return f"the cluster of the kubeconfig {self.path} (from {self.origin})"


def choose_kubeconfig(explicit: str | os.PathLike | None = None, *, force_local: bool = False,
                      explicit_name: str = "--kubeconfig",
                      environ: Mapping[str, str] | None = None) -> KubeconfigSource:
    """The kubeconfig to use: `explicit`, else KUBECONFIG (from `environ`, default os.environ), else
    None (the local cluster); `force_local` picks the local cluster whatever is set.
    `explicit_name` names the explicit setting in `describe()` and in errors."""
    env = os.environ if environ is None else environ
    if force_local:
        return KubeconfigSource(None, "local", "forced")
    if explicit:
        return KubeconfigSource(_absolute(str(explicit)), explicit_name)
    listed = [p for p in (env.get("KUBECONFIG") or "").split(os.pathsep) if p.strip()]
    if not listed:
        return KubeconfigSource(None, "local", f"no {explicit_name} and KUBECONFIG is not set")
    if len(listed) > 1:
        raise KubeconfigChoiceError(
            f"KUBECONFIG lists {len(listed)} files ({os.pathsep.join(listed)}), which oc merges; this suite "
            f"reads one kubeconfig: merge them with `oc config view --flatten > FILE` and give "
            f"{explicit_name}=FILE (or KUBECONFIG=FILE)")
    return KubeconfigSource(_absolute(listed[0]), "KUBECONFIG")


def _absolute(path: str) -> str:
    """`~` expanded and made absolute (the run may change directory; reports name the file)."""
    return str(Path(os.path.expanduser(path.strip())).absolute())
