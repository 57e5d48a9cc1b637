"""Options and hooks of the registry conformance suite. Fixtures live in fixtures/ (plugins below)."""
from __future__ import annotations

from pathlib import Path

import pytest

from utilities.reports import RUN_DIR, RUN_ID, new_run_id, prepare_run_dir

# fixtures.verdicts before fixtures.reporting: their trylast pytest_sessionfinish run in this order, so the
# exit status is settled before the record is written.
pytest_plugins = ["fixtures.cluster", "fixtures.safety", "fixtures.verdicts", "fixtures.registry",
                  "fixtures.storage", "fixtures.preupgrade", "fixtures.reporting", "fixtures.closing",
                  "fixtures.deadline", "fixtures.progress"]

ROOT = Path(__file__).resolve().parent


def pytest_addoption(parser):
    g = parser.getgroup("registry-conformance")
    g.addoption("--kubeconfig", default=None,
                help="kubeconfig of the cluster under test; without it, KUBECONFIG as oc reads it (a "
                     "\":\"-separated list, merged); without either, the local stand-in cluster is started")
    g.addoption("--local-cluster", action="store_true", default=False,
                help="run on the embedded local stand-in cluster even when KUBECONFIG is set")
    g.addoption("--context", default=None, help="kubeconfig context (default: the current context)")
    g.addoption("--run-namespace", default=None, metavar="NAME",
                help="an existing namespace for the run's own objects (ServiceAccounts, bindings, pushed images; "
                     "NAME-outsider must exist too): nothing is created or deleted outside what the run made, "
                     "never the namespaces, and the rights there are namespaced (deploy/); default: the run "
                     "makes its own test namespaces (needs namespace create/delete)")
    g.addoption("--allow-destructive", action="store_true", default=False,
                help="allow tests marked destructive on the cluster given by --kubeconfig")
    g.addoption("--ingress-address", default=None, metavar="HOST[:PORT]",
                help="where to connect for route hosts that do not resolve (default: DNS; else the "
                     "Infrastructure's vSphere ingressIPs on port 443; the local cluster: its router)")
    g.addoption("--ingress-http-address", default=None, metavar="HOST[:PORT]",
                help="the same for plain-HTTP routes, such as ODF 4.12's RGW route (default: DNS; else the "
                     "Infrastructure's vSphere ingressIPs on port 80; the local cluster: its router)")
    g.addoption("--localcluster-arg", action="append", default=[], metavar="ARG",
                help="extra argument for `python -m localcluster serve` (repeatable)")
    g.addoption("--rollout-timeout", type=float, default=300.0, metavar="SECONDS",
                help="how long a registry rollout may take, and all the waits of one test together "
                     "(default 300)")
    # rollout wait (utilities/waits.py Graces): how long a cause real clusters retry may last
    g.addoption("--grace", action="append", default=[], metavar="NAME=SECONDS",
                help="how long a transient cause may persist before it fails the rollout wait (repeatable; "
                     "all=SECONDS sets every one): provisioning (120), scheduling (120), attach (240), "
                     "mount (120), not-ready (120), apply-error (30), create (60), settle (10), degraded (30)")
    g.addoption("--run-id", default=None, help="name of the reports/<run-id>/ directory (default: a timestamp)")
    g.addoption("--reports-dir", default=str(ROOT / "reports"), help="root of the reports (default: reports/)")
    g.addoption("--break-lock", action="store_true", default=False,
                help="take over the cluster lock of another run if it is stale (expired, or its process "
                     "on this host is gone); a live lock still stops the run")
    g.addoption("--allow-registry-outage", action="store_true", default=False,
                help="run even though the registry is in use (Managed with storage, or image streams in user "
                     "namespaces holding images): the run switches its storage and removes it")
    g.addoption("--control-plane-timeout", type=float, default=1800.0, metavar="SECONDS",
                help="after the restore, how long kube-apiserver, openshift-apiserver and "
                     "openshift-controller-manager may take to settle (default 1800)")
    g.addoption("--backend", action="append", default=[], metavar="NAME",
                help="storage backend to certify (repeatable; default: all): emptydir, default-pvc, block, "
                     "cephfs, ceph-rgw, noobaa")
    g.addoption("--storage-class", action="append", default=[], metavar="BACKEND=CLASS",
                help="point a backend at another storage class (block, cephfs) or ObjectBucketClaim class "
                     "(ceph-rgw, noobaa) (repeatable)")
    # Pre-upgrade review (issue 10; fixtures/preupgrade.py).
    g.addoption("--must-gather", default=None, metavar="DIR|ARCHIVE",
                help="review a must-gather offline (its directory, or a .tar.gz/.tar.xz/.tgz of it): the local "
                     "cluster serves it read-only and only the readonly checks run")
    g.addoption("--must-gather-max-age", type=float, default=24.0, metavar="HOURS",
                help="a must-gather older than this warns (default 24)")
    g.addoption("--fail-on-warn", action="store_true", default=False,
                help="pre-upgrade review: a warning fails its check (for CI)")
    g.addoption("--production", action="store_true", default=False,
                help="the cluster is a production cluster: emptyDir storage fails the review instead of warning")


def _runs_the_suite(config) -> bool:
    """Reports are written for runs of the suite (tests/, the default testpaths) or when asked for
    (--run-id); not for the project's selftests, --collect-only or --help."""
    if config.option.help or config.option.collectonly:
        return False
    if config.getoption("run_id"):
        return True
    tests_dir = ROOT / "tests"
    for arg in config.args:
        path = Path(str(arg).split("::")[0]).resolve()
        if path == tests_dir or tests_dir in path.parents or path == ROOT:
            return True
    return False


def _runs_selftests(config) -> bool:
    """A session of the project's own tests (selftests/): a user's KUBECONFIG never applies to it."""
    selftests = ROOT / "selftests"
    for arg in config.args:
        path = Path(str(arg).split("::")[0]).resolve()
        if path == selftests or selftests in path.parents:
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    from fixtures import safety
    from utilities import redact
    redact.install()                      # secrets out of every log record from now on
    _configure_graces(config)
    from fixtures import cluster
    cluster.choose_source(config, selftests=_runs_selftests(config))   # --kubeconfig, KUBECONFIG or local
    safety.install_signal_handlers(config)
    run_id = config.getoption("run_id") or new_run_id()
    config.stash[RUN_ID] = run_id
    if not _runs_the_suite(config):
        return
    run_dir = prepare_run_dir(Path(config.getoption("reports_dir")).resolve(), run_id)
    config.stash[RUN_DIR] = run_dir
    # Before the junitxml and allure plugins configure themselves (this hook runs first).
    if not getattr(config.option, "xmlpath", None):
        config.option.xmlpath = str(run_dir / "junit.xml")
    if hasattr(config.option, "allure_report_dir") and not config.option.allure_report_dir:
        config.option.allure_report_dir = str(run_dir / "allure-results")
    safety.redact_writers(config)


def _configure_graces(config):
    from utilities import waits
    try:
        waits.set_default_graces(waits.Graces().with_items(config.getoption("grace") or []))
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None


def pytest_report_header(config):
    run_dir = config.stash.get(RUN_DIR, None)
    from fixtures import cluster, safety
    return ([f"reports: {run_dir}"] if run_dir else []) + safety.report_header(config) + \
        cluster.report_header(config)


def pytest_sessionstart(session):
    """--kubeconfig runs: preflight checks (one line and a distinct exit status each), leftovers of
    earlier runs, the cluster lock; all before anything changes."""
    from fixtures import safety
    safety.session_start(session)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report):
    from fixtures import safety
    safety.redact_report(report)


@pytest.hookimpl(tryfirst=True)
def pytest_collectreport(report):
    from fixtures import safety
    safety.redact_report(report)          # a collection error, before the terminal and JUnit see it


def pytest_unconfigure(config):
    from fixtures import safety
    safety.release_lock(config)           # normally released already by the cluster fixture
    safety.stop_redacting_writers(config)
    safety.redact_run_dir(config)         # JUnit, allure results and attachments, logs


def pytest_collection_modifyitems(config, items):
    if not config.getoption("kubeconfig") or config.getoption("allow_destructive"):
        return
    from fixtures import cluster
    named = "$KUBECONFIG" if cluster.source(config).kind == "environment" else "--kubeconfig"
    skip = pytest.mark.skip(reason=f"destructive: changes the cluster given by {named}; "
                                   "pass --allow-destructive to run it")
    for item in items:
        if item.get_closest_marker("destructive"):
            item.add_marker(skip)
