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
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from watcherd import logs
from watcherd.store import discovery, schema
from watcherd.watch import roots
from watcherd.watch.files import FileInfo, regular_file, sha256_file
from watcherd.watch.rules import Rules
from watcherd.watch.scan import Progress, Scan, walk
from watcherd.watch.settle import SettleTracker

log = logs.get("watcherd.watch.lane")

SCAN_AHEAD = 256  # files of the scan waiting to be hashed before it lists another folder
MAIN_BACKLOG = 2000  # results waiting for the main loop before the lane waits
SETTLE_TICK_S = 0.2


# ----------------------------------------------------------------------- results (lane → main)


@dataclass(frozen=True)
class Hashed:
    path: str
    size: int
    mtime: float
    sha256: str
    started: float  # monotonic time the hash started
    source: Literal["live", "scan"]
    moved_from: tuple[int, str] | None = None  # a live row with this content whose file is gone
    duration_ms: float = 0.0  # reading and hashing the file


@dataclass(frozen=True)
class Unreadable:
    path: str
    reason: str
    started: float


@dataclass(frozen=True)
class Gone:
    """Rows the scan found without their file (``paths``) or without their folder
    (``folders``: every row directly in them)."""

    root: Path
    before: str  # only rows not updated since then: newer ones come from live events
    paths: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ScanFinished:
    root: Path
    progress: Progress
    skipped: list[tuple[str, str]]
    duration_s: float


@dataclass(frozen=True)
class RootChanged:
    root: Path
    gone: bool  # the folder we watched is no longer there (deleted, unmounted, replaced)
    back: bool  # a folder is there to be watched anew


Result = Hashed | Unreadable | Gone | ScanFinished | RootChanged


class Lane(threading.Thread):
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
        self.scan: Scan | None = None
        self.scan_again = False
        self._scan_again_folder = root
        self._scan_started = 0.0
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
    def scanning(self) -> bool:
        return self.scan is not None

    def backlog(self) -> int:
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
            if self.scan is None:
                self._start_scan(cmd[1])
            else:  # once this one is over: it may have passed the change already
                self._scan_again_folder = self.root if self.scan_again else cmd[1]
                self.scan_again = True
        elif kind == "check_root":
            now = roots.identity(self.root)
            if now != self.root_ident:
                self._emit(RootChanged(self.root, gone=self.root_ident is not None,
                                       back=now is not None))
                self.root_ident = now

    def _emit(self, result: Result) -> None:
        self.out.put(result)

    def _main_keeps_up(self) -> bool:
        return self.out.qsize() < MAIN_BACKLOG

    # ------------------------------------------------------------------------- hashing

    def _hash_scanned(self, info: FileInfo) -> None:
        if time.time() - info.mtime < self.settle_seconds:
            self.settle.mark(info.path, ready=False)  # modified moments ago: let it settle
            return
        self._hash(info.path, "scan")

    def _hash(self, path: str, source: Literal["live", "scan"]) -> None:
        assert self._conn is not None
        info = regular_file(path)
        if info is None:
            return
        known = discovery.known(self._conn, path)
        if known and not known.deleted and (known.size, known.mtime) == (info.size, info.mtime):
            return  # the file we have (a touch, a chmod, or taken by a live event already)
        started = self.clock()
        try:
            digest = self.hasher(path)
        except FileNotFoundError:
            return  # deleted meanwhile: its event follows
        except OSError as exc:
            what = "unreadable" if exc.errno in (errno.EACCES, errno.EPERM) else "read error"
            reason = f"{what}: {exc.strerror or exc}"
            log.warning("cannot read file", path=path, reason=reason,
                        errno=errno.errorcode.get(exc.errno or 0, exc.errno))
            self._emit(Unreadable(path, reason, started))
            return
        after = regular_file(path)
        if after is None:
            return
        if (after.size, after.mtime) != (info.size, info.mtime):
            self.settle.mark(path, ready=False)  # still being written: wait until it settles
            return
        moved_from = None if known else self._gone_twin(digest, path)
        self.hashed += 1
        took = round((self.clock() - started) * 1000, 1)
        self._emit(Hashed(path, info.size, info.mtime, digest, started, source, moved_from, took))

    def _gone_twin(self, digest: str, path: str) -> tuple[int, str] | None:
        """A live row with this content whose file is gone: this file is that photo, moved
        (while watcherd was down, or before the scan reached its old folder)."""
        assert self._conn is not None
        for image_id, other in discovery.live_twins(self._conn, digest, path):
            if os.path.lexists(other):
                continue
            root = self.rules.root_of(other)
            if root is None or not _listable_and_not_empty(root):
                continue  # its disk may just be unmounted: not a move
            return image_id, other
        return None

    # ---------------------------------------------------------------------------- scan

    def _start_scan(self, folder: Path) -> None:
        assert self._conn is not None
        self.scan = Scan(self._conn, folder, self.rules, self.recursive)
        self.scan_again = False
        self._scan_started = self.clock()
        log.info("scan started", root=str(self.root), path=str(folder))

    def _scan_may_step(self) -> bool:
        return (self.scan is not None and len(self.scan_files) < SCAN_AHEAD
                and self._main_keeps_up())

    def _scan_step(self) -> None:
        scan = self.scan
        assert scan is not None
        diff = scan.step()
        if diff is not None:
            self.scan_files.extend(diff.take)
            if diff.gone:
                self._emit(Gone(self.root, diff.listed_at, paths=diff.gone))
            return
        if self.scan_files:
            return  # the walk is over; its last files are still being hashed
        folders = scan.finish()
        if folders:
            self._emit(Gone(self.root, scan.started_at, folders=folders))
        for folder, reason in scan.skipped:
            log.warning("folder not scanned; its rows are left as they are", path=folder,
                        reason=reason)
        self._emit(ScanFinished(self.root, scan.progress, scan.skipped,
                                self.clock() - self._scan_started))
        self.scan = None
        if self.scan_again:
            self._start_scan(self._scan_again_folder)


def _listable_and_not_empty(folder: Path) -> bool:
    with contextlib.suppress(OSError), os.scandir(folder) as it:
        return next(it, None) is not None
    return False
