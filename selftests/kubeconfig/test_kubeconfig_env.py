"""Issue 17 item 4: the suite finds its cluster as oc does. --kubeconfig, else KUBECONFIG (a list of files,
merged, the first file's current-context winning), else the embedded local cluster; the header and the
certificate say which; a KUBECONFIG run is held to the --kubeconfig rules (preflight, --allow-destructive).
Against a served local cluster, the suite in a subprocess."""
from __future__ import annotations

import pytest

from selftests.kubeconfig.support import Trap, run_suite, variant
from selftests.support import served_cluster_in

READONLY = "tests/test_management_state.py"      # one read-only check, two destructive ones


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_cluster_in(tmp_path_factory, "kubeconfig-env") as (lc, cluster, _):
        yield lc, cluster


@pytest.fixture
def trap():
    t = Trap()
    yield t
    t.close()


def _spec(cluster):
    return (cluster.registry_config() or {}).get("spec")


def test_kubeconfig_env_is_the_cluster_under_test(served, tmp_path):
    lc, cluster = served
    before = _spec(cluster)
    run = run_suite([READONLY], tmp_path, "env", kubeconfig_env=str(lc.kubeconfig))
    out = run.stdout
    assert run.returncode == 0, out[-3000:]
    header = next((ln for ln in out.splitlines() if ln.startswith("cluster: ")), "")
    assert header.startswith(f"cluster: the kubeconfig in $KUBECONFIG ({lc.kubeconfig}), context admin, "
                             f"server {lc.info['api_url']}"), out[:3000]
    assert "1 passed, 2 skipped" in out, out[-3000:]
    # the --kubeconfig rules: destructive checks need --allow-destructive, nothing changed
    assert "destructive: changes the cluster given by $KUBECONFIG; pass --allow-destructive" in out
    assert _spec(cluster) == before
    run_dir = tmp_path / "reports" / "env"
    assert not (run_dir / "localcluster").exists(), "the embedded local cluster was started"
    md = (run_dir / "certificate.md").read_text()
    assert f"| Cluster | the kubeconfig in $KUBECONFIG ({lc.kubeconfig}), context admin, server " in md, md
    assert "stand-in" not in md, md


def test_kubeconfig_env_with_allow_destructive_takes_the_lock_as_kubeconfig_does(served, tmp_path):
    from utilities.lock import read_lock
    lc, cluster = served
    run = run_suite([READONLY, "-k", "exist", "--allow-destructive"], tmp_path, "lock",
                    kubeconfig_env=str(lc.kubeconfig))
    assert run.returncode == 0, run.stdout[-3000:]
    assert [ln for ln in run.stdout.splitlines() if ln.startswith("cluster lock: ") and "run lock" in ln], \
        run.stdout[:3000]
    assert read_lock(cluster) is None       # released at the end


def test_kubeconfig_list_merges_and_the_first_current_context_wins(served, tmp_path):
    """kubectl: empty entries and missing files are skipped; the first file to set current-context wins
    (the official Python client would take the last one's: here "admin", and the run would pass)."""
    lc, _ = served
    nobody = variant(lc.kubeconfig, tmp_path / "first", **{"current-context": "nobody"})
    admin = variant(lc.kubeconfig, tmp_path / "second", **{"current-context": "admin"})
    listed = f"{tmp_path / 'missing'}::{nobody}:{admin}"
    run = run_suite([READONLY], tmp_path, "merged", kubeconfig_env=listed, timeout=120)
    out = run.stdout
    assert run.returncode == 7, out[-3000:]       # preflight: user nobody lacks the rights
    assert f"cluster: the kubeconfig in $KUBECONFIG ({listed}), context nobody, server " in out, out[:3000]
    assert [ln for ln in out.splitlines() if "user nobody is not allowed to" in ln], out[-3000:]


def test_kubeconfig_env_without_a_file_says_what_to_do(tmp_path):
    run = run_suite([READONLY], tmp_path, "none", kubeconfig_env=f"{tmp_path / 'a'}:{tmp_path / 'b'}", timeout=120)
    assert run.returncode == 9, run.stdout[-3000:]
    lines = [ln for ln in run.stdout.splitlines() if "cannot use the kubeconfig in $KUBECONFIG" in ln]
    assert len(lines) == 1, run.stdout[-3000:]
    for words in ("none of its files exists", "point KUBECONFIG at a readable kubeconfig", "--local-cluster"):
        assert words in lines[0], lines[0]


def test_local_cluster_and_kubeconfig_exclude_each_other(tmp_path):
    run = run_suite([READONLY, "--local-cluster", f"--kubeconfig={tmp_path / 'k'}"], tmp_path, "both",
                    kubeconfig_env=None, timeout=120)
    assert run.returncode == 4, run.stdout[-3000:]
    assert "--local-cluster and --kubeconfig exclude each other" in run.stdout


def test_the_selftests_never_reach_a_users_kubeconfig(trap, tmp_path):
    """`make test` with the user's KUBECONFIG set: nothing connects to their cluster."""
    kc = trap.kubeconfig(tmp_path / "users-config")
    run = run_suite(["selftests/reporting/test_certificate.py", "-q"], tmp_path, "selftests", kubeconfig_env=str(kc),
                    timeout=120)
    assert run.returncode == 0, run.stdout[-3000:]
    assert trap.connections == 0
    # and the trap works: the suite itself, given that KUBECONFIG, does try to reach it
    run = run_suite([READONLY], tmp_path, "reaches", kubeconfig_env=str(kc), timeout=120)
    assert run.returncode == 10 and trap.connections > 0, run.stdout[-3000:]


def test_recovery_commands_take_kubeconfig_too(served, tmp_path):
    """`python -m utilities leftovers|restore|sweep|unlock` after a KUBECONFIG run: the same cluster."""
    import os
    import subprocess
    import sys

    from utilities.localcluster_process import REPO_ROOT
    lc, _ = served
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}

    def leftovers(**extra):
        return subprocess.run([sys.executable, "-m", "utilities", "leftovers"], cwd=REPO_ROOT, env=env | extra,
                              capture_output=True, text=True, timeout=120)
    found = leftovers(KUBECONFIG=str(lc.kubeconfig))
    assert found.returncode == 0, found.stdout + found.stderr
    none = leftovers()
    assert none.returncode == 4 and "give --kubeconfig=PATH or set KUBECONFIG" in none.stderr, none.stderr
