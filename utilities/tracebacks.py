"""Give every traceback entry of an interrupt a line number, so pytest can report it.

On CPython 3.11 a signal handler may raise KeyboardInterrupt (Ctrl-C, or SIGTERM turned into one by
fixtures.safety) while the frame sits on an instruction the compiler gave no line (exception-table
cleanup, artificial jumps). That traceback entry then has `tb_lineno` None, and pytest's
KeyboardInterrupt report (`ExceptionInfo.getrepr`, pytest 9.0 and 9.2) subtracts 1 from it and dies
with a TypeError: the run then exits 1 with an internal traceback instead of 2 with the closing lines.

`number_lines` rebuilds such a traceback with the nearest line before the instruction, which is the
statement that was running; entries that have a line are kept as they are.
"""
from __future__ import annotations

import types


def _line_at(code: types.CodeType, lasti: int) -> int:
    """The line of the instruction at `lasti`, or of the closest earlier one that has a line."""
    best = None
    for start, _end, line in code.co_lines():
        if start > lasti:
            break
        if line is not None:
            best = line
    return best if best is not None else code.co_firstlineno


def _renumbered(tb: types.TracebackType | None) -> types.TracebackType | None:
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    if all(e.tb_lineno is not None for e in entries):
        return entries[0] if entries else None
    rebuilt = None
    for e in reversed(entries):
        line = e.tb_lineno if e.tb_lineno is not None else _line_at(e.tb_frame.f_code, e.tb_lasti)
        rebuilt = types.TracebackType(rebuilt, e.tb_frame, e.tb_lasti, line)
    return rebuilt


def number_lines(exc: BaseException) -> BaseException:
    """Give `exc`, and the exceptions chained to it, tracebacks whose entries all have a line."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        tb = e.__traceback__
        fixed = _renumbered(tb)
        if fixed is not tb:
            e.__traceback__ = fixed
        todo.extend([e.__cause__, e.__context__])
    return exc
