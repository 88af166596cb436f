"""One watched root's lane: the only thread that touches that root's files.

Every filesystem call for a root (stat while a file settles, hashing, the reconcile scan, the
check that the root is still mounted) runs here, so a root that hangs (a dead network mount)
stalls its own lane and nothing else: the watcher's main loop never waits on a file. The lane
hands the main loop *results* (a file hashed, a row gone, a scan finished) through one queue;
the main loop alone writes the database.

Order of work, one unit at a time: commands from the main loop; files that settled (live
events) first; then files the scan found; then the next folder of the scan, only while fewer
than ``SCAN_AHEAD`` of its files wait to be hashed and the main loop keeps up. So a first import
records and dispatches its first photos within seconds, and a photo dropped in during a
100,000-photo scan is taken after at most one file's hash.

This module is the thread and its order of work; taking one file is ``hashing``, driving the
reconcile scan ``scanning``, and the results are defined in ``lane_results``.
"""

from __future__ import annotations

import functools
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from watcherd import logs
from watcherd.store import schema
from watcherd.watch import roots
from watcherd.watch.files import FileInfo, sha256_file
from watcherd.watch.hashing import Hashing
from watcherd.watch.lane_results import (
    Gone,
    Hashed,
    Result,
    RootChanged,
    ScanFinished,
    Unreadable,
)
from watcherd.watch.rules import Rules
from watcherd.watch.scan import Scan, walk
from watcherd.watch.scanning import Scanning
from watcherd.watch.settle import SettleTracker

#: The results are defined in ``lane_results``; these names stay importable from here.
__all__ = ["Gone", "Hashed", "Lane", "Result", "RootChanged", "ScanFinished", "Unreadable"]

log = logs.get("watcherd.watch.lane")

SCAN_AHEAD = 256  # files of the scan waiting to be hashed before it lists another folder
MAIN_QUEUE_MAX = 2000  # results waiting for the main loop before the lane waits
SETTLE_TICK_S = 0.2


class Lane(threading.Thread):
    """The thread of one root and its queues: ``inbox`` (commands from the main loop), the
    files to take (``settle`` until complete, then ``live``; ``scan_files`` from the scan) and
    the work on them, one unit at a time (``hashing``, ``reconcile``). ``hasher`` and
    ``settle_seconds`` are read at each use: a test may replace them before ``start``."""

    def __init__(self, root: Path, rules: Rules, *, recursive: bool, settle_seconds: float,
                 db_path: Path, out: queue.Queue[Any],
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name=f"lane {root}", daemon=True)
        self.root = root
        self.rules = rules
        self.recursive = recursive
        self.settle_seconds = settle_seconds
        self.db_path = db_path
        self.out = out
        self.clock = clock
        self.inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.settle = SettleTracker(settle_seconds, clock=clock)
        self.live: deque[str] = deque()
        self.scan_files: deque[FileInfo] = deque()
        self.hashing = Hashing(rules, self.settle, self._emit, clock)
        self.reconcile = Scanning(root, rules, recursive=recursive, emit=self._emit, clock=clock)
        self.root_ident: roots.Ident | None = None  # set by the thread: a stat may hang
        self.busy_since: float | None = None  # start of the unit of work in hand
        self.last_progress = clock()
        self.hashed = 0
        self.hasher: Callable[[str], str] = sha256_file
        self._halt = threading.Event()
        self._conn: sqlite3.Connection | None = None

    # ------------------------------------------------------------ commands (any thread)

    def mark(self, path: str, *, ready: bool) -> None:
        self.inbox.put(("mark", path, ready))

    def forget(self, path: str) -> None:
        self.inbox.put(("forget", path))

    def forget_under(self, folder: str) -> None:
        self.inbox.put(("forget_under", folder))

    def moved_under(self, src: str, dest: str) -> None:
        """A folder was renamed: files still settling under it settle under the new name."""
        self.inbox.put(("moved_under", src, dest))

    def take_folder(self, folder: str) -> None:
        """A folder moved in from outside: every file in it is complete."""
        self.inbox.put(("take_folder", folder))

    def request_scan(self, folder: Path | None = None) -> None:
        """Reconcile the root (or one folder below it) with the database."""
        self.inbox.put(("scan", folder or self.root))

    def check_root(self) -> None:
        self.inbox.put(("check_root",))

    def stop(self) -> None:
        self._halt.set()
        self.inbox.put(("stop",))

    # ------------------------------------------------------------------ state (read-only)

    @property
    def scan(self) -> Scan | None:
        """The reconcile scan in hand (its ``progress``), None between scans."""
        return self.reconcile.current

    @property
    def scanning(self) -> bool:
        return self.scan is not None

    def waiting(self) -> int:
        """Files this lane has heard of and not yet handed to the loop."""
        return len(self.settle) + len(self.live) + len(self.scan_files)

    def stalled_for(self) -> float:
        """Seconds the unit of work in hand has been running (0 when idle)."""
        since = self.busy_since
        return 0.0 if since is None else self.clock() - since

    # -------------------------------------------------------------------------- thread

    def run(self) -> None:
        self._conn = schema.connect(self.db_path, migrate_schema=False)
        self.root_ident = roots.identity(self.root)
        next_settle = self.clock()
        try:
            while not self._halt.is_set():
                self._commands(self._wait())
                if self._halt.is_set():
                    break
                now = self.clock()
                if now >= next_settle:
                    next_settle = now + SETTLE_TICK_S
                    self._work(lambda: self.live.extend(self.settle.due()))
                if self.live:
                    path = self.live.popleft()
                    self._work(functools.partial(self._hash, path, "live"))
                elif self.scan_files and self._main_keeps_up():
                    info = self.scan_files.popleft()
                    self._work(functools.partial(self._hash_scanned, info))
                elif self._scan_may_step():
                    self._work(self._scan_step)
        except Exception:
            log.exception("lane failed", root=str(self.root))
            raise
        finally:
            self._conn.close()

    def _wait(self) -> float | None:
        """How long to wait for a command: not at all with work that can go on, a moment
        while files settle or the main loop catches up, else until a command comes."""
        if self.live or ((self.scan_files or self.scan) and self._main_keeps_up()):
            return 0.0
        if self.scan_files or self.scan:
            return 0.05
        return SETTLE_TICK_S if len(self.settle) else None

    def _work(self, fn: Callable[[], None]) -> None:
        self.busy_since = self.clock()
        try:
            fn()
        finally:
            self.busy_since = None
            self.last_progress = self.clock()

    def _commands(self, timeout: float | None) -> None:
        try:
            cmd = self.inbox.get(timeout=timeout) if timeout != 0.0 else self.inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            self._work(functools.partial(self._command, cmd))
            try:
                cmd = self.inbox.get_nowait()
            except queue.Empty:
                return

    def _command(self, cmd: tuple[Any, ...]) -> None:
        kind = cmd[0]
        if kind == "mark":
            self.settle.mark(cmd[1], ready=cmd[2])
        elif kind == "forget":
            self.settle.forget(cmd[1])
        elif kind == "forget_under":
            self.settle.forget_under(cmd[1])
        elif kind == "moved_under":
            src, dest = cmd[1].rstrip("/") + "/", cmd[2].rstrip("/") + "/"
            for path in self.settle.pop_under(src):
                self.settle.mark(dest + path[len(src):], ready=False)
            self.live = deque(dest + p[len(src):] if p.startswith(src) else p
                              for p in self.live)
            self.scan_files = deque(
                FileInfo(dest + f.path[len(src):], f.size, f.mtime) if f.path.startswith(src)
                else f for f in self.scan_files)
        elif kind == "take_folder":
            for info in walk(Path(cmd[1]), self.rules, self.recursive):
                self.settle.mark(info.path, ready=True)
        elif kind == "scan":
            assert self._conn is not None
            self.reconcile.request(self._conn, cmd[1])
        elif kind == "check_root":
            now = roots.identity(self.root)
            if now != self.root_ident:
                self._emit(RootChanged(self.root, gone=self.root_ident is not None,
                                       back=now is not None))
                self.root_ident = now

    def _emit(self, result: Result) -> None:
        self.out.put(result)

    def _main_keeps_up(self) -> bool:
        return self.out.qsize() < MAIN_QUEUE_MAX

    # ------------------------------------------------------------------------- hashing

    def _hash_scanned(self, info: FileInfo) -> None:
        if time.time() - info.mtime < self.settle_seconds:
            self.settle.mark(info.path, ready=False)  # modified moments ago: let it settle
            return
        self._hash(info.path, "scan")

    def _hash(self, path: str, source: Literal["live", "scan"]) -> None:
        assert self._conn is not None
        if self.hashing.take(self._conn, path, source, self.hasher):
            self.hashed += 1

    # ---------------------------------------------------------------------------- scan

    def _scan_may_step(self) -> bool:
        return (self.scan is not None and len(self.scan_files) < SCAN_AHEAD
                and self._main_keeps_up())

    def _scan_step(self) -> None:
        assert self._conn is not None
        self.reconcile.step(self._conn, self.scan_files)
