"""One lane's reconcile scans of its root, driven a folder at a time on the lane's thread.

The scan in hand lists the next folder when the lane asks (``step``): the files it found to
take join the lane's queue, rows it found gone go to the main loop (``Gone``); once the walk is
over and its last files are hashed, the rows of folders that are gone, the folders it could not
list (logged) and ``ScanFinished``. A scan asked for while one runs starts once that one is
over (it may have passed the change already): the root's, if two were asked for meanwhile.
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from watcherd import logs
from watcherd.watch.files import FileInfo
from watcherd.watch.lane_results import Gone, Result, ScanFinished, Sidecars
from watcherd.watch.rules import Rules
from watcherd.watch.scan import Scan

log = logs.get("watcherd.watch.lane")  # its events are the lane's, as they always were


class Scanning:
    """``current``: the scan in hand (None between scans); ``again``: another was asked for
    while it ran, of ``_again_folder``."""

    def __init__(self, root: Path, rules: Rules, *, recursive: bool,
                 emit: Callable[[Result], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.root, self.rules, self.recursive = root, rules, recursive
        self.emit, self.clock = emit, clock
        self.current: Scan | None = None
        self.again = False
        self._again_folder = root
        self._started = 0.0

    def request(self, conn: sqlite3.Connection, folder: Path) -> None:
        """Reconcile ``folder`` now, or once the scan in hand is over."""
        if self.current is None:
            self._start(conn, folder)
        else:  # once this one is over: it may have passed the change already
            self._again_folder = self.root if self.again else folder
            self.again = True

    def _start(self, conn: sqlite3.Connection, folder: Path) -> None:
        self.current = Scan(conn, folder, self.rules, self.recursive)
        self.again = False
        self._started = self.clock()
        log.info("scan started", root=str(self.root), path=str(folder))

    def step(self, conn: sqlite3.Connection, files: deque[FileInfo]) -> None:
        """List the next folder (its files to take join ``files``), or finish the scan once
        the walk is over and ``files`` is empty."""
        scan = self.current
        assert scan is not None
        diff = scan.step()
        if diff is not None:
            files.extend(diff.take)
            if diff.gone:
                self.emit(Gone(self.root, diff.listed_at, paths=diff.gone))
            if diff.sidecars:
                self.emit(Sidecars(self.root, diff.sidecars))
            return
        if files:
            return  # the walk is over; its last files are still being hashed
        folders = scan.finish()
        if folders:
            self.emit(Gone(self.root, scan.started_at, folders=folders))
        for folder, reason in scan.skipped:
            log.warning("folder not scanned; its rows are left as they are", path=folder,
                        reason=reason)
        self.emit(ScanFinished(self.root, scan.progress, scan.skipped,
                               self.clock() - self._started))
        self.current = None
        if self.again:
            self._start(conn, self._again_folder)
