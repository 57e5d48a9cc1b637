"""No credential, nor any 8 characters of one, reaches anything a run writes (issue 17, item 1).

The suite runs against a served local cluster with --kubeconfig, once failing (a fault knob makes the
emptyDir push and pull fail, so pytest prints the test's arguments, `cluster` among them, and with `-l`
every frame's locals) and once passing. The credentials in play are real ones of that run: the tokens of
the kubeconfig's users, every ServiceAccount token the run requests (recorded by the
`credential_probe` plugin), and the S3 access and secret keys of the ObjectBucketClaim the ceph-rgw
backend creates (read from its Secret while the run goes on). Then every file under the reports
directory (JUnit, allure results, evidence, logs, journal, certificate, matrix...) and the terminal
output are searched for every 8-character substring of each credential.
"""
from __future__ import annotations

import base64
import os
import threading
from pathlib import Path

import pytest

from utilities import kube, redact

FRAGMENT = 8
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "REGISTRY_STORAGE_S3_ACCESSKEY",
           "REGISTRY_STORAGE_S3_SECRETKEY")
SELECT = ["tests/test_storage_backends.py", "-k", "push_and_pull and (emptydir or ceph-rgw)"]


class S3KeyWatch:
    """Reads the S3 keys of every Secret on the cluster while a run goes on (the run's ObjectBucketClaim
    and the registry's S3 credentials live only while their backend runs)."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.keys: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def _poll(self):
        while not self._stop.wait(0.3):
            try:
                secrets = kube.call(self.cluster.core.list_secret_for_all_namespaces).items
            except Exception:  # noqa: BLE001 - the next poll reads again
                continue
            for s in secrets:
                for k, v in (s.data or {}).items():
                    if k in S3_KEYS and v:
                        self.keys.add(base64.b64decode(v).decode())


def fragments(secret: str) -> set[str]:
    return {secret[i:i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}


def outputs(run_dir: Path, terminal: str, elsewhere: Path | None = None) -> dict[str, bytes]:
    """Every file under the run's reports directory (and under `elsewhere`), and the terminal output."""
    out = {}
    for root in (run_dir, elsewhere):
        if root is not None:
            out.update({str(p.relative_to(root.parent)): p.read_bytes() for p in root.rglob("*") if p.is_file()})
    out["<terminal>"] = terminal.encode()
    return out


def leaks(credentials: dict[str, str], written: dict[str, bytes]) -> list[str]:
    """'where: which credential (a hint, never the fragment itself)' for each output holding a fragment."""
    found = []
    for what, value in credentials.items():
        frags = [f.encode() for f in fragments(value)]
        for where, data in written.items():
            hits = [f for f in frags if f in data]
            if hits:
                found.append(f"{where}: {len(hits)} fragment(s) of {what}")
    return found


def _credentials(local, tokens_file: Path, watch: S3KeyWatch) -> dict[str, str]:
    creds = {}
    for i, v in enumerate(redact.kubeconfig_secrets(local.kubeconfig)):
        if len(v) >= FRAGMENT and "-----BEGIN" not in v:
            creds[f"kubeconfig token #{i}"] = v
    sa = [t for t in tokens_file.read_text().split()] if tokens_file.exists() else []
    for i, t in enumerate(sorted(set(sa))):
        creds[f"ServiceAccount token #{i}"] = t
    for i, k in enumerate(sorted(watch.keys)):
        creds[f"S3 key #{i}"] = k
    return creds


def _run(local, tmp_path: Path, name: str, *args) -> tuple[object, int, dict[str, str]]:
    tokens_file = tmp_path / f"{name}-tokens.txt"
    os.environ["CREDENTIAL_PROBE_OUT"] = str(tokens_file)
    try:
        with S3KeyWatch(local.cluster) as watch:
            run = local.suite(local.run_id(name), "-p", "selftests.safety.credential_probe", *args)
            rc = run.wait(600)
    finally:
        os.environ.pop("CREDENTIAL_PROBE_OUT", None)
    return run, rc, _credentials(local, tokens_file, watch)


def _check(run, credentials: dict[str, str], elsewhere: Path | None = None) -> None:
    kinds = {k.split(" #")[0] for k in credentials}
    assert kinds == {"kubeconfig token", "ServiceAccount token", "S3 key"}, \
        f"the run did not handle every kind of credential: {sorted(credentials)}\n{run.output[-3000:]}"
    found = leaks(credentials, outputs(run.run_dir, run.output, elsewhere))
    assert not found, "credential fragments in the run's outputs:\n" + "\n".join(found)


def test_a_failing_run_shows_no_credential_fragment(local, tmp_path):
    ci = tmp_path / "ci"            # JUnit where a CI job asks for it, outside the reports directory
    local.set_faults({"registry.dropImages": "true"})
    try:
        run, rc, credentials = _run(local, tmp_path, "fragments-failing", *SELECT, "-l",
                                    f"--junitxml={ci / 'junit.xml'}")
    finally:
        local.set_faults({"registry.dropImages": None})
    assert rc == 1, f"the run was to fail (exit 1), it exited {rc}:\n{run.output[-3000:]}"
    junit = (ci / "junit.xml").read_text()
    # pytest printed the failing test's arguments: the `cluster` fixture is there, without its token
    assert "cluster = Cluster(" in junit and "cluster = Cluster(" in run.output, junit[:3000]
    _check(run, credentials, ci)
    local.assert_back(run.run_id)


def test_a_passing_run_shows_no_credential_fragment(local, tmp_path):
    run, rc, credentials = _run(local, tmp_path, "fragments-passing", *SELECT, "-vv")
    assert rc == 0, f"the run was to pass, it exited {rc}:\n{run.output[-3000:]}"
    _check(run, credentials)
    local.assert_back(run.run_id)


@pytest.mark.parametrize("text", ["token='sha256~abcdefgh...'", "x sha256~ab y", "...xyz01234'"])
def test_the_search_finds_a_fragment(text):
    """The search itself: 8 characters of a credential are found anywhere, 7 are not."""
    secret = "sha256~abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    assert leaks({"t": secret}, {"out": text.encode()})
    assert leaks({"t": secret}, {"out": b"sha256~ bcdefgh 0123456"}) == []
