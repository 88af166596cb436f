"""What comes off the watcher's inbox, into rows: filesystem events through the ``Router``,
files hashed (or unreadable) through ``Ingest`` in batches, rows a scan found gone, scans
finished, watched roots that went away or came back. Runs on the main loop's thread, the one
writer of the database; the main loop (``watch/loop``) decides what goes in a batch."""

from __future__ import annotations

import sqlite3
from typing import Any

from watchdog.events import FileSystemEvent

from watcherd import logs
from watcherd.dispatch.outbox import Outbox
from watcherd.store import discovery
from watcherd.watch import sidecars
from watcherd.watch.ingest import Ingest
from watcherd.watch.lane_results import (
    Gone,
    Hashed,
    RootChanged,
    ScanFinished,
    Sidecars,
    Unreadable,
)
from watcherd.watch.observing import Observing
from watcherd.watch.routing import Counts, Router
from watcherd.watch.tally import Scans

log = logs.get("watcherd.watch.loop")  # its events are the loop's, as they always were


class Recorder:
    """The parts an inbox item reaches; ``stats`` counts what was done (logged at stop)."""

    def __init__(self, conn: sqlite3.Connection, *, ingest: Ingest, router: Router,
                 scans: Scans, stats: Counts, observing: Observing, outbox: Outbox) -> None:
        self.conn, self.ingest, self.router, self.scans = conn, ingest, router, scans
        self.stats, self.observing, self.outbox = stats, observing, outbox

    def record(self, batch: list[Hashed | Unreadable]) -> int:
        """Record a batch of lane results; returns how many rows have new work."""
        if not batch:
            return 0
        before = dict(self.ingest.stats)
        work = self.ingest.apply(batch)
        for path in self.ingest.retake:  # hashed under a folder's old name: take it again
            self.router.mark(path, ready=True)
        self.ingest.retake.clear()
        self.stats.taken += self.ingest.stats["taken"] - before["taken"]
        self.stats.moved += self.ingest.stats["moved"] - before["moved"]
        for r in batch:
            if isinstance(r, Hashed) and r.source == "scan":
                self.scans.recorded(r.path)
        return work

    def handle(self, item: Any) -> None:
        """Anything else: a filesystem event, rows gone, a scan finished, a root changed."""
        if isinstance(item, FileSystemEvent):
            self.router.handle(item)
        elif isinstance(item, Gone):
            self._gone(item)
        elif isinstance(item, Sidecars):
            sidecars.seen_in_scan(self.conn, item.files)
        elif isinstance(item, ScanFinished):
            self.scans.done(item)
            self.stats.scans += 1
            self.outbox.send_due(resend_stale=True)
        elif isinstance(item, RootChanged):
            if item.gone:
                log.warning("watched folder is gone; watching for it to come back",
                            path=str(item.root))
            if item.back:
                self.observing.rewatch(item.root)
                self.scans.start([item.root])

    def _gone(self, item: Gone) -> None:
        n = discovery.mark_deleted(self.conn, item.paths, before=item.before) \
            if item.paths else 0
        for folder in item.folders:
            n += discovery.mark_folder_files_deleted(self.conn, folder, before=item.before)
        self.stats.deleted += n
        self.scans.gone(item.root, n)
        if n:
            log.info("gone since the last scan", root=str(item.root), rows=n,
                     folders=item.folders[:20])
