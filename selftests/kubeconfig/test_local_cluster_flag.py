"""Issue 17 item 4: `--local-cluster` runs on the embedded stand-in cluster even with KUBECONFIG set, and says
so in the header and the certificate; `make validate` without CLUSTER_KUBECONFIG passes it; KUBECONFIG
lists merge as kubectl merges them (utilities/kubeconfig.py)."""
from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from selftests.kubeconfig.support import Trap, run_suite
from utilities import certificate
from utilities import kubeconfig as kubeconfigs
from utilities.localcluster_process import REPO_ROOT


def test_local_cluster_flag_ignores_kubeconfig(tmp_path):
    trap = Trap()
    try:
        kc = trap.kubeconfig(tmp_path / "users-config")
        run = run_suite(["tests/test_management_state.py", "-k", "exist", "--local-cluster"], tmp_path, "local",
                        kubeconfig_env=str(kc))
    finally:
        trap.close()
    out = run.stdout
    assert run.returncode == 0, out[-3000:]
    assert trap.connections == 0, "the user's cluster was contacted"
    assert "cluster: the embedded local stand-in cluster, not a real cluster (built-in control plane" in out or \
        "cluster: the embedded local stand-in cluster, not a real cluster (real control plane" in out, out[:3000]
    md = (tmp_path / "reports" / "local" / "certificate.md").read_text()
    assert certificate.STAND_IN_NOTICE in md
    assert "| Cluster | the embedded local stand-in cluster, not a real cluster" in md, md
    assert "| Platform | VSphere (as the local stand-in cluster emulates it) |" in md, md
    assert "## Backends (on the local stand-in cluster)" in md


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_make_validate_is_the_local_cluster_unless_told():
    def command(*args):
        return subprocess.run(["make", "--no-print-directory", "-s", "validate-command", *args], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=60, check=True).stdout
    assert "--local-cluster" in command()
    real = command("CLUSTER_KUBECONFIG=/tmp/kubeconfig")
    assert "--kubeconfig=/tmp/kubeconfig" in real and "--local-cluster" not in real


def _write(path, **doc):
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", **doc}))
    return str(path)


def test_merge_follows_kubectl(tmp_path):
    a = _write(tmp_path / "a", **{"current-context": "ctx-a",
                                  "clusters": [{"name": "c", "cluster": {"server": "https://a:6443"}}],
                                  "contexts": [{"name": "ctx-a", "context": {"cluster": "c", "user": "u"}}],
                                  "users": [{"name": "u", "user": {"token": "from-a"}}]})
    b = _write(tmp_path / "b", **{"current-context": "ctx-b",
                                  "clusters": [{"name": "c", "cluster": {"server": "https://b:6443"}},
                                               {"name": "d", "cluster": {"server": "https://d:6443"}}],
                                  "contexts": [{"name": "ctx-b", "context": {"cluster": "d", "user": "u"}}],
                                  "users": [{"name": "u", "user": {"token": "from-b"}}]})
    value = f":{tmp_path / 'missing'}:{a}:{b}"
    doc = kubeconfigs.merged(value)
    assert doc["current-context"] == "ctx-a"
    assert [c["cluster"]["server"] for c in doc["clusters"]] == ["https://a:6443", "https://d:6443"]
    assert [u["user"]["token"] for u in doc["users"]] == ["from-a"]
    assert kubeconfigs.server_of(value, None) == "https://a:6443"
    assert kubeconfigs.server_of(value, "ctx-b") == "https://d:6443"
    assert kubeconfigs.paths(value) == [a, b]
    src = kubeconfigs.choose(None, {"KUBECONFIG": value})
    assert src.kind == kubeconfigs.ENVIRONMENT and src.value == value
    assert kubeconfigs.choose(None, {"KUBECONFIG": value}, local_cluster=True).kind == kubeconfigs.LOCAL
    assert kubeconfigs.choose(None, {"KUBECONFIG": ":"}).kind == kubeconfigs.LOCAL
    assert kubeconfigs.choose("/k", {"KUBECONFIG": value}).kind == kubeconfigs.OPTION
    assert kubeconfigs.choose(None, {"KUBECONFIG": value}, must_gather="/mg").kind == kubeconfigs.MUST_GATHER
