"""Copy a finished in-cluster run's reports out of its PVC, as Sonobuoy's `retrieve` does.

    python -m deploy.retrieve [--kubeconfig PATH] [--context NAME] [--namespace NS] [--run RUN] DEST
    python -m deploy.retrieve --rights          # what the user running it needs (a Role in NS)

The reports live on the claim `registry-conformance-reports` (deploy/pvc.yaml, ReadWriteOnce), which
no pod mounts once the Job has finished. The command starts a short-lived pod in NS that mounts the
claim read-only (the suite's image, read from the Job or CronJob, so the tools are there; it sleeps and
ends by itself after `POD_SECONDS` should this command die), streams `reports/<run>` out of it as a
base64 tar over pods/exec (`latest` by default: the suite keeps a `latest` link to the newest run),
unpacks it into DEST/<run>/ refusing members that would land outside, and deletes the pod.

While a run is still going the claim is held by its pod on one node; the helper pod then waits for the
scheduler (RWO lets pods on that node share it) or times out: retrieve after the Job has finished.
Exit statuses: 0 copied, 2 usage, 9 kubeconfig, 16 the pod did not start or the copy failed.
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import io
import json
import os
import secrets
import sys
import tarfile
import time
from pathlib import Path

from deploy import manifests
from utilities import rights

EXIT_RETRIEVE = 16
POD_SECONDS = 900             # the helper pod's own end (activeDeadlineSeconds and its sleep)
START_TIMEOUT = 300.0
MOUNT = "/reports"
COMPONENT = "retrieve"

# Run inside the helper pod: resolve the run (a name under /reports, or `latest`), print its name on the
# first line, then its directory as a gzipped tar in base64 (pods/exec carries text).
PACKER = r"""
import base64, io, os, sys, tarfile
root = sys.argv[1]
run = os.path.basename(os.path.realpath(os.path.join(root, sys.argv[2])))
path = os.path.join(root, run)
if not os.path.isdir(path):
    sys.stderr.write("no run %s in the reports claim; runs: %s\n" % (sys.argv[2], " ".join(sorted(
        n for n in os.listdir(root) if not n.startswith(".") and n != "latest")) or "none"))
    sys.exit(3)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as tar:
    tar.add(path, arcname=run)
sys.stdout.write(run + "\n")
sys.stdout.write(base64.b64encode(buf.getvalue()).decode())
"""

# What the user running `retrieve` needs, in the deploy namespace only.
RIGHTS = [
    rights.Right("get", "batch", "jobs", "the suite's image (the Job's)", namespace=manifests.NAMESPACE),
    rights.Right("get", "batch", "cronjobs", "the suite's image (the CronJob's)", namespace=manifests.NAMESPACE),
    rights.Right("get", "", "persistentvolumeclaims", "the reports claim exists",
                 namespace=manifests.NAMESPACE),
    *[rights.Right(v, "", "pods", "the helper pod that mounts the claim", namespace=manifests.NAMESPACE)
      for v in ("create", "get", "delete")],
    # Exec over a websocket is a GET to the API server; RBAC checks create (kube 1.30+) or get (older).
    *[rights.Right(v, "", "pods", "stream the reports out of the helper pod", subresource="exec",
                   namespace=manifests.NAMESPACE) for v in ("create", "get")],
]


class RetrieveError(Exception):
    """One line: what failed and what to do."""


def helper_pod(image: str, namespace: str = manifests.NAMESPACE, claim: str = manifests.REPORTS_CLAIM,
               suffix: str | None = None) -> dict:
    """The short-lived pod: the claim read-only at /reports, nothing else; it ends by itself."""
    name = f"{manifests.NAME}-{COMPONENT}-{suffix or secrets.token_hex(3)}"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/name": manifests.NAME, "app.kubernetes.io/component": COMPONENT}},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": POD_SECONDS,
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": COMPONENT, "image": image, "command": ["sleep", str(POD_SECONDS)],
                "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                    "readOnlyRootFilesystem": True},
                "volumeMounts": [{"name": "reports", "mountPath": MOUNT, "readOnly": True}],
            }],
            "volumes": [{"name": "reports",
                         "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}],
        },
    }


def packer_command(run: str) -> list[str]:
    return ["python", "-c", PACKER, MOUNT, run]


def unpack(output: str, dest: Path) -> Path:
    """The helper's output (run name, then base64 tar.gz) unpacked into dest/<run>; members that are
    links, devices or would land outside dest are refused (a tar from a volume is untrusted)."""
    first, _, payload = output.partition("\n")
    run = first.strip()
    if not run or "/" in run or run in (".", ".."):
        raise RetrieveError(f"the helper pod sent no run name (its output began {output[:80]!r})")
    try:
        data = base64.b64decode(payload, validate=False)
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")
    except (ValueError, tarfile.TarError) as e:
        raise RetrieveError(f"the reports of {run} arrived damaged ({e}); run retrieve again") from None
    dest = dest.resolve()
    with tar:
        for m in tar.getmembers():
            target = (dest / m.name).resolve()
            if not (m.isfile() or m.isdir()) or (dest not in target.parents) or \
                    not (m.name == run or m.name.startswith(run + "/")):
                raise RetrieveError(f"refused member {m.name!r} of the reports archive (outside {run}/ or not "
                                    "a plain file or directory)")
        dest.mkdir(parents=True, exist_ok=True)
        tar.extractall(dest, filter="data")
    return dest / run


def suite_image(cluster, namespace: str) -> str | None:
    """The image of the deployed Job, else of the CronJob (None: neither is readable)."""
    from kubernetes import client as k8s
    from utilities import kube
    batch = k8s.BatchV1Api(cluster.api_client)
    job = kube.get_or_none(batch.read_namespaced_job, manifests.NAME, namespace)
    if job is not None:
        return job.spec.template.spec.containers[0].image
    cron = kube.get_or_none(batch.read_namespaced_cron_job, f"{manifests.NAME}-nightly", namespace)
    if cron is not None:
        return cron.spec.job_template.spec.template.spec.containers[0].image
    return None


def _exec(cluster, name: str, namespace: str, command: list[str], timeout: float) -> str:
    """stdout of `command` in the pod (pods/exec); RetrieveError with its stderr when it fails."""
    from kubernetes import client as k8s
    from kubernetes.stream import stream
    # A plain client: `stream` swaps the request method of the client it is given.
    core = k8s.CoreV1Api(k8s.ApiClient(cluster.api_client.configuration))
    try:
        ws = stream(core.connect_get_namespaced_pod_exec, name, namespace, command=command, stdout=True,
                    stderr=True, stdin=False, tty=False, _preload_content=False)
    except Exception as e:       # noqa: BLE001 - the websocket client raises what its handshake met (even
        # AttributeError while decoding its own ApiException): every failure here is "no exec"
        raise RetrieveError(f"pods/exec into {namespace}/{name} failed ({_refusal(e)}): refused or not offered "
                            "by the API server; the user needs create "
                            "and get on pods/exec there (python -m deploy.retrieve --rights)") from None
    out, err = [], []
    deadline = time.monotonic() + timeout
    try:
        while ws.is_open() and time.monotonic() < deadline:
            ws.update(timeout=1)
            if ws.peek_stdout():
                out.append(ws.read_stdout())
            if ws.peek_stderr():
                err.append(ws.read_stderr())
        code = ws.returncode
    finally:
        ws.close()
    if code not in (0, None) or not out:
        raise RetrieveError(f"copying out of pod {namespace}/{name} failed (exit {code}): "
                            f"{''.join(err).strip() or 'no output'}")
    return "".join(out)


def _refusal(e: BaseException) -> str:
    """Why the exec handshake failed, from what the client raised: the HTTP status and the Status message
    the API server answered (the client wraps them in an ApiException, which some versions then lose in an
    AttributeError whose context it is)."""
    from kubernetes.client.exceptions import ApiException
    api = e if isinstance(e, ApiException) else e.__context__
    if not isinstance(api, ApiException):
        return f"{type(e).__name__}: {e}"
    parts = str(api.reason or "").split(" -+-+- ")     # websocket-client: status, headers, body
    status = parts[0].replace("Handshake status ", "").strip() or str(api.status)
    try:
        message = json.loads(parts[-1]).get("message", "") if len(parts) > 2 else ""
    except (ValueError, AttributeError):
        message = ""
    return f"{status}: {message}" if message else status


def _wait_running(cluster, name: str, namespace: str, timeout: float) -> None:
    from utilities import kube
    deadline = time.monotonic() + timeout
    phase, why = "?", ""
    while time.monotonic() < deadline:
        pod = kube.get_or_none(cluster.core.read_namespaced_pod, name, namespace)
        phase = pod.status.phase if pod is not None and pod.status else "?"
        if phase == "Running":
            return
        if phase in ("Failed", "Succeeded"):
            break
        conds = (pod.status.conditions or []) if pod is not None and pod.status else []
        why = "; ".join(f"{c.type}: {c.message}" for c in conds if c.status != "True" and c.message)
        time.sleep(2)
    raise RetrieveError(f"the helper pod {namespace}/{name} is {phase} after {timeout:.0f} s"
                        + (f" ({why})" if why else "") + "; is a run still holding the claim "
                        f"{manifests.REPORTS_CLAIM} on another node? retrieve after the Job has finished")


def retrieve(cluster, dest: Path, *, namespace: str = manifests.NAMESPACE, run: str = "latest",
             image: str | None = None, start_timeout: float = START_TIMEOUT) -> Path:
    """Copy reports/<run> of the claim into dest/<run>; returns that directory."""
    from utilities import kube
    if kube.get_or_none(cluster.core.read_namespaced_persistent_volume_claim, manifests.REPORTS_CLAIM,
                        namespace) is None:
        raise RetrieveError(f"no claim {namespace}/{manifests.REPORTS_CLAIM}: is the suite deployed there "
                            "(deploy/pvc.yaml)? give its namespace with --namespace")
    image = image or suite_image(cluster, namespace)
    if not image:
        raise RetrieveError(f"no Job or CronJob {manifests.NAME} in {namespace} to take the suite's image from; "
                            "give it with --image")
    pod = helper_pod(image, namespace)
    name = pod["metadata"]["name"]
    kube.call(cluster.core.create_namespaced_pod, namespace, pod)
    try:
        _wait_running(cluster, name, namespace, start_timeout)
        output = _exec(cluster, name, namespace, packer_command(run), timeout=POD_SECONDS - start_timeout)
        return unpack(output, dest)
    finally:
        from kubernetes.client.exceptions import ApiException
        try:
            kube.call(cluster.core.delete_namespaced_pod, name, namespace, grace_period_seconds=0)
        except ApiException as e:
            if e.status != 404:
                print(f"retrieve: could not delete the helper pod {namespace}/{name} ({e.status}); it ends by "
                      f"itself within {POD_SECONDS} s", file=sys.stderr)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deploy.retrieve", description=__doc__.splitlines()[0])
    ap.add_argument("dest", nargs="?", type=Path, help="where to put <run>/ (created)")
    ap.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"),
                    help="kubeconfig of the cluster (default: $KUBECONFIG)")
    ap.add_argument("--context", default=None)
    ap.add_argument("--namespace", default=manifests.NAMESPACE, help=f"where the suite is deployed ({manifests.NAMESPACE})")
    ap.add_argument("--run", default="latest", help="the run id (a directory of the claim; default: the newest)")
    ap.add_argument("--image", default=None, help="image of the helper pod (default: the deployed Job's)")
    ap.add_argument("--rights", action="store_true", help="print the rights this command needs and exit")
    a = ap.parse_args(argv)
    if a.rights:
        print(rights.describe([dataclasses.replace(r, namespace=a.namespace) for r in RIGHTS]))
        return 0
    if a.dest is None:
        ap.error("DEST is required")
    if not a.kubeconfig:
        ap.error("no kubeconfig: give --kubeconfig or set KUBECONFIG")
    from utilities import preflight
    try:
        cluster = preflight.connect(a.kubeconfig, a.context)
    except preflight.PreflightError as e:
        print(f"retrieve: {e.message}", file=sys.stderr)
        return e.code
    try:
        where = retrieve(cluster, a.dest, namespace=a.namespace, run=a.run, image=a.image)
    except RetrieveError as e:
        print(f"retrieve: {e}", file=sys.stderr)
        return EXIT_RETRIEVE
    finally:
        cluster.api_client.close()
    print(f"retrieved {where} (open certificate.html, matrix.html; `make report RUN_DIR={where}`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
