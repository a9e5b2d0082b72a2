"""CPU seconds and RSS of a process tree, read from /proc (Linux only).

CPU counts utime+stime of every live process in the tree plus cutime+cstime, the CPU of children
already reaped, so a worker that forks a child per job (RQ) is charged for its children too.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        # A process or thread may end at any point of the walk (ProcessLookupError, ENOENT).
        try:
            for task in Path(f"/proc/{current}/task").glob("*/children"):
                todo.extend(int(child) for child in task.read_text().split())
        except OSError:
            continue
    return found


def _stat(pid: int) -> list[str]:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    # The command name (field 2) may hold spaces; the fields after it start past its ')'.
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float:
    """utime+stime+cutime+cstime over the tree of ``pid``."""
    ticks = 0
    for member in tree(pid):
        fields = _stat(member)
        if fields:  # fields[11:15] are utime, stime, cutime, cstime (stat fields 14-17)
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / _TICK


def rss_bytes(pid: int) -> int:
    """The summed RSS of the tree (forked children share pages, so this overstates them)."""
    total = 0
    for member in tree(pid):
        fields = _stat(member)
        if fields:  # fields[21] is rss in pages (stat field 24)
            total += int(fields[21]) * _PAGE
    return total
