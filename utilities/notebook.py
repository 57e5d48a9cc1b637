"""Helpers for the notebooks (notebooks/*.ipynb): choose and connect to a cluster, make the procedure's
changes under the suite's own safety, show objects as tables.

`kubeconfig_from_environment()` picks the cluster as the suite does (`REGISTRY_CONFORMANCE_KUBECONFIG`,
else `KUBECONFIG`, else the local stand-in cluster). `connect()` starts the local cluster in the run's
directory, or, given a kubeconfig, runs the suite's preflight checks on that cluster (and refuses to go
on without `allow_destructive=True`: the procedure changes the cluster-wide registry Config).

`NotebookRun` makes the notebook's changes go through the same lock, durable snapshot and journal as a
suite run (`fixtures.safety.begin_changes` / `end_changes`), in `reports/<run-id>/`, so that whatever
stops the notebook half-way (a failed cell, an interrupted or killed kernel, a closed notebook) leaves
a state that `python -m utilities restore --run-dir=reports/<run-id>` puts back exactly. Under IPython
the cluster lock is renewed only while a cell runs: a kernel that sits idle lets it expire, so the
restore command can take it over, instead of holding the cluster for as long as the kernel lives.
"""
from __future__ import annotations

import ast
import atexit
import dataclasses
import html
import logging
import os
import shlex
import sys
from pathlib import Path

from utilities import kube, preflight, waits
from utilities.kube import REGISTRY_NAMESPACE, REGISTRY_POD_SELECTOR, Cluster, load_cluster
from utilities import kubeconfig as kubeconfigs
from utilities.localcluster_process import REPO_ROOT, LocalClusterProcess
from utilities.lock import DEFAULT_DURATION, LockHeld, LockLost

log = logging.getLogger(__name__)

KUBECONFIG_VARIABLE = "REGISTRY_CONFORMANCE_KUBECONFIG"     # the notebook's --kubeconfig
LOCAL_VARIABLE = "REGISTRY_CONFORMANCE_LOCAL_CLUSTER"       # the notebook's --local-cluster


def _yes(value: str | None) -> bool:
    return (value or "").strip().lower() in ("yes", "true", "1")


@dataclasses.dataclass(frozen=True)
class KubeconfigSource:
    """The notebook's cluster: `path` a kubeconfig (one file or a KUBECONFIG list), None for the local
    cluster; `origin` the variable it came from."""
    path: str | None
    origin: str
    why_local: str = ""

    @property
    def local(self) -> bool:
        return self.path is None

    def describe(self) -> str:
        if self.local:
            return f"the embedded local cluster ({self.why_local})"
        return f"the cluster of the kubeconfig {self.path} (from {self.origin})"


def kubeconfig_from_environment(environ=None) -> KubeconfigSource:
    """REGISTRY_CONFORMANCE_KUBECONFIG, else KUBECONFIG, else the local cluster
    (REGISTRY_CONFORMANCE_LOCAL_CLUSTER=yes forces it): the suite's rule (utilities.kubeconfig.choose),
    with the notebook's names."""
    env = os.environ if environ is None else environ
    forced = _yes(env.get(LOCAL_VARIABLE))
    if forced:
        return KubeconfigSource(None, "local", "forced")
    src = kubeconfigs.choose(env.get(KUBECONFIG_VARIABLE) or None, dict(env))
    if src.kind == kubeconfigs.OPTION:
        return KubeconfigSource(_absolute(src.value), KUBECONFIG_VARIABLE)
    if src.kind == kubeconfigs.ENVIRONMENT:
        return KubeconfigSource(kubeconfigs.SEPARATOR.join(_absolute(p) for p in kubeconfigs.listed(src.value)),
                                kubeconfigs.ENV)
    return KubeconfigSource(None, "local", f"no {KUBECONFIG_VARIABLE} and KUBECONFIG is not set")


def _absolute(path: str) -> str:
    """`~` expanded and made absolute (the notebook's working directory is notebooks/)."""
    return str(Path(os.path.expanduser(path.strip())).absolute())


def prepare_run_dir(run_id: str, reports_root: str | os.PathLike | None = None) -> Path:
    """reports/<run-id>/ (REPORTS_DIR, else the repository's reports/), as a suite run's. `reports/latest`
    is left to the suite's runs (the Allure report and `restore` without --run-dir read it)."""
    root = Path(reports_root or os.environ.get("REPORTS_DIR") or REPO_ROOT / "reports").resolve()
    run_dir = root / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def local_kubeconfig(run_dir: Path) -> Path:
    """Where the local cluster started for the run in `run_dir` writes its kubeconfig."""
    return LocalClusterProcess(Path(run_dir) / "localcluster").kubeconfig


def restore_command(kubeconfig, run_dir) -> str:
    """The shell command that puts the cluster back from the run's snapshot and journal."""
    return (f"cd {shlex.quote(str(REPO_ROOT))} && {shlex.quote(sys.executable)} -m utilities restore "
            f"--kubeconfig={shlex.quote(str(kubeconfig))} --run-dir={shlex.quote(str(run_dir))}")


def recovery_note(source: KubeconfigSource, run_dir: Path) -> str:
    """What the first cell says: the cluster, the run directory, and the command that restores it."""
    kubeconfig = source.path or local_kubeconfig(run_dir)
    lines = [f"cluster: {source.describe()}", f"run directory: {run_dir}",
             "If this notebook stops before its last cell (a cell fails, the kernel is interrupted, dies or is "
             "shut down, the notebook is closed), put the cluster back exactly with:",
             "  " + restore_command(kubeconfig, run_dir)]
    if source.local:
        info = Path(str(kubeconfig) + ".info.json")
        lines.append("(the local cluster stops when the kernel shuts down, and with it what there was to restore; "
                     f"a kernel killed with kill -9 leaves it running: its pid is in {info})")
    else:
        lines.append(f"(the cluster lock is renewed only while a cell runs: it expires {idle_lock_seconds()} s after "
                     "the last one, or at once on this host when the kernel is gone, so that command can take it "
                     "over)")
    return "\n".join(lines)


def idle_lock_seconds(environ=None) -> int:
    """How long the lock outlives the last cell that ran (NOTEBOOK_LOCK_SECONDS, default the suite's 60)."""
    env = os.environ if environ is None else environ
    value = env.get("NOTEBOOK_LOCK_SECONDS") or str(DEFAULT_DURATION)
    try:
        return max(int(value), 3)
    except ValueError:
        raise SystemExit(f"NOTEBOOK_LOCK_SECONDS={value}: give a whole number of seconds (default "
                         f"{DEFAULT_DURATION})") from None


@dataclasses.dataclass
class Connection:
    cluster: Cluster
    local: LocalClusterProcess | None = None

    def close(self) -> None:
        try:
            self.cluster.api_client.close()
        finally:
            if self.local is not None:
                self.local.stop()


def connect(kubeconfig: KubeconfigSource | str | None = None, context: str | None = None, *,
            allow_destructive: bool = False, workdir: str | Path | None = None, localcluster_args: tuple = (),
            ingress_address: str | None = None) -> Connection:
    """`kubeconfig`: a KubeconfigSource (kubeconfig_from_environment), a path, or None (the local
    cluster, started in `workdir`)."""
    source = kubeconfig if isinstance(kubeconfig, KubeconfigSource) else \
        KubeconfigSource(_absolute(str(kubeconfig)), "argument") if kubeconfig else \
        KubeconfigSource(None, "local", "no kubeconfig given")
    if not source.local:
        if not allow_destructive:
            raise SystemExit("the procedure changes the cluster's registry Config: set ALLOW_DESTRUCTIVE=yes "
                             f"to run it on {source.describe()}")
        try:
            return Connection(preflight.run(source.path, context, destructive=True, ingress_address=ingress_address))
        except preflight.PreflightError as e:
            raise SystemExit(e.message) from None
    if workdir is None:
        import tempfile
        workdir = tempfile.mkdtemp(prefix="notebook-localcluster-")
    local = LocalClusterProcess(Path(workdir), list(localcluster_args)).start()
    atexit.register(local.stop)       # a kernel that stops half-way does not leave the cluster running
    try:
        cluster = load_cluster(local.kubeconfig, embedded=True,
                               ingress_address=ingress_address or local.info.get("ingress_address"), info=local.info)
    except BaseException:
        local.stop()
        raise
    return Connection(cluster, local)


class _RunConfig:
    """What fixtures.safety reads of pytest's Config (its stash and a few options), for a run that is a
    notebook, not a pytest session: the notebook then goes through the very code a suite run does."""

    def __init__(self, run_id: str, run_dir: Path, **options):
        import pytest

        from utilities.reports import RUN_DIR, RUN_ID
        self.stash = pytest.Stash()
        self.stash[RUN_ID] = run_id
        self.stash[RUN_DIR] = run_dir
        self._options = {"break_lock": False, "allow_registry_outage": False, "control_plane_timeout": 1800.0,
                         **options}

        class _NoPlugins:
            @staticmethod
            def getplugin(name):
                return None         # no terminal reporter: fixtures.safety logs its warnings instead
        self.pluginmanager = _NoPlugins()

    def getoption(self, name: str, default=None):
        return self._options.get(name, default)


class _LockGate(ast.NodeTransformer):
    """An IPython AST transformer: runs before every cell; renews the lock, or rejects the cell when
    another run holds it (IPython shows InputRejected's message and runs nothing)."""

    def __init__(self, run: "NotebookRun"):
        self.run = run

    def visit(self, node):
        self.run._cell_starts()
        return node


class NotebookRun:
    """The notebook's changes under the suite's lock, snapshot and journal (module docstring).

        run = NotebookRun(cluster, run_id, run_dir, timeout).begin()   # lock, snapshot, journal
        ...                                                          # the procedure's changes
        problems = run.finish()                                      # exact restore, cleanup, unlock
    """

    def __init__(self, cluster: Cluster, run_id: str, run_dir: str | os.PathLike, timeout: float, *,
                 allow_registry_outage: bool = False, break_lock: bool = False, lock_seconds: int | None = None):
        self.cluster = cluster
        self.run_id = run_id
        self.run_dir = Path(run_dir)
        self.timeout = float(timeout)
        self.lock_seconds = int(lock_seconds or idle_lock_seconds())
        self.config = _RunConfig(run_id, self.run_dir, break_lock=break_lock,
                                 allow_registry_outage=allow_registry_outage)
        self.finished = False
        self._shell = None
        self._gate: _LockGate | None = None

    # --- the run's start and end ------------------------------------------------------------------
    def begin(self) -> "NotebookRun":
        """The lock, the durable snapshot and the journal, before any change (fixtures.safety)."""
        import pytest

        from fixtures import safety
        st = safety.state(self.config)
        st.changes_allowed = True           # connect() refused a real cluster without ALLOW_DESTRUCTIVE
        # First, so that a lock taken by a begin that then fails is not renewed by an idle kernel either.
        atexit.register(self._at_exit)
        self._hook()
        try:
            safety.begin_changes(self.config, self.cluster, self.run_dir, self.timeout)
        except pytest.exit.Exception as e:          # the lock is held, the registry is refused
            raise SystemExit(e.msg) from None
        st.lock.duration = self.lock_seconds
        st.lock.renew_once()
        return self

    @property
    def lock(self):
        from fixtures import safety
        return safety.state(self.config).lock

    @property
    def summary(self) -> list[str]:
        """What the run did to the control plane (after finish())."""
        from fixtures import safety
        return list(safety.state(self.config).summary)

    def restore_command(self) -> str:
        return restore_command(self.cluster.kubeconfig, self.run_dir)

    def finish(self) -> list[str]:
        """Put the snapshot's spec back exactly, wait for the registry and the control plane, delete what
        the run created, release the lock. Returns the problems (empty: the cluster is as it was)."""
        from fixtures import safety
        self._unhook()
        try:
            problems = safety.restore_config(self.config, self.cluster, self.timeout)
        finally:
            safety.end_changes(self.config, self.cluster, self.timeout)
            self.finished = True
        return problems

    def changed(self) -> bool:
        """Whether the journal records a change (a Config write, an object created or deleted)."""
        from utilities import snapshot
        return any(e.get("event") not in ("config-seen", None) for e in snapshot.read_journal(self.run_dir))

    def _at_exit(self) -> None:
        """Kernel shutdown before finish(): nothing changed, the lock is released; otherwise it is left
        unrenewed for the restore (stale at once: its process is gone) and the command is printed."""
        if self.finished:
            return
        from fixtures import safety
        lock = self.lock
        if lock is not None:
            lock.stop_renewing()
        if not self.changed():
            safety.release_lock(self.config)
            return
        if self.cluster.embedded:
            return          # the local cluster stops with the kernel: nothing to restore
        sys.stderr.write(f"notebook run {self.run_id} left the cluster changed; put it back with:\n  "
                         f"{self.restore_command()}\n")

    # --- the lock while cells run (IPython) -------------------------------------------------------
    def _hook(self) -> None:
        try:
            from IPython import get_ipython
        except ImportError:
            return
        shell = get_ipython()
        if shell is None:
            return          # plain Python: the lock is renewed in the background until finish() or exit
        self._shell = shell
        self._gate = _LockGate(self)
        shell.ast_transformers.append(self._gate)
        shell.events.register("post_run_cell", self._cell_ended)

    def _unhook(self) -> None:
        if self._shell is None:
            return
        if self._gate in self._shell.ast_transformers:
            self._shell.ast_transformers.remove(self._gate)
        try:
            self._shell.events.unregister("post_run_cell", self._cell_ended)
        except ValueError:
            pass
        self._shell = None

    def _cell_ended(self, result=None) -> None:
        """No cell runs: nobody renews the lock, which expires `lock_seconds` later."""
        lock = self.lock
        if lock is not None:
            lock.stop_renewing()

    def _cell_starts(self) -> None:
        lock = self.lock
        if lock is None:
            return
        try:
            try:
                lock.renew_once()
            except LockLost as e:       # deleted (a restore ran meanwhile, or `unlock`): take it again
                lock.acquire(renew=False)
                lock.lost = None
                print(f"note: the cluster lock was gone ({e}); taken again for run {self.run_id}")
        except LockHeld as e:
            from IPython.core.error import InputRejected
            raise InputRejected(
                f"another process holds the cluster lock: {e.info.describe()}. This notebook makes no change "
                f"while it does; if it is restoring this run, wait for it, then restart the kernel and run the "
                f"notebook from the top") from None
        except Exception as e:  # noqa: BLE001 - the API is unreachable: the renewer retries, the lease has time
            log.warning("could not renew the cluster lock: %s", kube._short(e))
        lock.start_renewing()


class Table:
    """Rows of dicts shown as an HTML table in a notebook (and as text elsewhere)."""

    def __init__(self, rows: list[dict], columns: list[str] | None = None):
        self.rows = rows
        self.columns = columns or list(dict.fromkeys(k for r in rows for k in r))

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in self.columns)
                       + "</tr>" for r in self.rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    def __repr__(self) -> str:
        return "\n".join([" | ".join(self.columns)] + [" | ".join(str(r.get(c, "")) for c in self.columns)
                                                       for r in self.rows])


def conditions_table(obj: dict | None) -> Table:
    return Table([{"type": t, "status": c.get("status"), "reason": c.get("reason"), "message": c.get("message"),
                   "since": c.get("lastTransitionTime")} for t, c in waits.conditions(obj).items()],
                 ["type", "status", "reason", "message", "since"])


def pods_table(cluster: Cluster, namespace: str = REGISTRY_NAMESPACE, selector: str = REGISTRY_POD_SELECTOR) -> Table:
    plain = cluster.api_client.sanitize_for_serialization
    rows = []
    for p in plain(kube.call(cluster.core.list_namespaced_pod, namespace, label_selector=selector)).get("items", []):
        st = p.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
        rows.append({"pod": p["metadata"]["name"], "phase": st.get("phase"), "ready": ready,
                     "node": (p.get("spec") or {}).get("nodeName"), "created": p["metadata"].get("creationTimestamp")})
    return Table(rows, ["pod", "phase", "ready", "node", "created"])
