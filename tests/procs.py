"""Process-tree helpers read from /proc (no psutil dependency)."""

from __future__ import annotations

import os


def _ppid_map() -> dict[int, int]:
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parentheses.
        out[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
    return out


def children(pid: int) -> list[int]:
    return [p for p, parent in _ppid_map().items() if parent == pid]


def descendants(pid: int) -> list[int]:
    ppids = _ppid_map()
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in ppids.items() if pp == parent]
        found.extend(kids)
        frontier.extend(kids)
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
