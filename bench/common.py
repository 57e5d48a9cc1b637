"""Shared by the benchmarks: interleaved repetitions, median/min/max, ratios, peak memory of a child.

Every benchmark measures its subject and its reference in ONE run, alternating them (A B A B ...), so a
loaded, shared machine slows both alike; it prints median, min and max of each and the ratio of the
medians. Nothing is asserted: figures are printed (bench/ never fails on speed).
"""
from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@dataclasses.dataclass
class Series:
    name: str
    unit: str
    values: list[float] = dataclasses.field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def line(self, fmt: str = "{:.2f}") -> str:
        if not self.values:
            return f"{self.name:<34} (no samples)"
        return (f"{self.name:<34} median {fmt.format(self.median)} {self.unit}  "
                f"min {fmt.format(min(self.values))}  max {fmt.format(max(self.values))}  (n={len(self.values)})")


def interleave(repeat: int, subjects: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Run each subject once per round, in rotating order (round r starts with subject r mod n)."""
    names = list(subjects)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeat):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            out[n].append(subjects[n]())
    return out


def ratio_line(what: str, subject: Series, reference: Series, higher_is_better: bool = True) -> str:
    if not subject.values or not reference.values or reference.median == 0:
        return f"ratio {what}: n/a"
    r = subject.median / reference.median
    better = (r >= 1) if higher_is_better else (r <= 1)
    return f"ratio {what}: {r:.2f} ({'at least' if better else 'below'} the reference)" if higher_is_better else \
        f"ratio {what}: {r:.2f} ({'within' if better else 'over'} the reference)"


def machine() -> str:
    cpus = os.cpu_count()
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor())
    except OSError:
        model = platform.processor()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.node()} ({cpus} CPU {model}, {platform.system()} {platform.release()}, load {load:.2f})"


def header(title: str) -> None:
    print(f"== {title}")
    print(f"   {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} on {machine()}")


def run_measured(cmd: list[str], env: dict | None = None, timeout: float = 600) -> tuple[float, int, str]:
    """Run a command; (wall seconds, peak RSS in KiB of that child, its stdout). Raises on failure."""
    t = time.perf_counter()
    with open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(cmd, env=env, stdin=devnull, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    out, err = b"", b""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    sel.register(proc.stderr, selectors.EVENT_READ)
    open_streams = 2
    while open_streams:
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{cmd[0]} timed out after {timeout}s")
        for key, _ in sel.select(timeout=1):
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                open_streams -= 1
            elif key.fileobj is proc.stdout:
                out += chunk
            else:
                err = (err + chunk)[-20000:]
    _, status, usage = os.wait4(proc.pid, 0)       # this child's own rusage
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... failed ({proc.returncode}): {err.decode(errors='replace')[-1500:]}")
    return wall, usage.ru_maxrss, out.decode(errors="replace")


def rss_kib() -> tuple[int, int]:
    """(current VmRSS, peak VmHWM) of this process in KiB."""
    cur = peak = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            cur = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    return cur, peak


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
