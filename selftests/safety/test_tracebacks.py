"""An interrupt whose traceback has an entry without a line still ends with pytest's report and exit 2.

CPython 3.11 gives `tb_lineno` None to an entry raised on an instruction without a line; pytest's
KeyboardInterrupt report then fails with a TypeError and the run exits 1 (seen in CI: SIGTERM
mid-rollout). The traceback built here is such an entry, made the way the interpreter makes it
(`tb_lineno` -1 means: look the line up from the instruction).
"""
from __future__ import annotations

import subprocess
import sys

from _pytest._code import ExceptionInfo

from utilities import tracebacks
from utilities.localcluster_process import REPO_ROOT

LINELESS = '''
import sys, types


def _lineless_frame():
    try:
        x = 1
    finally:
        pass
    return sys._getframe()


def lineless_traceback(tb_next=None):
    frame = _lineless_frame()
    offset = next(start for start, _end, line in frame.f_code.co_lines() if line is None)
    return types.TracebackType(tb_next, frame, offset, -1)
'''


def _lineless_traceback():
    ns: dict = {}
    exec(compile(LINELESS, "<lineless>", "exec"), ns)
    return ns["lineless_traceback"]


def test_an_entry_without_a_line_gets_the_line_of_its_statement():
    make = _lineless_traceback()
    tb = make()
    assert tb.tb_lineno is None, "the interpreter no longer leaves an entry without a line: drop the fix"
    exc = KeyboardInterrupt("SIGTERM").with_traceback(tb)
    exc.__context__ = ValueError("while handling").with_traceback(make())
    tracebacks.number_lines(exc)
    lines = {line for _s, _e, line in tb.tb_frame.f_code.co_lines() if line is not None}
    assert exc.__traceback__.tb_lineno in lines, "a line of the statements of that function"
    assert exc.__traceback__.tb_frame is tb.tb_frame and exc.__traceback__.tb_lasti == tb.tb_lasti
    assert exc.__context__.__traceback__.tb_lineno in lines
    ExceptionInfo.from_exception(exc).getrepr(funcargs=True)     # what pytest's report does


def test_entries_with_lines_are_kept_as_they_are():
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as exc:
        tb = exc.__traceback__
        tracebacks.number_lines(exc)
        assert exc.__traceback__ is tb


def test_the_suite_reports_such_an_interrupt_and_exits_2(tmp_path):
    (tmp_path / "lineless.py").write_text(LINELESS)
    (tmp_path / "test_interrupted.py").write_text(
        "from lineless import lineless_traceback\n\n\n"
        "def test_interrupted():\n"
        "    raise KeyboardInterrupt('SIGTERM').with_traceback(lineless_traceback())\n")
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", "/dev/null",
            "--rootdir", str(tmp_path), str(tmp_path / "test_interrupted.py")]
    env = {"PYTHONPATH": f"{REPO_ROOT}:{tmp_path}", "PATH": "/usr/bin:/bin"}
    bare = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "TypeError" in bare.stderr + bare.stdout, "pytest no longer fails on it: drop the fix"
    ours = subprocess.run(args[:3] + ["-p", "fixtures.safety"] + args[3:], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert ours.returncode == 2, ours.stdout[-2000:] + ours.stderr[-2000:]
    assert "KeyboardInterrupt: SIGTERM" in ours.stdout and "TypeError" not in ours.stdout + ours.stderr
