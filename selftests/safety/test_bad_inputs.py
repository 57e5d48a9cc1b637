"""Bad input and bad clusters stop the run before any change, with ONE line saying what is wrong and
what to do, and a distinct exit status (README.md, "Exit statuses")."""
from __future__ import annotations

import pytest
import yaml

from localcluster.apiserver.resources import RESOURCES, Registry
from localcluster.pki import CertificateAuthority
from localcluster.settings import Settings
from selftests.apiserver.conftest import write_kubeconfig
from selftests.support import LoopThread
from utilities import preflight
from utilities.leftovers import find_leftovers
from utilities.lock import read_lock

SUITE = "tests/test_storage_backends.py"


@pytest.fixture(scope="module")
def plain_kubernetes(tmp_path_factory):
    """A real API server (the local cluster's) serving only Kubernetes APIs: no OpenShift."""
    from localcluster.apiserver import APIServer, default_users
    d = tmp_path_factory.mktemp("plain")
    ca = CertificateAuthority.create("plain-kubernetes-ca")
    cert, key = ca.issue("kube-apiserver", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    users = default_users()
    server = APIServer(Settings(state_dir=d), cert, key, users, history_size=100)
    server.registry = Registry([r for r in RESOURCES if not r.group.endswith("openshift.io")])
    loop = LoopThread()
    loop.run(server.start())
    kubeconfig = d / "kubeconfig"
    write_kubeconfig(kubeconfig, server.url, ca.cert_pem, users)
    yield str(kubeconfig)
    loop.run(server.stop())
    loop.close()


def _kubeconfig_variant(local, tmp_path, mutate) -> str:
    doc = yaml.safe_load(open(local.kubeconfig))
    mutate(doc)
    p = tmp_path / "kubeconfig"
    p.write_text(yaml.safe_dump(doc))
    return str(p)


def _unreachable(doc):
    doc["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"


def _bad_token(doc):
    for u in doc["users"]:
        u["user"]["token"] = "sha256~not-a-valid-token-at-all"


CASES = [
    # id, extra args, kubeconfig (callable or marker), exit status, words of the one line
    ("missing-kubeconfig", [], lambda local, tmp, plain: str(tmp / "nope.yaml"), preflight.EXIT_KUBECONFIG,
     ["cannot use the kubeconfig", "No such file", "--kubeconfig"]),
    ("garbage-kubeconfig", [], lambda local, tmp, plain: (tmp / "garbage").write_text("{{{not yaml") and
     str(tmp / "garbage"), preflight.EXIT_KUBECONFIG, ["cannot use the kubeconfig", "--kubeconfig"]),
    ("bad-token", [], lambda local, tmp, plain: _kubeconfig_variant(local, tmp, _bad_token),
     preflight.EXIT_KUBECONFIG, ["rejected the credentials", "401", "log in again"]),
    ("unreachable", [], lambda local, tmp, plain: _kubeconfig_variant(local, tmp, _unreachable),
     preflight.EXIT_UNREACHABLE, ["cannot reach the API server https://127.0.0.1:1", "Connection refused"]),
    ("not-openshift", [], lambda local, tmp, plain: plain, preflight.EXIT_NOT_OPENSHIFT,
     ["is not an OpenShift cluster", "imageregistry.operator.openshift.io/v1", "--kubeconfig"]),
    ("forbidden-nobody", ["--context=nobody"], None, preflight.EXIT_FORBIDDEN,
     ["user nobody is not allowed to", "403", "cluster-admin"]),
    ("forbidden-puller", ["--context=puller"], None, preflight.EXIT_FORBIDDEN,
     ["user puller is not allowed to update configs.imageregistry.operator.openshift.io", "cluster-admin"]),
    ("unknown-option", ["--no-such-option"], None, preflight.EXIT_USAGE,
     ["unrecognized arguments: --no-such-option"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_stops_before_any_change(local, plain_kubernetes, tmp_path, case):
    cid, extra, kubeconfig, code, words = case
    before = local.spec()
    kc = kubeconfig(local, tmp_path, plain_kubernetes) if kubeconfig else None
    run = local.suite(local.run_id(cid), SUITE, "--backend=emptydir", *extra, kubeconfig=kc)
    rc = run.wait(60)
    assert rc == code, f"exit {rc}, expected {code}:\n{run.output[-2000:]}"
    lines = [ln for ln in run.lines if all(w in ln for w in words)]
    assert lines, f"no line with {words}:\n{run.output[-2000:]}"
    assert len(lines) == 1, f"said more than once:\n{run.output[-2000:]}"       # issue 17 item 8
    assert len(lines[0]) < 400, lines[0]
    assert "Traceback" not in run.output, run.output[-2000:]
    # nothing changed on the cluster
    assert local.spec() == before
    assert read_lock(local.cluster) is None
    assert not find_leftovers(local.cluster)
    assert not run.snapshot_written()


def test_no_allow_destructive_changes_nothing(local):
    before = local.spec()
    run = local.suite(local.run_id("readonly"), SUITE, "tests/test_management_state.py", destructive=False)
    rc = run.wait(60)
    assert rc == 0, run.output[-2000:]
    assert "destructive: changes the cluster given by --kubeconfig; pass --allow-destructive" in run.output
    assert local.spec() == before and read_lock(local.cluster) is None and not find_leftovers(local.cluster)
    assert not run.snapshot_written()
