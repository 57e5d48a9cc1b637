"""The real control-plane binaries: found in ../shared/bin, unpacked into an ignored cache on first use.

    bin_dir() -> Path | None          where the .xz files are (LOCALCLUSTER_REAL_BIN_DIR or ../shared/bin)
    missing_reason() -> str | None    why the real control plane cannot run here (None: it can)
    binary(name) -> Path              the unpacked, checked binary (unpacked once, checked every time)
    RELEASES                          the operator releases there are binaries for
"""
from __future__ import annotations

import hashlib
import lzma
import os
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RELEASES = ("4.16", "4.18", "4.20", "main")
DEFAULT_RELEASE = "4.18"
KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


class BinaryError(RuntimeError):
    pass


def bin_dir() -> Path | None:
    raw = os.environ.get("LOCALCLUSTER_REAL_BIN_DIR")
    candidates = [Path(raw)] if raw else []
    candidates.append(REPO_ROOT.parent / "shared" / "bin")
    for c in candidates:
        if (c / "SHA256SUMS.raw").is_file():
            return c
    return None


def cache_dir() -> Path:
    raw = os.environ.get("LOCALCLUSTER_REAL_CACHE_DIR")
    return Path(raw) if raw else REPO_ROOT / ".cache" / "realcp-bin"


def reference_dir() -> Path | None:
    raw = os.environ.get("LOCALCLUSTER_REAL_REFERENCE_DIR")
    d = Path(raw) if raw else REPO_ROOT.parent / "shared" / "reference"
    return d if (d / "crds").is_dir() else None


def etcd_path() -> str | None:
    return shutil.which("etcd") or (("/usr/bin/etcd") if os.access("/usr/bin/etcd", os.X_OK) else None)


def operator_name(release: str) -> str:
    return f"cluster-image-registry-operator-{release}"


def missing_reason(release: str = DEFAULT_RELEASE) -> str | None:
    """None when the real control plane of `release` can run here, else a one-line reason."""
    if release not in RELEASES:
        return f"unknown OpenShift release {release!r}: choose one of {', '.join(RELEASES)}"
    d = bin_dir()
    if d is None:
        return "the real control-plane binaries are absent (../shared/bin or LOCALCLUSTER_REAL_BIN_DIR)"
    for name in KUBE_BINARIES + (operator_name(release),):
        if not (d / f"{name}.xz").is_file():
            return f"{d}/{name}.xz is missing"
    if reference_dir() is None or not (reference_dir() / "crds" / release).is_dir():
        return f"the CRDs of {release} are absent (../shared/reference/crds/{release})"
    if etcd_path() is None:
        return "etcd is not installed (Debian: apt-get install etcd-server)"
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (util-linux / iproute2)"
    if os.geteuid() != 0:
        return "the real control plane needs root (private network and mount namespaces)"
    return None


def _sums(d: Path) -> dict[str, str]:
    out = {}
    for line in (d / "SHA256SUMS.raw").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[1].lstrip("*")] = parts[0]
    return out


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def binary(name: str) -> Path:
    """The unpacked binary `name`, checked against SHA256SUMS.raw (unpacked again when it differs)."""
    d = bin_dir()
    if d is None:
        raise BinaryError(missing_reason() or "no binaries")
    want = _sums(d).get(name)
    if want is None:
        raise BinaryError(f"{name} is not listed in {d}/SHA256SUMS.raw")
    target = cache_dir() / want[:16] / name
    stamp = target.with_name(name + ".ok")
    if target.is_file() and stamp.is_file() and stamp.stat().st_mtime >= target.stat().st_mtime:
        return target           # checked when unpacked; the stamp is written only after the check
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
    with lzma.open(d / f"{name}.xz") as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    got = _sha256(tmp)
    if got != want:
        tmp.unlink()
        raise BinaryError(f"{name}: sha256 {got} does not match SHA256SUMS.raw ({want}); "
                          f"the file {d}/{name}.xz is damaged")
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    stamp.write_text(want + "\n")
    return target
