"""This worker's processes and their memory, read from /proc (no psutil)."""

from __future__ import annotations

import os


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after ``comm`` (state is [0], ppid [1]); None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(p) for p in f.read().split())
        except FileNotFoundError:  # a thread that just ended, or no CONFIG_PROC_CHILDREN
            continue
        except OSError:
            continue
    if found or os.path.exists(f"/proc/{pid}/task/{pid}/children"):
        return found
    # Kernels without /proc/PID/task/TID/children: scan every process's parent.
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))) and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def live_tree(pid: int | None = None) -> list[int]:
    """``pid`` (default: this process) and its live descendants; zombies are left out (a
    killed pool child is a zombie until its parent reaps it)."""
    root = pid or os.getpid()
    out, frontier = [root], [root]
    while frontier:
        for child in _children(frontier.pop()):
            fields = _stat_fields(child)
            if fields is not None and fields[0] not in ("Z", "X"):
                out.append(child)
                frontier.append(child)
    return out


def rss_kb(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def stopped(pid: int) -> bool:
    """Stopped by a signal (SIGSTOP, SIGTSTP: state T); a debugger's stop (t) is not."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] == "T"
