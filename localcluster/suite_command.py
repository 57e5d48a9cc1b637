"""The line `python -m localcluster serve` prints once the cluster is ready: the exact command that runs
the suite against it ("suite: cd REPO && PYTHON -m pytest --kubeconfig=... --ingress-address=..."). The
route hosts of the local cluster do not resolve, so the router's addresses are given."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path


def line(kubeconfig, ingress_address: str, ingress_http_address: str | None = None) -> str:
    """The exact command that runs the suite against this cluster (route hosts do not resolve here:
    the router's address is given with --ingress-address, its plain-HTTP one with
    --ingress-http-address)."""
    root = Path(__file__).resolve().parent.parent
    return (f"suite: cd {shlex.quote(str(root))} && {shlex.quote(sys.executable)} -m pytest "
            f"--kubeconfig={shlex.quote(str(Path(kubeconfig).resolve()))} "
            f"--ingress-address={ingress_address} "
            + (f"--ingress-http-address={ingress_http_address} " if ingress_http_address else "")
            + "--allow-destructive")
