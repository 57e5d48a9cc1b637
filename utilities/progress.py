"""Progress of long waits: one live line on a terminal, one log line per change of state in files.

    with progress.task("registry rollout") as t:     # or progress.update(text) / progress.done()
        while ...:
            t.update(describe())                       # the state now, e.g. "pod x Pending: FailedScheduling"

On a terminal (the sink installed by the pytest plugin, or stderr when it is a tty) the line
"registry rollout, 14 s: <state>" is rewritten in place, cut to the terminal's width, and cleared when
the task ends. Whatever the output is, a log record (logger `utilities.progress`, level INFO) is written
only when the state text changes, and one when the task ends: a pipe or a log file never gets a line
per poll.
"""
from __future__ import annotations

import contextlib
import logging
import re
import shutil
import sys
import threading
import time
from typing import Callable, Iterator

log = logging.getLogger(__name__)

# A sink writes one live line (final=False; it cuts the text to its width with `fit`) or clears it
# (text "", final=True). None: no live line. The suite's is fixtures/progress.py's (pytest's terminal).
Sink = Callable[[str, bool], None]

_lock = threading.RLock()
_sink: Sink | None = None
_sink_is_tty: bool = False
_stack: list["Task"] = []


def _stderr_sink(text: str, final: bool) -> None:
    sys.stderr.write("\r" + fit(text) + "\x1b[K")
    sys.stderr.flush()


def set_sink(sink: Sink | None, *, is_tty: bool) -> None:
    """Where live lines go (the pytest plugin installs the terminal reporter's). `is_tty` False: no live
    line at all, only the log records."""
    global _sink, _sink_is_tty
    with _lock:
        _sink, _sink_is_tty = sink, bool(is_tty)


def current_sink() -> Sink | None:
    """The sink installed with `set_sink` (None: none)."""
    return _sink


def _live_sink() -> Sink | None:
    if _sink is not None:
        return _sink if _sink_is_tty else None
    try:
        return _stderr_sink if sys.stderr.isatty() else None
    except (AttributeError, ValueError):
        return None


def width() -> int:
    return max(shutil.get_terminal_size((120, 24)).columns - 1, 20)


def fit(text: str, columns: int | None = None) -> str:
    """One line of at most `columns` characters (newlines folded, an ellipsis where cut)."""
    columns = columns or width()
    text = " ".join(str(text).split())
    return text if len(text) <= columns else text[:columns - 1] + "…"


_DEPLOY = re.compile(r"Deployment [\w-]+: replicas=(\d+), updatedReplicas=(\d+), readyReplicas=(\d+), "
                     r"availableReplicas=(\d+)")
_POD = re.compile(r"pod ([\w.-]+): phase=(\w+) ready=(\w+)")
_COND = re.compile(r"^(?:Config(?: conditions)?: )?(\w+=\w+/\w*):")


def condense(state: str) -> str:
    """The live line's short form of a wait's state (utilities/waits.py `describe_snapshot` and
    `format_conditions` texts): "0/1 ready; pod x Pending; Available=False/NoReplicasAvailable; ...".
    Anything else is kept as it is."""
    parts = [p.strip() for p in state.split("; ") if p.strip()]
    want = next((m.group(1) for p in parts for m in [re.search(r"spec\.replicas=(\d+)", p)] if m), None)
    head, pods, conds, rest = [], [], [], []
    for p in parts:
        if m := _DEPLOY.search(p):
            head.append(f"{m.group(3)}/{want or m.group(1)} ready")
        elif m := _POD.search(p):
            pods.append(f"pod {m.group(1)} {m.group(2)}" + (" (ready)" if m.group(3) == "True" else "")
                        + (" terminating" if "terminating" in p else ""))
        elif "spec.replicas=" in p:
            continue
        elif m := _COND.search(p):
            if not re.search(r"=(False|True)/:?$", m.group(1)) or m.group(1).split("=")[0] == "Available":
                conds.append(m.group(1))
        else:
            rest.append(p)
    if not (head or pods or conds):
        return state
    return "; ".join(head + pods + conds + rest)


class Task:
    """One long wait. `update(state)`: the live line; a log record when the state changed."""

    def __init__(self, what: str, *, clock: Callable[[], float] = time.monotonic):
        self.what = what
        self.clock = clock
        self.started = clock()
        self.state: str | None = None
        self.changes = 0            # log records written for changes of state

    def elapsed(self) -> float:
        return self.clock() - self.started

    def line(self, state: str | None = None) -> str:
        state = self.state if state is None else state
        return f"{self.what}, {self.elapsed():.0f} s" + (f": {state}" if state else "")

    def update(self, state: str) -> None:
        state = " ".join(str(state).split())
        if state != self.state:
            self.state = state
            self.changes += 1
            log.info("%s", self.line())
        sink = _live_sink()
        if sink is not None:
            with _lock:
                sink(self.line(condense(self.state)), False)     # the sink fits it to its width

    def finish(self, outcome: str = "done") -> None:
        if self.state is not None:          # a task that never waited logs nothing
            log.info("%s: %s after %.0f s", self.what, outcome, self.elapsed())
        sink = _live_sink()
        if sink is not None and self.state is not None:
            with _lock:
                sink("", True)


@contextlib.contextmanager
def task(what: str) -> Iterator[Task]:
    t = Task(what)
    with _lock:
        _stack.append(t)
    try:
        yield t
    except BaseException as e:
        t.finish(f"failed ({e.__class__.__name__})")
        raise
    else:
        t.finish()
    finally:
        with _lock:
            if t in _stack:
                _stack.remove(t)


def update(text: str, what: str | None = None) -> None:
    """Update the innermost task (or start one named `what`, default "waiting")."""
    with _lock:
        if not _stack or (what and _stack[-1].what != what):
            _stack.append(Task(what or "waiting"))
        t = _stack[-1]
    t.update(text)


def done(outcome: str = "done") -> None:
    """End the innermost task started by `update`."""
    with _lock:
        t = _stack.pop() if _stack else None
    if t is not None:
        t.finish(outcome)


def live() -> bool:
    """Whether live lines are shown (a terminal)."""
    return _live_sink() is not None
