"""utilities/progress.py: one live line on a terminal, a log line per change of state, nothing per poll
on a pipe; and the suite's waits use it (a real run in a pseudo-terminal and through a pipe)."""
from __future__ import annotations

import logging
import os
import pty
import select
import subprocess
import sys
import time

from utilities import progress
from utilities.localcluster_process import REPO_ROOT


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_live_line_on_a_terminal_and_one_log_line_per_change(caplog):
    lines = []
    progress.set_sink(lambda text, final: lines.append((text, final)), is_tty=True)
    try:
        clock = Clock()
        caplog.set_level(logging.INFO, logger="utilities.progress")
        t = progress.Task("rollout", clock=clock)
        for i, state in enumerate(["1/2 ready: pod a Pending, FailedScheduling"] * 5 + ["2/2 ready"] * 3):
            clock.t = float(i)
            t.update(state)
        t.finish()
    finally:
        progress.set_sink(None, is_tty=False)
    assert len(lines) == 9 and lines[-1] == ("", True)          # 8 live updates, then cleared
    assert lines[0] == ("rollout, 0 s: 1/2 ready: pod a Pending, FailedScheduling", False)
    assert lines[4] == ("rollout, 4 s: 1/2 ready: pod a Pending, FailedScheduling", False)
    logged = [r.getMessage() for r in caplog.records if r.name == "utilities.progress"]
    assert logged == ["rollout, 0 s: 1/2 ready: pod a Pending, FailedScheduling", "rollout, 5 s: 2/2 ready",
                      "rollout: done after 7 s"]


def test_no_live_line_without_a_terminal(caplog):
    lines = []
    progress.set_sink(lambda text, final: lines.append(text), is_tty=False)
    try:
        caplog.set_level(logging.INFO, logger="utilities.progress")
        with progress.task("wait") as t:
            for _ in range(20):
                t.update("same state")
    finally:
        progress.set_sink(None, is_tty=False)
    assert lines == []
    assert len([r for r in caplog.records if r.name == "utilities.progress"]) == 2   # the state, the end


def test_fit_cuts_to_one_line():
    assert progress.fit("a\nb  c", 80) == "a b c"
    assert progress.fit("x" * 100, 10) == "x" * 9 + "…"


def test_module_level_update_and_done(caplog):
    caplog.set_level(logging.INFO, logger="utilities.progress")
    progress.update("pending", what="claim")
    progress.update("pending", what="claim")
    progress.done()
    msgs = [r.getMessage() for r in caplog.records if r.name == "utilities.progress"]
    assert msgs[0].startswith("claim, 0 s: pending") and msgs[1].startswith("claim: done after") and len(msgs) == 2


SELECT = ["tests/test_storage_backends.py", "-k", "rollout_completes", "--backend=default-pvc", "--backend=emptydir",
          "-p", "no:cacheprovider", "--rollout-timeout=60"]
COLUMNS, LINES = 150, 40


def _run_in_pty(args, env, timeout=300) -> tuple[bytes, list[list[str]]]:
    """The suite in a pseudo-terminal, its output rendered by a VT100 emulator as it comes: (the bytes,
    the screens seen while a live line showed)."""
    import pyte
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(REPO_ROOT)
        os.execve(sys.executable, [sys.executable, *args], env)
    screen = pyte.Screen(COLUMNS, LINES)
    stream = pyte.ByteStream(screen)
    out, live = b"", []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 1.0)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
                stream.feed(chunk)
                if any("registry rollout, " in ln for ln in screen.display):
                    live.append([ln.rstrip() for ln in screen.display])
    finally:
        os.waitpid(pid, 0)
    return out, live


def _rendered(raw: bytes) -> list[str]:
    """Every line the terminal ends up showing (the scrolled-off ones included), trailing blanks cut."""
    import pyte
    screen = pyte.HistoryScreen(COLUMNS, LINES, history=5000)
    pyte.ByteStream(screen).feed(raw)
    top = ["".join(row[x].data for x in range(COLUMNS)).rstrip() for row in screen.history.top]
    lines = top + [ln.rstrip() for ln in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _body(lines: list[str]) -> list[str]:
    """From the line after "collected ..." to the line before the reports' "matrix: ..." line."""
    start = next(i for i, ln in enumerate(lines) if ln.startswith("collected "))
    end = next(i for i, ln in enumerate(lines) if ln.startswith("matrix: "))
    return lines[start + 1:end]


def test_the_live_line_names_the_backend_and_leaves_no_trace(tmp_path):
    """Issue 17 item 8: on a terminal the rollout wait shows a live line under the row, naming the backend,
    the check and its phase; once done, the terminal shows exactly what a pipe gets (no blank line, no
    broken row); each backend pass has its section line; nothing of it reaches a pipe."""
    env = dict(os.environ, TERM="xterm", COLUMNS=str(COLUMNS), LINES=str(LINES))
    raw, live = _run_in_pty(["-m", "pytest", *SELECT, f"--reports-dir={tmp_path / 'tty'}", "--run-id=r"], env)
    shown = _rendered(raw)
    assert any(" passed" in ln for ln in shown), "\n".join(shown[-40:])
    assert live, "no live line was seen:\n" + "\n".join(shown)
    for screen in live:
        at = next(i for i, ln in enumerate(screen) if "registry rollout, " in ln)
        assert screen[at].startswith(("default-pvc · test_rollout_completes (setup) · registry rollout, ",
                                      "emptydir · test_rollout_completes (setup) · registry rollout, ")), screen[at]
        assert screen[at - 1].startswith("tests/test_storage_backends.py"), screen[at - 1:at + 1]   # its row, whole
    piped = subprocess.run([sys.executable, "-m", "pytest", *SELECT, f"--reports-dir={tmp_path / 'pipe'}",
                            "--run-id=r"], cwd=REPO_ROOT, capture_output=True, env=env, timeout=300, text=True)
    assert " passed" in piped.stdout, piped.stdout[-2000:]
    assert "registry rollout, " not in piped.stdout + piped.stderr and "\x1b" not in piped.stdout
    assert _body(shown) == _body(piped.stdout.splitlines()), "\n".join(shown)
    body = _body(shown)
    sections = [ln.strip("- ") for ln in body if ln.startswith("---")]
    assert sections == ["backend default-pvc", "backend emptydir"], body
    assert body.count("") <= len(sections), body          # pytest's own: one before each row, no more
    # In files: one line per change of state (JUnit's captured log), never one per poll.
    junit = (tmp_path / "pipe" / "r" / "junit.xml").read_text()
    rollout_lines = [ln for ln in junit.splitlines() if "utilities.progress" in ln and "registry rollout" in ln]
    assert rollout_lines, junit[-3000:]
    states = [ln.split("registry rollout", 1)[1].split(" s", 1)[-1] for ln in rollout_lines]
    assert len(states) == len(set(states)) or len(rollout_lines) < 20


def test_progress_goes_through_the_public_reporting_api():
    """The live line, the section lines and the pre-upgrade table use TerminalReporter's public methods,
    not its writer `_tw`."""
    for path in [*(REPO_ROOT / "fixtures").glob("*.py"), *(REPO_ROOT / "utilities").rglob("*.py"),
                 REPO_ROOT / "conftest.py"]:
        assert "._tw" not in path.read_text(), path


def test_condense_the_rollout_state():
    state = ("Config: Available=False/NoReplicasAvailable: The deployment does not have available replicas; "
             "Progressing=True/DeploymentNotCompleted: The deployment has not completed; Degraded=False/: ; "
             "Config spec.replicas=2; Deployment image-registry: replicas=2, updatedReplicas=2, readyReplicas=1, "
             "availableReplicas=1; pod image-registry-a: phase=Pending ready=False node=None; "
             "pod image-registry-b: phase=Running ready=True node=worker-1")
    assert progress.condense(state) == ("1/2 ready; pod image-registry-a Pending; pod image-registry-b Running "
                                        "(ready); Available=False/NoReplicasAvailable; "
                                        "Progressing=True/DeploymentNotCompleted")
    assert progress.condense("the Deployment still exists") == "the Deployment still exists"
