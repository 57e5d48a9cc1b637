"""notebooks/procedure.ipynb on a served local cluster, as on a real one (issue 17 item 7): reached through
KUBECONFIG, its changes under the suite's lock, snapshot and journal, in a run directory that the
notebook's first cell names; whatever stops it half-way leaves a state that `python -m utilities
restore` puts back exactly.

- run to the end: the Config exactly as it was, the lock released, nothing left;
- a cell that fails in the middle (the notebook executed with nbclient, as `make test` does), or one
  that fails before any change (the kernel's exit then releases the lock);
- the kernel killed (kill -9) in the middle of a rollout;
- the kernel interrupted and left idle: the lock is no longer renewed and expires, the restore runs while
  the kernel lives, and a cell run while another process holds the lock is refused before it runs.
One served local cluster for the module (selftests/safety/conftest.py).
"""
from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from selftests.safety.conftest import registry_spec_managed_with
from utilities.localcluster_process import REPO_ROOT
from utilities.lock import ClusterLock, read_lock

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
jupyter_manager = pytest.importorskip("jupyter_client.manager")

NOTEBOOKS = REPO_ROOT / "notebooks"
PROCEDURE = NOTEBOOKS / "procedure.ipynb"
STALL = "deployment.stallRollout"
PLANTED = "a cell that fails in the middle"


@pytest.fixture(autouse=True)
def original_config_first(local):
    assert local.spec() == local.original, "an earlier case left the Config changed"


def notebook_env(local, tmp_path: Path, **extra) -> dict:
    """The served cluster through KUBECONFIG (not the notebook's own variable), a real cluster's rules."""
    env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_CONFORMANCE_KUBECONFIG",
                                                            "REGISTRY_CONFORMANCE_LOCAL_CLUSTER")}
    env.update(KUBECONFIG=local.kubeconfig, ALLOW_DESTRUCTIVE="yes", REPORTS_DIR=str(tmp_path / "reports"),
               INGRESS_ADDRESS=local.info["ingress_address"], NOTEBOOK_TIMEOUT="60", **extra)
    return env


def code_cell(nb, marker: str) -> int:
    """Index of the one code cell whose source contains `marker`."""
    found = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and marker in c.source]
    assert len(found) == 1, f"{len(found)} code cells contain {marker!r}"
    return found[0]


def the_run_dir(tmp_path: Path) -> Path:
    found = list((tmp_path / "reports").glob("notebook-*"))
    assert len(found) == 1, f"run directories: {found}"
    return found[0]


def restore_command_of(text: str) -> str:
    m = re.search(r"^\s*cd .* -m utilities restore .*$", text, re.M)
    assert m, f"the first cell prints no restore command:\n{text}"
    return m.group(0).strip()


def restored(local, run_dir: Path) -> str:
    r = local.restore(run_dir)
    assert r.returncode == 0, f"restore failed ({r.returncode}): {r.stderr}{r.stdout}"
    return r.stdout


def journal_has(run_dir: Path, event: str) -> bool:
    try:
        return any(json.loads(line).get("event") == event for line in (run_dir / "journal.jsonl").read_text()
                   .splitlines() if line.strip().endswith("}"))
    except FileNotFoundError:
        return False


def execute_failing_after(marker: str, local, tmp_path: Path, monkeypatch):
    """The notebook executed as `make test` does (nbclient), with a cell that fails planted after the
    cell containing `marker`; returns the notebook with the outputs of the cells that ran."""
    nb = nbformat.read(PROCEDURE, as_version=4)
    nb.cells.insert(code_cell(nb, marker) + 1, nbformat.v4.new_code_cell(f"raise RuntimeError({PLANTED!r})"))
    for k, v in notebook_env(local, tmp_path).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("REGISTRY_CONFORMANCE_KUBECONFIG", raising=False)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    with pytest.raises(nbclient.exceptions.CellExecutionError, match=PLANTED):
        client.execute()
    return nb


def test_run_to_the_end_it_leaves_the_cluster_exactly_as_it_was(local, tmp_path, monkeypatch):
    for k, v in notebook_env(local, tmp_path).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("REGISTRY_CONFORMANCE_KUBECONFIG", raising=False)
    nb = nbformat.read(PROCEDURE, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "pushed and pulled" in text and "the Config is back exactly as it was" in text, text[-3000:]
    run_dir = the_run_dir(tmp_path)
    assert journal_has(run_dir, "restored") and (run_dir / "control-plane.json").exists()
    local.assert_back(run_dir.name)                         # exact spec, lock released, nothing left


def test_a_failed_cell_leaves_what_restore_puts_back_exactly(local, tmp_path, monkeypatch):
    nb = execute_failing_after("configure_backend(", local, tmp_path, monkeypatch)
    first = "".join(o.get("text", "") for o in nb.cells[code_cell(nb, "recovery_note(")].outputs)
    run_dir = the_run_dir(tmp_path)
    command = restore_command_of(first)
    assert f"--run-dir={run_dir}" in command and f"--kubeconfig={local.kubeconfig}" in command, command
    assert "(from KUBECONFIG)" in first, first
    assert "python -m utilities restore" in nb.cells[0].source        # the notebook's top says so too

    # What the failure left: the snapshot of the served cluster (KUBECONFIG was used) and the journal of
    # its changes on disk, the lock no longer renewed (its process, the kernel, is gone: stale at once).
    # (nbclient shuts the kernel down, and Python's exit closes the steps' context managers: they undo
    # part of the procedure, journaled, until the kernel manager kills the kernel: whatever they got to,
    # the restore puts the rest back.)
    snapshot = json.loads((run_dir / "config-snapshot.json").read_text())
    assert snapshot["kubeconfig"] == local.kubeconfig and snapshot["spec"] == local.original, snapshot
    assert journal_has(run_dir, "config-intent") and journal_has(run_dir, "created")
    lock = read_lock(local.cluster)
    assert lock is not None and lock.stale and str(run_dir) == lock.run_dir, lock and lock.describe()

    out = restored(local, run_dir)
    assert "put back the original Config spec" in out, out
    local.assert_back(the_run_dir(tmp_path).name)


def test_a_failure_before_any_change_releases_the_lock_at_shutdown(local, tmp_path, monkeypatch):
    execute_failing_after("notebook.NotebookRun(", local, tmp_path, monkeypatch)
    assert (the_run_dir(tmp_path) / "config-snapshot.json").exists()
    assert read_lock(local.cluster) is None, "nothing was changed: the kernel's exit releases the lock"
    local.assert_back(the_run_dir(tmp_path).name)


class Kernel:
    """A kernel of its own running the notebook's cells one by one (jupyter_client), to be killed or
    interrupted in the middle of one."""

    def __init__(self, env: dict):
        self.km, self.kc = jupyter_manager.start_new_kernel(kernel_name="python3", cwd=str(NOTEBOOKS), env=env)
        self.nb = nbformat.read(PROCEDURE, as_version=4)
        self.pid = int(self.run("import os; print(os.getpid())")[1])

    def run(self, code: str, timeout: float = 120) -> tuple[str, str]:
        """(status, what the cell printed and raised)."""
        out: list[str] = []

        def hook(msg):
            c = msg["content"]
            if msg["msg_type"] == "stream":
                out.append(c["text"])
            elif msg["msg_type"] == "error":
                out.append(f"{c['ename']}: {c['evalue']}")
        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook)
        return reply["content"]["status"], "".join(out)

    def reply(self, msg_id: str, timeout: float = 60) -> str:
        """The status of the cell sent as `msg_id` (kc.execute), once it ended."""
        while True:
            msg = self.kc.get_shell_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg["content"]["status"]

    def cell(self, marker: str) -> str:
        return self.nb.cells[code_cell(self.nb, marker)].source

    def run_cells(self, *markers: str) -> str:
        text = ""
        for m in markers:
            status, out = self.run(self.cell(m))
            assert status == "ok", f"cell {m!r}: {out}"
            text += out
        return text

    def close(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel_factory():
    kernels = []

    def make(env):
        kernels.append(Kernel(env))
        return kernels[-1]
    yield make
    for k in kernels:
        k.close()


SETUP = ("recovery_note(", "notebook.connect(", "notebook.NotebookRun(")


def test_kill9_of_the_kernel_mid_rollout_leaves_a_restorable_state(local, tmp_path, kernel_factory):
    kernel = kernel_factory(notebook_env(local, tmp_path))
    kernel.run_cells(*SETUP)
    run_dir = the_run_dir(tmp_path)
    local.set_faults({STALL: "true"})                     # the rollout goes on until the kill
    try:
        kernel.kc.execute(kernel.cell("configure_backend("))
        local.wait_for(lambda: registry_spec_managed_with(local, "pvc"), 60, "Managed with pvc storage")
        local.wait_for(lambda: local.cluster.apps.list_namespaced_deployment("openshift-image-registry").items,
                       30, "the registry Deployment")
        os.kill(kernel.pid, signal.SIGKILL)
        local.wait_for(lambda: not kernel.km.is_alive(), 10, "the kernel reaped")    # as a Jupyter server does
        local.wait_for(lambda: (read_lock(local.cluster) or pytest.fail("no lock left")).holder_dead, 10,
                       "the kernel gone")
        assert local.spec() != local.original
    finally:
        local.set_faults({STALL: None})
    out = restored(local, run_dir)
    assert "put back the original Config spec" in out, out
    local.assert_back(run_dir.name)


def test_an_interrupted_idle_kernel_lets_the_lock_expire_and_refuses_cells_while_another_holds_it(
        local, tmp_path, kernel_factory):
    kernel = kernel_factory(notebook_env(local, tmp_path, NOTEBOOK_LOCK_SECONDS="6"))
    kernel.run_cells(*SETUP, "configure_backend(")
    run_dir = the_run_dir(tmp_path)
    sleeping = kernel.kc.execute("import time; time.sleep(600)")
    time.sleep(8)                                         # a long cell renews the lock (every 2 s)
    held = read_lock(local.cluster)
    assert held is not None and not held.stale, held and held.describe()
    kernel.km.interrupt_kernel()
    assert kernel.reply(sleeping) == "error"              # KeyboardInterrupt

    # Idle: nobody renews; the lease expires although the kernel lives.
    first = read_lock(local.cluster)
    time.sleep(8)
    idle = read_lock(local.cluster)
    assert idle.renew_time == first.renew_time and idle.expired and not idle.holder_dead, idle.describe()

    # Another process holds the lock (as `python -m utilities restore` of this run does): a cell that
    # would change the cluster is refused before it runs.
    other = ClusterLock(local.cluster, run_dir.name, run_dir=run_dir).acquire(break_stale=True, renew=False)
    try:
        status, out = kernel.run("print('this cell ran')")
        assert status == "error" and "another process holds the cluster lock" in out, out
        assert "this cell ran" not in out, out
    finally:
        other.release()

    assert registry_spec_managed_with(local, "pvc"), local.spec()
    out = restored(local, run_dir)                         # while the kernel still lives
    assert "put back the original Config spec" in out, out
    local.assert_back(run_dir.name)


def test_another_runs_lock_stops_the_notebook_before_any_change(local, tmp_path, kernel_factory):
    other = ClusterLock(local.cluster, "someone-elses-run").acquire(renew=False)
    try:
        kernel = kernel_factory(notebook_env(local, tmp_path))
        kernel.run_cells(*SETUP[:2])
        status, out = kernel.run(kernel.cell(SETUP[2]))
        assert status == "error" and "another run holds the cluster lock" in out and "someone-elses-run" in out, out
        assert local.spec() == local.original
    finally:
        other.release()
    assert read_lock(local.cluster) is None
