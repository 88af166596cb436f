"""The watcher's main loop: events and lane results in, rows and tasks out.

Threads and who owns what:
- watchdog's observer threads put filesystem events on ``inbox``;
- one lane per watched root (``lane.py``) does every file operation for that root (settle,
  hash, scan) and puts its results on the same ``inbox``;
- this loop alone writes the database (rows, deletions, moves, the outbox) and never touches a
  photo file, so a hung network mount cannot stall it; while it goes round it tells systemd
  it is alive (``WATCHDOG=1``).

A reconcile scan runs at start, every ``rescan_interval_seconds`` and at once after an inotify
queue overflow; it streams (``scan.py``): rows are recorded and tasks sent while it goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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

from watcherd import logs, models, sdnotify
from watcherd.config import Config
from watcherd.queue.monitor import FleetMonitor
from watcherd.queue.outbox import Outbox
from watcherd.queue.results import ResultsWriter
from watcherd.store import backlog, db
from watcherd.watch.ingest import Ingest
from watcherd.watch.lane import Gone, Hashed, Lane, RootChanged, ScanFinished, Unreadable
from watcherd.watch.observer import InotifyObserver, polling_observer
from watcherd.watch.rules import Rules

log = logs.get("watcherd.watch.loop")

INOTIFY_HELP = (
    "inotify limit reached ({what}); falling back to polling, which is slower. Raise the limit: "
    "`sysctl fs.inotify.max_user_watches=524288` (persist it in /etc/sysctl.d/90-watcherd.conf), "
    "then restart watcherd"
)
EVENTS = (FileClosedEvent, FileCreatedEvent, FileModifiedEvent, FileAttribEvent,
          FileDeletedEvent, FileMovedEvent, DirMovedEvent, DirDeletedEvent)
DRAIN_MAX = 5000  # inbox items per round, so timers still run during a flood
PROGRESS_LOG_S = 10.0
PURGE_INTERVAL_S = 86400.0
RESULTS_EVERY_S = 0.5  # how often remote embedding results are applied, at most
STALLED_AFTER_S = 60.0  # a lane's file operation running this long: say so
BACKLOG_FEED_S = 1.0  # how often the backlog's queues are topped up


class _Handler(FileSystemEventHandler):
    def __init__(self, inbox: queue.Queue[Any]) -> None:
        self.inbox = inbox

    def on_any_event(self, event: FileSystemEvent) -> None:
        # FileAttribEvent: a chmod/chown can make an unreadable file readable (`install -m`
        # creates 0600, closes, then chmods); the lane skips files whose row is unchanged.
        if isinstance(event, EVENTS):
            self.inbox.put(event)


class Watcher:
    def __init__(self, cfg: Config, app: Celery) -> None:
        self.cfg = cfg
        w = cfg.watch
        self.conn = db.connect(cfg.database.path)
        self.outbox = Outbox(app, self.conn, cfg)
        self.rules = Rules.of(w.paths, w.extensions, w.exclude)
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.lanes = {root: Lane(root, self.rules, recursive=w.recursive,
                                 settle_seconds=w.settle_seconds, db_path=cfg.database.path,
                                 out=self.inbox) for root in w.paths}
        self.ingest = Ingest(self.conn, db.Reuse(cfg.embeddings.model, cfg.embeddings.pretrained,
                                                 cfg.thumbnails.sizes, cfg.thumbnails.format))
        self.model: models.ModelIdentity | None = None
        self._model_error: str | None = None
        self.sync_thumbnails()
        self.identify_model()
        # Worker liveness, attempts and the workers table, from the fleet queue. Only the
        # watcher listens (``start(observe=True)``): `watcherd scan` must not take its messages.
        self.fleet = FleetMonitor(cfg, self.conn)
        # [embeddings] remote: the watcher is the one writer of the embedding workers' results.
        self.results = ResultsWriter(cfg, self.conn, lambda: self.outbox.model_key) \
            if cfg.embeddings.remote else None
        self.outbox.input_spec = lambda: self.fleet.input_spec(self.outbox.model_key)
        self._next_results = 0.0
        self._fleet_started = False
        self.stop_event = threading.Event()
        self.rescan_requested = threading.Event()
        self.observer: BaseObserver | None = None
        self.handler = _Handler(self.inbox)
        self.watches: dict[Path, ObservedWatch] = {}
        self.polling = w.polling
        self.stats = {"taken": 0, "moved": 0, "deleted": 0, "scans": 0}
        self._scan_totals: dict[Path, dict[str, int]] = {}
        self._scans_pending: set[Path] = set()
        self._stalled: set[Path] = set()
        self.stalled_after_s = STALLED_AFTER_S
        self._watchdog = bool(os.environ.get("WATCHDOG_USEC"))
        self._last_alive = 0.0

    # ----------------------------------------------------------------- lifecycle

    def start(self, *, observe: bool = True) -> None:
        """Start the lanes and (``observe``) the observer. The first reconcile runs at the top of
        ``run()``: after the observer, so nothing added during the scan is missed, and after
        systemd's READY, so a big first scan does not hold up ``systemctl start``."""
        for lane in self.lanes.values():
            lane.start()
        if observe:
            self.observer = self._start_observer()
            self.fleet.start()
            self._fleet_started = True

    def _start_observer(self) -> BaseObserver:
        w = self.cfg.watch
        if not self.polling:
            observer: BaseObserver | None = None
            try:
                observer = InotifyObserver(self.rules, self.request_rescan)
                for path in w.paths:
                    self.watches[path] = observer.schedule(self.handler, str(path),
                                                           recursive=w.recursive)
                observer.start()
                log.info("watching", paths=[str(p) for p in w.paths], observer="inotify",
                         exclude=list(self.rules.exclude))
                return observer
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                    raise
                if observer is not None:
                    observer.stop()
                what = "max_user_watches" if exc.errno == errno.ENOSPC else "max_user_instances"
                log.error(INOTIFY_HELP.format(what=what), error=str(exc))
                self.polling = True
        observer = polling_observer(self.rules, w.polling_interval_seconds)
        self.watches.clear()
        for path in w.paths:
            self.watches[path] = observer.schedule(self.handler, str(path), recursive=w.recursive)
        observer.start()
        log.info("watching", paths=[str(p) for p in w.paths], observer="polling",
                 interval_s=w.polling_interval_seconds, exclude=list(self.rules.exclude))
        return observer

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)
        started = [lane for lane in self.lanes.values() if lane.ident is not None]
        for lane in started:
            lane.stop()
        for lane in started:
            lane.join(timeout=5)  # a lane stuck on a dead mount is a daemon thread: left behind
        if self._fleet_started:
            self.fleet.close()
        if self.results is not None:
            self.results.close()
        self.conn.close()

    def identify_model(self) -> bool:
        """Learn the configured model's identity (once its weights can be read): from then on
        tasks carry it and identical content reuses vectors under it. True once known."""
        if self.model is not None:
            return True
        try:
            self.model = models.adopt(self.conn, self.cfg)
        except OSError as exc:
            if str(exc) != self._model_error:  # once per reason, not every tick
                e = self.cfg.embeddings
                log.warning("cannot identify the configured model yet (its weights cannot be "
                            "read); tasks go out without a model key until they can",
                            model=e.model, pretrained=e.pretrained, reason=str(exc))
            self._model_error = str(exc)
            return False
        key = (self.model.model, self.model.pretrained)
        self.outbox.model_key = key
        self.ingest.reuse = dataclasses.replace(self.ingest.reuse, model=key[0],
                                                pretrained=key[1])
        log.info("model identity", model=key[0], pretrained=key[1], source=self.model.source)
        added = backlog.sync_embeddings(self.conn, *key)
        if added:
            self._backfill("embedding", added, f"model is now {self.model.describe()}")
        return True

    def sync_thumbnails(self) -> None:
        """Thumbnails follow ``[thumbnails] sizes, format, quality``: what a change leaves
        uncovered joins the backlog."""
        t = self.cfg.thumbnails
        wanted = backlog.ThumbSettings(tuple(sorted(set(t.sizes))), t.format, t.quality)
        before = backlog.ThumbSettings.from_json(db.setting(self.conn.conn, backlog.THUMBNAILS))
        changed = backlog.sync_thumbnails(self.conn, wanted)
        if changed:
            same_encoding = before is not None and (before.format, before.quality) == (
                t.format, t.quality)
            new_sizes = tuple(s for s in wanted.sizes
                              if not same_encoding or before is None or s not in before.sizes)
            self._backfill("thumbnail", changed[0], changed[1], new_sizes=new_sizes)

    def _backfill(self, kind: db.Kind, photos: int, reason: str, *,
                  new_sizes: tuple[int, ...] = ()) -> None:
        e = backlog.estimate(self.conn.conn, kind, photos, reason, new_sizes=new_sizes)
        backlog.save_estimate(self.conn, e)
        log.info("backfill queued: new photos go first, the backlog is fed behind them",
                 task=kind, reason=reason, photos=photos,
                 estimated_mb=None if e.bytes is None else round(e.bytes / 1e6, 1),
                 estimated_s=e.seconds)

    def request_rescan(self) -> None:
        """The kernel dropped events (inotify queue overflow): reconcile every root now."""
        log.warning("inotify queue overflowed: events were lost, rescanning now")
        self.rescan_requested.set()

    def rescan(self, folders: list[Path] | None = None) -> None:
        """Reconcile these watched roots, or folders below them (default: every root)."""
        for folder in folders or list(self.lanes):
            root = self.rules.root_of(str(folder))
            if root is None:
                continue
            self._scans_pending.add(root)
            self._scan_totals.setdefault(root, {"new_or_changed": 0, "unchanged": 0,
                                                "deleted": 0})
            db.set_scan(self.conn, str(root), "scanning")
            self.lanes[root].request_scan(folder)

    def run(self, on_tick: Callable[[Watcher], None] | None = None) -> None:
        """The main loop, until ``stop()``."""
        w, b = self.cfg.watch, self.cfg.broker
        self.rescan()
        next_outbox = time.monotonic() + b.outbox_interval_seconds
        next_rescan = time.monotonic() + w.rescan_interval_seconds
        next_progress = time.monotonic() + PROGRESS_LOG_S
        next_purge = time.monotonic()
        next_feed = time.monotonic()
        while not self.stop_event.is_set():
            self.step(timeout=0.2)
            now = time.monotonic()
            if now >= next_feed:
                self.outbox.feed_backlog()
                next_feed = now + min(BACKLOG_FEED_S, b.outbox_interval_seconds)
            if self.rescan_requested.is_set() or (w.rescan_interval_seconds and now >= next_rescan):
                self.rescan_requested.clear()
                self.rescan()
                next_rescan = now + w.rescan_interval_seconds
            if now >= next_outbox:
                self.identify_model()
                for lane in self.lanes.values():
                    lane.check_root()
                stale_before: dict[str, str] = {}
                if self._fleet_started:
                    self.fleet.tick()
                    stale_before = self.fleet.early_resends()
                self.outbox.send_due(resend_stale=True, stale_before=stale_before)
                self._report_scans()
                self._check_stalled()
                self.ingest.prune()
                next_outbox = time.monotonic() + b.outbox_interval_seconds
            if now >= next_progress:
                self._log_progress()
                next_progress = now + PROGRESS_LOG_S
            if now >= next_purge:
                self.purge()
                next_purge = now + PURGE_INTERVAL_S
            if self.results is not None and self._fleet_started and now >= self._next_results:
                self._next_results = now + RESULTS_EVERY_S
                self.results.apply()
            self.alive()
            if on_tick is not None:
                on_tick(self)

    def scan_once(self, roots: list[Path], timeout: float) -> dict[str, int]:
        """`watcherd scan`: one reconcile of ``roots`` to the end (files still settling
        included, up to ``timeout``), then send what it found. Totals over the roots."""
        self.rescan(roots)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (
                self._scans_pending or any(lane.backlog() for lane in self.lanes.values())):
            self.step(timeout=0.1)
        self.step(timeout=0.0)
        self.outbox.send_due()
        totals = {"new_or_changed": 0, "unchanged": 0, "deleted": 0}
        for root in {self.rules.root_of(str(folder)) for folder in roots}:
            for k in totals:
                totals[k] += self._scan_totals.get(root, {}).get(k, 0) if root else 0
        return totals

    def purge(self) -> None:
        """``[database] keep_deleted_days``: remove rows of photos deleted longer ago."""
        days = self.cfg.database.keep_deleted_days
        if days <= 0:
            return
        r = db.purge_deleted(self.conn, days)
        if r.images:
            log.info("purged deleted photos", images=r.images, thumbnails=r.thumbnails,
                     embeddings=r.embeddings, bytes=r.bytes, older_than_days=days)

    def alive(self) -> None:
        """systemd's watchdog: this loop went round (events handled, results recorded). It
        never waits on a photo file, so only a stuck database or a bug stops it."""
        now = time.monotonic()
        if self._watchdog and now - self._last_alive >= 1.0:
            self._last_alive = now
            sdnotify.notify("WATCHDOG=1")

    # ----------------------------------------------------------------- one round

    def step(self, timeout: float) -> None:
        """Handle what is waiting in the inbox (waiting up to ``timeout`` for the first item)."""
        try:
            item = self.inbox.get(timeout=timeout) if timeout > 0 else self.inbox.get_nowait()
        except queue.Empty:
            return
        batch: list[Hashed | Unreadable] = []
        work = 0
        taken = 1
        while True:
            if isinstance(item, Hashed | Unreadable):
                batch.append(item)
            else:
                work += self._apply(batch)
                batch = []
                self._dispatch(item)
            if taken >= DRAIN_MAX:
                break  # the rest waits for the next round: timers run meanwhile
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
            taken += 1
        work += self._apply(batch)
        if work:
            self.outbox.send_due()

    def _apply(self, batch: list[Hashed | Unreadable]) -> int:
        if not batch:
            return 0
        before = dict(self.ingest.stats)
        work = self.ingest.apply(batch)
        for path in self.ingest.retake:  # hashed under a folder's old name: take it again
            self._mark(path, ready=True)
        self.ingest.retake.clear()
        self.stats["taken"] += self.ingest.stats["taken"] - before["taken"]
        self.stats["moved"] += self.ingest.stats["moved"] - before["moved"]
        for r in batch:
            if isinstance(r, Hashed) and r.source == "scan":
                root = self.rules.root_of(r.path)
                if root in self._scan_totals:
                    self._scan_totals[root]["taken"] = self._scan_totals[root].get(
                        "taken", 0) + 1
        return work

    def _dispatch(self, item: Any) -> None:
        if isinstance(item, FileSystemEvent):
            self._handle(item)
        elif isinstance(item, Gone):
            n = db.mark_deleted(self.conn, item.paths, before=item.before) if item.paths else 0
            for folder in item.folders:
                n += db.mark_folder_files_deleted(self.conn, folder, before=item.before)
            self.stats["deleted"] += n
            if item.root in self._scan_totals:
                self._scan_totals[item.root]["deleted"] += n
            if n:
                log.info("gone since the last scan", root=str(item.root), rows=n,
                         folders=item.folders[:20])
        elif isinstance(item, ScanFinished):
            self._scan_finished(item)
        elif isinstance(item, RootChanged):
            self._root_changed(item)

    def _scan_finished(self, item: ScanFinished) -> None:
        p = item.progress
        totals = self._scan_totals.setdefault(item.root, {"new_or_changed": 0, "unchanged": 0,
                                                          "deleted": 0})
        totals["new_or_changed"] = p.to_take
        totals["unchanged"] = p.unchanged
        self._scans_pending.discard(item.root)
        self.stats["scans"] += 1
        message = "; ".join(f"{f}: {r}" for f, r in item.skipped)[:500] or None
        db.set_scan(self.conn, str(item.root), "done", folders=p.folders, files=p.files,
                    to_take=p.to_take, taken=totals.get("taken", 0), gone=totals["deleted"],
                    message=message, finished=True)
        self.outbox.send_due(resend_stale=True)
        log.info("scan done", root=str(item.root), folders=p.folders, files=p.files,
                 new_or_changed=p.to_take, unchanged=p.unchanged, deleted=totals["deleted"],
                 duration_ms=round(item.duration_s * 1000))

    def _root_changed(self, item: RootChanged) -> None:
        """Watch a watched folder again once it is back (re-created, re-mounted): inotify
        dropped its watch when it went, and the files it holds now are found by a scan."""
        path = item.root
        if item.gone:
            # The old watch stays until the folder is back: unscheduling it now could drop the
            # deletion events it has not delivered yet.
            log.warning("watched folder is gone; watching for it to come back", path=str(path))
        if not item.back:
            return
        self._unwatch(path)
        if self.observer is not None:
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

    def _lane(self, path: str) -> Lane | None:
        root = self.rules.root_of(path)
        return None if root is None else self.lanes.get(root)

    def _handle(self, event: FileSystemEvent) -> None:
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(getattr(event, "dest_path", "") or "")
        rules = self.rules
        if isinstance(event, DirMovedEvent):
            src_in = bool(src) and not rules.excluded_folder(src)
            dest_in = bool(dest) and not rules.excluded_folder(dest)
            if src_in and dest_in:
                n = db.move_folder(self.conn, Path(src), Path(dest))
                self.ingest.folder_went_away(src, moved_to=dest)
                src_lane, dest_lane = self._lane(src), self._lane(dest)
                if src_lane is dest_lane and src_lane is not None:
                    src_lane.moved_under(src, dest)
                else:
                    if src_lane is not None:
                        src_lane.forget_under(src)
                    if dest_lane is not None:
                        dest_lane.take_folder(dest)
                log.info("folder moved", path=dest, old_path=src, rows=n)
            elif dest_in:  # moved in from outside the tree, or from an excluded name
                lane = self._lane(dest)
                if lane is not None:
                    lane.take_folder(dest)
            elif src_in:  # moved out of the tree, or to an excluded name
                self._deleted_folder(src)
        elif isinstance(event, DirDeletedEvent):
            if not rules.excluded_folder(src):
                self._deleted_folder(src)
        elif isinstance(event, FileMovedEvent):
            src_ok = bool(src) and rules.is_candidate(src)
            dest_ok = bool(dest) and rules.is_candidate(dest)
            if src_ok and dest_ok:
                self._forget(src)
                image_id = db.move_path(self.conn, src, dest)
                if image_id is None:
                    self._mark(dest, ready=True)
                else:
                    self.stats["moved"] += 1
                    log.info("moved", image_id=image_id, path=dest, old_path=src)
            else:
                if src_ok:
                    self._deleted([src])
                if dest_ok:
                    self._mark(dest, ready=True)  # renamed from a temporary name, or moved in
        elif isinstance(event, FileDeletedEvent):
            if rules.is_candidate(src):
                self._deleted([src])
        elif rules.is_candidate(src):
            self._mark(src, ready=isinstance(event, FileClosedEvent))

    def _mark(self, path: str, *, ready: bool) -> None:
        lane = self._lane(path)
        if lane is not None:
            lane.mark(path, ready=ready)

    def _forget(self, path: str) -> None:
        self.ingest.went_away(path)
        lane = self._lane(path)
        if lane is not None:
            lane.forget(path)

    def _deleted(self, paths: list[str]) -> None:
        for p in paths:
            self._forget(p)
        n = db.mark_deleted(self.conn, paths)
        if n:
            self.stats["deleted"] += n
            log.info("deleted", paths=paths)

    def _deleted_folder(self, folder: str) -> None:
        self.ingest.folder_went_away(folder)
        lane = self._lane(folder)
        if lane is not None:
            lane.forget_under(folder)
        n = db.mark_folder_deleted(self.conn, Path(folder))
        if n:
            self.stats["deleted"] += n
            log.info("folder deleted", path=folder, rows=n)

    # ----------------------------------------------------------------- reporting

    def _report_scans(self) -> None:
        for root, lane in self.lanes.items():
            scan = lane.scan
            if scan is None:
                continue
            p = scan.progress
            db.set_scan(self.conn, str(root), "scanning", folders=p.folders, files=p.files,
                        to_take=p.to_take, taken=self._scan_totals.get(root, {}).get("taken", 0),
                        gone=self._scan_totals.get(root, {}).get("deleted", 0))

    def _log_progress(self) -> None:
        for root, lane in self.lanes.items():
            scan = lane.scan
            if scan is not None:
                p = scan.progress
                log.info("scan progress", root=str(root), folders=p.folders, files=p.files,
                         new_or_changed=p.to_take, unchanged=p.unchanged,
                         recorded=self._scan_totals.get(root, {}).get("taken", 0),
                         waiting=lane.backlog())

    def _check_stalled(self) -> None:
        for root, lane in self.lanes.items():
            stuck = lane.stalled_for()
            if stuck >= self.stalled_after_s and root not in self._stalled:
                self._stalled.add(root)
                log.error("watched folder is not responding: a file operation has been running "
                          "for a long time (a dead network mount?); the other folders go on",
                          path=str(root), seconds=round(stuck))
            elif stuck < self.stalled_after_s and root in self._stalled:
                self._stalled.discard(root)
                log.info("watched folder responds again", path=str(root))

    def status_line(self) -> str:
        n = len(self.cfg.watch.paths)
        how = "polling" if self.polling else "watching"
        parts = [f"{how} {n} folder{'s' if n != 1 else ''}", f"{self.pending_count()} pending"]
        for root, lane in self.lanes.items():
            if lane.scan is not None:
                p = lane.scan.progress
                parts.append(f"scanning {root}: {p.folders} folders, {p.files} files seen")
        if self._stalled:
            parts.append("NOT RESPONDING: " + ", ".join(map(str, sorted(self._stalled))))
        if not self.outbox.broker_ok:
            parts.append("broker unreachable")
        return ", ".join(parts)

    def pending_count(self) -> int:
        return int(self.conn.execute(
            "SELECT count(*) FROM images WHERE deleted_at IS NULL AND "
            "(thumbnail_status = 'pending' OR embedding_status = 'pending')").fetchone()[0])
