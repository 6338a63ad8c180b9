"""The machine's process table, read from /proc (Linux): what `manage.py worker` and the
deployment tests need to find a process's descendants or the members of a process group."""

from __future__ import annotations

import os
from typing import NamedTuple


class Proc(NamedTuple):
    pid: int
    ppid: int
    pgid: int
    # One letter as in ps: R running, S sleeping, T stopped, Z exited but not yet reaped...
    state: str


def processes() -> list[Proc]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                # The command name may hold spaces and parentheses: the other fields start
                # after the last ")".
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:  # it exited while we looked
            continue
        found.append(Proc(int(entry), int(fields[1]), int(fields[2]), fields[0]))
    return found


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for proc in processes():
        children.setdefault(proc.ppid, []).append(proc.pid)
    found: list[int] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def group_running(pgid: int) -> list[int]:
    """The members of a process group that still run (an unreaped zombie does not)."""
    return [proc.pid for proc in processes() if proc.pgid == pgid and proc.state != "Z"]
