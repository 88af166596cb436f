"""Ending a worker process from outside: what the watcher does with ``liveness.End``.

A process that is SIGSTOPped, or stuck in a step past its time limit, cannot end itself (its
heartbeat thread stops with it, or keeps beating while the step never returns); while it lives,
RabbitMQ keeps its unacknowledged messages and the spool its claims. The watcher ends it with
SIGKILL when it runs on the watcher's host and its command line is a watcherd worker's (a pid
reused by another program is left alone); ``watcherd run``'s supervisor or systemd
(``Restart=on-failure``) starts a new one, and the broker gives its messages back. A process
whose /proc entry the watcher cannot read (systemd's ``ProtectProc=invisible`` between units)
is ended only when forced: hung, or silent for ``liveness.END_SILENT_AFTER_S``.
"""

from __future__ import annotations

import functools
import os
import signal
import socket

KILLED, GONE, REMOTE, NOT_OURS, RUNNING, DENIED = (
    "killed", "gone", "remote", "not ours", "running", "denied")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


@functools.cache  # fixed for the process's life; every heartbeat carries it
def pid_space() -> str:
    """Where this process's pid numbers mean something: "<machine id>/<pid namespace inode>",
    either part "" when unreadable. Two processes with the same host name but another pid
    space (a container sharing the host's network and name: another namespace; another machine
    given the same name: another machine id) must not take each other's pids for their own.
    Both parts stay readable in the hardened units (/etc/machine-id under ProtectSystem=strict,
    the process's own /proc entry under ProcSubset=pid, which hides /proc/sys)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        namespace = ""
    machine = _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")
    return f"{machine}/{namespace.removeprefix('pid:[').removesuffix(']')}"


def same_space(theirs: str, ours: str) -> bool:
    """False only when a part both sides know differs: a part one side cannot read (or a
    worker that does not say) decides nothing, so a stuck local worker is still ended."""
    return all(not a or not b or a == b
               for a, b in zip(theirs.split("/"), ours.split("/"), strict=False))


def _state(pid: int) -> str | None:
    """The process's state letter from /proc (R, S, D, T, t, Z…), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[0]


def _is_worker(pid: int) -> bool:
    """Its command line is a ``watcherd … worker …`` (pool children share their parent's)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return b"worker" in argv and any(b"watcherd" in a for a in argv)


def end(host: str, pid: int, *, force: bool, space: str = "") -> str:
    """SIGKILL the worker process ``pid`` of ``host`` if it is on this host and in this pid
    space (``space``: its heartbeat's :func:`pid_space`; "" from a worker that does not
    say), is a watcherd worker, and either ``force`` or it is stopped (state T). Returns what
    happened: killed, gone (or a zombie), remote, not ours, running (not stopped and not
    forced: not yet), denied (no permission)."""
    if host != socket.gethostname() or not same_space(space, pid_space()):
        # Another machine, or one that only shares the name: a container with the host's
        # network and name (its pid 2 is not ours), or a clone of this machine's disk.
        return REMOTE
    state = _state(pid)
    if state is None:
        # Gone, or hidden: under systemd each unit has its own user namespace and
        # ProtectProc=invisible, so the watcher cannot read the workers' /proc entries. kill()
        # still reaches them (the same user); it reaches no other user's process, and the pid
        # was a watcherd worker's in a heartbeat seconds ago. Its state unknown, only forced.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return GONE
        except PermissionError:
            return NOT_OURS
        if not force:
            return RUNNING
    elif state in ("Z", "X"):
        return GONE
    elif not _is_worker(pid):
        return NOT_OURS
    elif not force and state != "T":
        return RUNNING
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return GONE
    except PermissionError:
        return DENIED
    return KILLED
