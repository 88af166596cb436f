"""The watcher: inotify (or polling) events → settle → SQLite row → outbox → Celery.

One thread owns the database connection and all decisions; watchdog's observer threads only put
events on a queue. A file is taken when it is complete: closed after writing, moved into the
tree, or still (size and mtime) for ``settle_seconds``. A reconcile scan runs at start, every
``rescan_interval_seconds`` and at once after an inotify queue overflow.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from celery import Celery
from watchdog.events import (
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from watcherd import logs
from watcherd.config import Config
from watcherd.queue.monitor import FleetMonitor
from watcherd.queue.outbox import Outbox
from watcherd.store import db
from watcherd.watch import scan
from watcherd.watch.roots import Roots

log = logs.get("watcherd.watch.loop")

INOTIFY_HELP = (
    "inotify limit reached ({what}); falling back to polling, which is slower. Raise the limit: "
    "`sysctl fs.inotify.max_user_watches=524288` (persist it in /etc/sysctl.d/90-watcherd.conf), "
    "then restart watcherd"
)
HASH_CHUNK = 1 << 20


class _Handler(FileSystemEventHandler):
    def __init__(self, events: queue.Queue[FileSystemEvent]) -> None:
        self.events = events

    def on_any_event(self, event: FileSystemEvent) -> None:
        # FileAttribEvent: a chmod/chown can make an unreadable file readable (`install -m`
        # creates 0600, closes, then chmods); take() skips files whose row is unchanged.
        if isinstance(event, FileClosedEvent | FileCreatedEvent | FileModifiedEvent
                      | FileAttribEvent | FileDeletedEvent | FileMovedEvent | DirMovedEvent
                      | DirDeletedEvent):
            self.events.put(event)


class _OverflowListener(logging.Handler):
    """watchdog reports a kernel queue overflow only as a log line: turn it into a rescan."""

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self.on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.on_overflow()


@dataclass
class _Candidate:
    size: int
    mtime: float
    changed_at: float  # monotonic time of the last size/mtime change we saw
    ready: bool = False  # complete (closed after write / moved in): take without waiting


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class Watcher:
    def __init__(self, cfg: Config, app: Celery) -> None:
        self.cfg = cfg
        self.conn = db.connect(cfg.database.path)
        self.outbox = Outbox(app, self.conn, cfg)
        self.fleet = FleetMonitor(cfg, self.conn)
        self.events: queue.Queue[FileSystemEvent] = queue.Queue()
        self.candidates: dict[str, _Candidate] = {}
        self.stop_event = threading.Event()
        self.rescan_requested = threading.Event()
        self.observer: BaseObserver | None = None
        self.handler = _Handler(self.events)
        self.watches: dict[Path, ObservedWatch] = {}
        self.roots = Roots(cfg.watch.paths)
        self.polling = cfg.watch.polling
        self.reuse = db.Reuse(cfg.embeddings.model, cfg.embeddings.pretrained,
                              cfg.thumbnails.sizes, cfg.thumbnails.format)
        self._overflow = _OverflowListener(self.request_rescan)
        self.stats = {"taken": 0, "moved": 0, "deleted": 0, "scans": 0}

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start observing. The first reconcile runs at the top of ``run()``: after the observer,
        so nothing added during the scan is missed, and after systemd's READY, so a big first
        scan (every new file is hashed) does not hold up ``systemctl start``."""
        logging.getLogger("watchdog.observers.inotify_c").addHandler(self._overflow)
        self.observer = self._start_observer()
        self.fleet.start()

    def _start_observer(self) -> BaseObserver:
        handler = self.handler
        w = self.cfg.watch
        if not self.polling:
            from watchdog.observers.inotify import InotifyObserver

            observer: BaseObserver = InotifyObserver(generate_full_events=True)
            try:
                for path in w.paths:
                    self.watches[path] = observer.schedule(handler, str(path),
                                                           recursive=w.recursive)
                observer.start()
                log.info("watching", paths=[str(p) for p in w.paths], observer="inotify")
                return observer
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                    raise
                observer.stop()
                what = "max_user_watches" if exc.errno == errno.ENOSPC else "max_user_instances"
                log.error(INOTIFY_HELP.format(what=what), error=str(exc))
                self.polling = True
        observer = PollingObserver(timeout=w.polling_interval_seconds)
        self.watches.clear()
        for path in w.paths:
            self.watches[path] = observer.schedule(handler, str(path), recursive=w.recursive)
        observer.start()
        log.info("watching", paths=[str(p) for p in w.paths], observer="polling",
                 interval_s=w.polling_interval_seconds)
        return observer

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        logging.getLogger("watchdog.observers.inotify_c").removeHandler(self._overflow)
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)
        self.fleet.close()
        self.conn.close()

    def request_rescan(self) -> None:
        log.warning("inotify queue overflowed: events were lost, rescanning now")
        self.rescan_requested.set()

    def run(self, on_tick: Callable[[Watcher], None] | None = None) -> None:
        """The main loop, until ``stop()``."""
        w, b = self.cfg.watch, self.cfg.broker
        self.rescan()
        next_outbox = time.monotonic() + b.outbox_interval_seconds
        next_rescan = time.monotonic() + w.rescan_interval_seconds
        while not self.stop_event.is_set():
            self._drain_events(timeout=0.2)
            self._settle()
            now = time.monotonic()
            if self.rescan_requested.is_set() or (w.rescan_interval_seconds and now >= next_rescan):
                self.rescan_requested.clear()
                self.rescan()
                next_rescan = time.monotonic() + w.rescan_interval_seconds
            if now >= next_outbox:
                self._check_roots()
                self.fleet.tick()
                self.outbox.send_due(resend_stale=True)
                next_outbox = time.monotonic() + b.outbox_interval_seconds
            if on_tick is not None:
                on_tick(self)

    def _check_roots(self) -> None:
        """Watch a watched folder again once it is back (re-created, re-mounted): inotify
        dropped its watch when it went, and the files it holds now are found by a scan."""
        gone, back = self.roots.changes()
        for path in gone:
            # The old watch stays until the folder is back: unscheduling it now could drop the
            # deletion events it has not delivered yet.
            log.warning("watched folder is gone; watching for it to come back", path=str(path))
        for path in back:
            self._unwatch(path)
            assert self.observer is not None
            try:
                self.watches[path] = self.observer.schedule(
                    self.handler, str(path), recursive=self.cfg.watch.recursive)
            except OSError as exc:  # e.g. out of inotify watches: the periodic scan still runs
                log.error("cannot watch folder", path=str(path), error=str(exc))
            else:
                log.info("watching folder again", path=str(path))
            self.rescan([path])

    def _unwatch(self, path: Path) -> None:
        watch = self.watches.pop(path, None)
        if watch is not None and self.observer is not None:
            with contextlib.suppress(KeyError, OSError):
                self.observer.unschedule(watch)

    # ----------------------------------------------------------------- events

    def _drain_events(self, timeout: float) -> None:
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            return
        handled = 0
        while True:
            self._handle(event)
            handled += 1
            if handled >= 2000:
                break  # let settle/outbox run during a long burst
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break

    def _handle(self, event: FileSystemEvent) -> None:
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(getattr(event, "dest_path", "") or "")
        exts = self.cfg.watch.extensions
        if isinstance(event, DirMovedEvent):
            if src and dest:
                n = db.move_folder(self.conn, Path(src), Path(dest))
                log.info("folder moved", path=dest, old_path=src, rows=n)
            elif dest:  # moved in from outside the tree
                self._take_folder(Path(dest))
            else:  # moved out of the tree
                self._deleted_folder(Path(src))
        elif isinstance(event, DirDeletedEvent):
            self._deleted_folder(Path(src))
        elif isinstance(event, FileMovedEvent):
            if src and dest and scan.is_candidate(src, exts) and scan.is_candidate(dest, exts):
                self.candidates.pop(src, None)
                image_id = db.move_path(self.conn, src, dest)
                if image_id is None:
                    self._mark(dest, ready=True)
                else:
                    self.stats["moved"] += 1
                    log.info("moved", image_id=image_id, path=dest, old_path=src)
            else:
                if src and scan.is_candidate(src, exts):
                    self._deleted([src])
                if dest and scan.is_candidate(dest, exts):
                    self._mark(dest, ready=True)  # renamed from a temporary name, or moved in
        elif isinstance(event, FileDeletedEvent):
            if scan.is_candidate(src, exts):
                self._deleted([src])
        elif scan.is_candidate(src, exts):
            self._mark(src, ready=isinstance(event, FileClosedEvent))

    def _mark(self, path: str, *, ready: bool) -> None:
        info = scan.regular_file(path)
        if info is None:
            self.candidates.pop(path, None)
            return
        c = self.candidates.get(path)
        now = time.monotonic()
        if c is None:
            self.candidates[path] = _Candidate(info.size, info.mtime, now, ready)
        else:
            if (c.size, c.mtime) != (info.size, info.mtime):
                c.size, c.mtime, c.changed_at = info.size, info.mtime, now
            c.ready = c.ready or ready

    def _settle(self) -> None:
        if not self.candidates:
            return
        now = time.monotonic()
        settle = self.cfg.watch.settle_seconds
        took = False
        for path, c in list(self.candidates.items()):
            if not c.ready:
                info = scan.regular_file(path)
                if info is None:
                    del self.candidates[path]
                    continue
                if (info.size, info.mtime) != (c.size, c.mtime):
                    c.size, c.mtime, c.changed_at = info.size, info.mtime, now
                    continue
                if now - c.changed_at < settle:
                    continue
            del self.candidates[path]
            took = self.take(path) or took
        if took:
            self.outbox.send_due()

    def _deleted(self, paths: list[str]) -> None:
        for p in paths:
            self.candidates.pop(p, None)
        n = db.mark_deleted(self.conn, paths)
        if n:
            self.stats["deleted"] += n
            log.info("deleted", paths=paths)

    def _deleted_folder(self, folder: Path) -> None:
        prefix = str(folder).rstrip("/") + "/"
        for p in [p for p in self.candidates if p.startswith(prefix)]:
            del self.candidates[p]
        n = db.mark_folder_deleted(self.conn, folder)
        if n:
            self.stats["deleted"] += n
            log.info("folder deleted", path=str(folder), rows=n)

    def _take_folder(self, folder: Path) -> None:
        for info in scan.walk(folder, self.cfg.watch.extensions, self.cfg.watch.recursive):
            self._mark(info.path, ready=True)

    # ----------------------------------------------------------------- taking a file

    def take(self, path: str) -> bool:
        """Record a complete file. True when a task may need sending."""
        info = scan.regular_file(path)
        if info is None:
            return False
        known = db.known(self.conn, path)
        if known and not known.deleted and (known.size, known.mtime) == (info.size, info.mtime):
            return False  # same file we already have (e.g. a touch without a change)
        started = time.perf_counter()
        try:
            digest = sha256_file(path)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                reason = f"unreadable: {exc.strerror or exc}"
                image_id = db.record_unreadable(self.conn, path, reason)
                log.warning("failed", image_id=image_id, path=path, reason=reason)
            return False
        after = scan.regular_file(path)
        if after is None:
            return False
        if (after.size, after.mtime) != (info.size, info.mtime):
            self._mark(path, ready=False)  # still being written: wait until it settles
            return False
        rec = db.record_file(self.conn, path, info.size, info.mtime, digest, self.reuse)
        self.stats["taken"] += 1
        log.info("recorded", image_id=rec.id, path=path, action=rec.action, size=info.size,
                 duration_ms=round((time.perf_counter() - started) * 1000, 1))
        return rec.action in ("new", "changed")

    def rescan(self, roots: list[Path] | None = None) -> dict[str, int]:
        """Reconcile now: files older than ``settle_seconds`` are taken at once, newer ones
        settle first."""
        started = time.perf_counter()
        totals = {"new_or_changed": 0, "unchanged": 0, "deleted": 0}
        settle = self.cfg.watch.settle_seconds
        for root in roots or list(self.cfg.watch.paths):
            result = scan.reconcile(self.conn, root, self.cfg.watch.extensions,
                                    self.cfg.watch.recursive)
            totals["unchanged"] += result.unchanged
            totals["deleted"] += result.deleted
            totals["new_or_changed"] += len(result.to_take)
            for folder, reason in result.unreadable:
                log.warning("folder not scanned; its rows are left as they are", path=folder,
                            reason=reason)
            for info in result.to_take:
                if time.time() - info.mtime >= settle:
                    self.take(info.path)
                else:
                    self._mark(info.path, ready=False)
        self.stats["scans"] += 1
        self.outbox.send_due(resend_stale=True)
        log.info("scan done", **totals, duration_ms=round((time.perf_counter() - started) * 1000))
        return totals

    def status_line(self) -> str:
        n = len(self.cfg.watch.paths)
        how = "polling" if self.polling else "watching"
        broker = "" if self.outbox.broker_ok else ", broker unreachable"
        return (f"{how} {n} folder{'s' if n != 1 else ''}, {self.pending_count()} pending"
                f"{broker}")

    def pending_count(self) -> int:
        return int(self.conn.execute(
            "SELECT count(*) FROM images WHERE deleted_at IS NULL AND "
            "(thumbnail_status = 'pending' OR embedding_status = 'pending')").fetchone()[0])
