"""One deadline shared by all the waits of a test (issue 16 item 6).

Each wait takes its own timeout, mostly `--rollout-timeout`. A test that waits for the Config and then
for the ClusterOperator, each with the rollout timeout, took twice the timeout when neither came, and a
run whose cause kept several such waits from their targets took minutes per test (566 s measured with a
300 s rollout timeout). So the suite starts one `Deadline` when a test's call phase starts
(`fixtures/deadline.py`): every wait of `utilities/waits.py` takes min(its own timeout, what is left)
and, when the deadline cut it short, says so in its timeout message.

Outside a test's call phase (fixtures' set-up and teardown, the session's restore, notebooks) no
deadline is active and each wait keeps its own timeout. A step inside a test that puts back what the
test changed runs under `lifted()`: a restore is not part of the test's verdict and must not be starved
by the waits before it.

A context variable, not a global: the watch threads of a wait never read it, and a thread that starts
a wait of its own starts with no deadline.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import time
from typing import Iterator


class Exhausted(AssertionError):
    """A wait that the test's deadline cut short ran out. Deliberately not a `waits.WaitTimeout`: some
    checks read a wait's timeout as their verdict ("no replacement pod became ready within the grace",
    the ReadWriteOnce probe never started), and such a verdict must never rest on a window shorter than
    the one the check asked for. The test fails instead, saying the deadline was spent."""


@dataclasses.dataclass(frozen=True)
class Deadline:
    seconds: float
    what: str                 # whose deadline, for messages: e.g. "test test_x[emptydir]"
    start: float = dataclasses.field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return max(0.0, self.start + self.seconds - time.monotonic())


_CURRENT: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("deadline", default=None)


def current() -> Deadline | None:
    return _CURRENT.get()


@contextlib.contextmanager
def _set(value: Deadline | None) -> Iterator[Deadline | None]:
    token = _CURRENT.set(value)
    try:
        yield value
    finally:
        _CURRENT.reset(token)


def shared(seconds: float, what: str):
    """The waits inside the block share one deadline of `seconds`."""
    return _set(Deadline(float(seconds), what))


def lifted():
    """The waits inside the block keep their own timeouts (a restore inside a test)."""
    return _set(None)


def bounded(timeout: float) -> tuple[float, str]:
    """(the timeout a wait may use now, what its timeout message adds: "" when its own timeout applies)."""
    d = _CURRENT.get()
    if d is None:
        return timeout, ""
    left = d.remaining()
    if left >= timeout:
        return timeout, ""
    return left, (f" (what was left of the {d.seconds:.0f} s that all the waits of {d.what} share: "
                  f"{d.seconds - left:.0f} s went to its earlier steps; its own timeout was {timeout:.0f} s)")
