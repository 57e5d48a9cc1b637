"""`--must-gather` given the archive users make of a must-gather (issue 17): a .tar.gz/.tar.xz/.tgz
is unpacked into a temporary directory, reviewed, and removed; an archive whose members would land
outside that directory is refused before anything is written. Also `--fail-on-warn` and
`--must-gather-max-age`, on the same runs (pytest in a subprocess, as users run it)."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from selftests.preupgrade import mustgather as mgw
from utilities.localcluster_process import REPO_ROOT
from utilities.preupgrade import archive


def _tar(src_dir: Path, out: Path, top: str = "must-gather.local.5170389183431434961") -> Path:
    """`tar c[zJ]f out top/` of a must-gather directory, as admins archive one."""
    mode = "w:xz" if out.name.endswith((".tar.xz", ".txz")) else "w:gz"
    with tarfile.open(out, mode) as t:
        t.add(src_dir, arcname=top)
    return out


def _run(tmp_path: Path, *args, run_id: str):
    """pytest on the pre-upgrade checks, with its own TMPDIR so what it leaves there can be seen."""
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--run-id={run_id}",
           f"--reports-dir={tmp_path / 'reports'}", "-q", "tests/test_preupgrade.py", *args]
    p = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "TMPDIR": str(tmp)})
    run_dir = tmp_path / "reports" / run_id
    verdicts = {v["check"]: v for v in json.loads((run_dir / "preupgrade.json").read_text())} if (
        run_dir / "preupgrade.json").exists() else {}
    return p, run_dir, verdicts, [x.name for x in tmp.iterdir() if x.name.startswith("must-gather-")]


@pytest.fixture(scope="module")
def healthy_dir(tmp_path_factory) -> Path:
    """A healthy must-gather taken at objects.NOW (months before this machine's clock)."""
    return mgw.write(tmp_path_factory.mktemp("mg"), mgw.healthy_pvc())


def test_a_tar_gz_is_unpacked_reviewed_and_removed(tmp_path, healthy_dir):
    tgz = _tar(healthy_dir, tmp_path / "must-gather.tar.gz")
    p, run_dir, got, left = _run(tmp_path, f"--must-gather={tgz}", run_id="gz")
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert "does not exist" not in out
    assert got["node-ca"]["verdict"] == "pass" and got["pdb"]["verdict"] == "pass", got
    # Old: warned with its capture time, its age and how it is known.
    age = got["must-gather-age"]
    assert age["verdict"] == "warn" and "its timestamp file" in age["reason"] and "days ago" in age["reason"], age
    assert "must-gather-age" in p.stdout and "WARN" in p.stdout
    assert str(tgz) in (run_dir / "preupgrade.md").read_text()      # the report names what the user gave
    assert not left, f"the unpacked must-gather was left in TMPDIR: {left}"


def test_fail_on_warn_fails_the_run_on_a_warning(tmp_path, healthy_dir):
    txz = _tar(healthy_dir, tmp_path / "must-gather.tar.xz")
    p, run_dir, got, left = _run(tmp_path, f"--must-gather={txz}", "--fail-on-warn", run_id="xz")
    assert p.returncode == 1, (p.stdout + p.stderr)[-3000:]
    assert got["must-gather-age"]["verdict"] == "warn"            # the verdict stays a warning ...
    junit = (run_dir / "junit.xml").read_text()
    assert "WARN, failed by --fail-on-warn" in junit              # ... and its test failed, saying why
    assert "1 failed" in p.stdout, p.stdout[-2000:]
    assert not left


def test_max_age_and_fail_on_warn_pass_a_fresh_enough_must_gather(tmp_path, healthy_dir):
    tgz = _tar(healthy_dir, tmp_path / "mg.tgz")
    p, _, got, _ = _run(tmp_path, f"--must-gather={tgz}", "--fail-on-warn", "--must-gather-max-age=1000000",
                        run_id="tgz")
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    assert {v["verdict"] for v in got.values()} <= {"pass", "skip"}, got


def _evil(path: Path, member: tarfile.TarInfo, data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as t:
        ok = tarfile.TarInfo("must-gather.local.1/timestamp")
        ok.size = 1
        t.addfile(ok, io.BytesIO(b"x"))
        member.size = len(data) if member.isfile() else 0
        t.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


def _link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    m.linkname = target
    return m


@pytest.mark.parametrize("member,why", [
    (tarfile.TarInfo("../outside.yaml"), "leaves the archive's directory"),
    (tarfile.TarInfo("/tmp/absolute.yaml"), "leaves the archive's directory"),
    (tarfile.TarInfo("must-gather.local.1/../../up.yaml"), "leaves the archive's directory"),
    (_link("must-gather.local.1/passwd", "/etc/passwd"), "links outside"),
    (_link("must-gather.local.1/up", "../../etc"), "links outside"),
    (_link("must-gather.local.1/hard", "/etc/shadow", hard=True), "links outside"),
])
def test_an_archive_reaching_outside_is_refused_and_nothing_is_left(tmp_path, member, why):
    bad = _evil(tmp_path / "evil.tar.gz", member)
    parent = tmp_path / "unpack"
    parent.mkdir()
    with pytest.raises(archive.ArchiveError, match=why) as e:
        archive.unpack(bad, parent)
    assert member.name in str(e.value) and "refused" in str(e.value)
    assert list(parent.iterdir()) == [], "a refused archive left files behind"
    assert not (tmp_path / "outside.yaml").exists() and not (tmp_path / "up.yaml").exists()


@pytest.mark.parametrize("top", ["must-gather.local.5170389183431434961", "."])
def test_both_archive_layouts_unpack_to_a_must_gather(tmp_path, healthy_dir, top):
    """`tar czf mg.tar.gz must-gather.local.N/` as admins do, and `tar -czC DIR -f mg.tar.gz .` as
    openshift/release's gather-must-gather step does (image directories at the top)."""
    from localcluster.mustgather import image_dirs
    d = archive.unpack(_tar(healthy_dir, tmp_path / "mg.tar.gz", top=top), tmp_path)
    try:
        found = image_dirs(d)
        assert [f.name for f in found] == ["quay-io-openshift-release-dev-ocp-v4-0-art-dev-sha256-0"], found
    finally:
        archive.cleanup(d)


def test_links_inside_the_archive_are_kept(tmp_path):
    good = _evil(tmp_path / "ok.tar.gz", _link("must-gather.local.1/latest", "timestamp"))
    d = archive.unpack(good, tmp_path)
    try:
        assert (d / "must-gather.local.1" / "latest").read_text() == "x"
    finally:
        archive.cleanup(d)
    assert not d.exists()


def test_bad_archives_and_files_are_usage_errors(tmp_path):
    bad = _evil(tmp_path / "evil.tar.gz", tarfile.TarInfo("../outside.yaml"))
    broken = tmp_path / "broken.tar.xz"
    broken.write_bytes(b"not an archive")
    plain = tmp_path / "notes.txt"
    plain.write_text("x")
    other = _evil(tmp_path / "logs.tar.gz", tarfile.TarInfo("logs/app.log"))     # a tidy archive, no must-gather
    for path, needle in ((bad, "is refused: member '../outside.yaml'"), (broken, "cannot be read"),
                         (plain, "is a file, not a directory"), (other, f"archive {other}: ")):
        p, _, _, left = _run(tmp_path, f"--must-gather={path}", run_id=path.stem)
        assert p.returncode == 4, (path, p.stdout[-1500:], p.stderr[-1500:])
        assert needle in p.stderr, (needle, p.stderr[-1500:])
        assert not left
