"""The notebooks run green: procedure.ipynb against a local cluster it starts itself, durations.ipynb on
the reports of a real run; and they are committed without outputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from utilities.localcluster_process import REPO_ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = REPO_ROOT / "notebooks"


def execute(name: str, tmp_path: Path) -> dict:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    nbformat.write(nb, tmp_path / name)
    return nb


def outputs_text(nb) -> str:
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            out.append(o.get("text", ""))
            out += [str(v) for k, v in (o.get("data") or {}).items() if k.startswith("text/")]
    return "\n".join(out)


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_committed_without_outputs(name):
    nb = json.loads((NOTEBOOKS / name).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, \
                f"{name}: outputs are not stripped (clear them before committing)"


def test_procedure_notebook(tmp_path, monkeypatch):
    png = tmp_path / "rollout.png"
    monkeypatch.setenv("NOTEBOOK_PLOT_PNG", str(png))
    monkeypatch.delenv("REGISTRY_CONFORMANCE_KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("REPORTS_DIR", str(tmp_path / "reports"))
    nb = execute("procedure.ipynb", tmp_path)
    text = outputs_text(nb)
    run_dir, = (tmp_path / "reports").glob("notebook-*")           # a run directory like a suite run's
    assert (run_dir / "config-snapshot.json").exists() and (run_dir / "journal.jsonl").exists()
    assert f"--run-dir={run_dir}" in text and "the embedded local cluster" in text   # the first cell says so
    assert "pushed and pulled" in text and "the Config is back exactly as it was" in text, text[-3000:]
    assert "VSphere" in text and "4.18.12" in text                   # the cluster's facts as a table
    assert "StorageExists" in text and "Ready" in text                 # the Config's conditions
    assert png.stat().st_size > 10_000                                 # the rollout plot
    assert any("image/png" in (o.get("data") or {}) for c in nb.cells for o in c.get("outputs", []))


def test_durations_notebook(small_run, tmp_path, monkeypatch):
    monkeypatch.setenv("REPORTS_DIR", str(small_run.reports))
    nb = execute("durations.ipynb", tmp_path)
    text = outputs_text(nb)
    assert "small" in text                                             # the run is listed
    pngs = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in (o.get("data") or {})]
    assert len(pngs) == 2, f"{len(pngs)} plots"


def test_the_notebook_chooses_its_cluster_as_the_suite(tmp_path):
    """REGISTRY_CONFORMANCE_KUBECONFIG (its --kubeconfig), else KUBECONFIG, else the local cluster, which
    REGISTRY_CONFORMANCE_LOCAL_CLUSTER=yes forces (utilities.kubeconfig.choose, the suite's rule)."""
    from utilities import notebook
    own, env_file = tmp_path / "own.yaml", tmp_path / "env.yaml"
    choose = notebook.kubeconfig_from_environment
    both = {"REGISTRY_CONFORMANCE_KUBECONFIG": str(own), "KUBECONFIG": str(env_file)}
    assert (choose(both).path, choose(both).origin) == (str(own), "REGISTRY_CONFORMANCE_KUBECONFIG")
    via_env = choose({"KUBECONFIG": str(env_file)})
    assert (via_env.path, via_env.origin) == (str(env_file), "KUBECONFIG")
    assert via_env.describe() == f"the cluster of the kubeconfig {env_file} (from KUBECONFIG)"
    assert choose({}).local and "KUBECONFIG is not set" in choose({}).describe()
    forced = choose({**both, "REGISTRY_CONFORMANCE_LOCAL_CLUSTER": "yes"})
    assert forced.local and forced.describe() == "the embedded local cluster (forced)"
    relative = choose({"KUBECONFIG": "kc.yaml"}).path
    assert Path(relative).is_absolute() and relative.endswith("/kc.yaml")
    listed = choose({"KUBECONFIG": f"{own}:{env_file}"})     # a list is merged, as the suite and oc do
    assert (listed.path, listed.origin) == (f"{own}:{env_file}", "KUBECONFIG")
