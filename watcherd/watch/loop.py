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

import dataclasses
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery
from watchdog.events import FileSystemEvent
from watchdog.observers.api import BaseObserver

from watcherd import logs, sdnotify
from watcherd.config import Config
from watcherd.dispatch.outbox import Outbox
from watcherd.dispatch.remote_results import ResultsWriter
from watcherd.fleet.monitor import FleetMonitor
from watcherd.store import admin, browse, discovery, schema
from watcherd.watch.ingest import Ingest
from watcherd.watch.lane import Lane
from watcherd.watch.lane_results import Gone, Hashed, RootChanged, ScanFinished, Unreadable
from watcherd.watch.model_state import ModelState
from watcherd.watch.observing import Observing
from watcherd.watch.routing import Counts, Router
from watcherd.watch.rules import Rules
from watcherd.watch.tally import Scans

log = logs.get("watcherd.watch.loop")

DRAIN_MAX = 5000  # inbox items per round, so timers still run during a flood
PROGRESS_LOG_S = 10.0
PURGE_INTERVAL_S = 86400.0
RESULTS_EVERY_S = 0.5  # how often remote embedding results are applied, at most
STALLED_AFTER_S = 60.0  # a lane's file operation running this long: say so
BACKLOG_FEED_S = 1.0  # how often the backlog's queues are topped up


class Watcher:
    """init (the parts), ``start`` (lanes, observer, fleet), ``run`` (rounds of ``step`` and
    the timers, until ``stop``), ``close``."""

    def __init__(self, cfg: Config, app: Celery) -> None:
        self.cfg = cfg
        w = cfg.watch
        self.conn = schema.connect(cfg.database.path)
        # The configured model's identity, learnt when its weights can be read: the outbox,
        # the ingest and the results writer are built with ``model.current`` and read it.
        self.model = ModelState(cfg, self.conn)
        # Worker liveness, attempts and the workers table, from the fleet queue. Only the
        # watcher listens (``start(observe=True)``): `watcherd scan` must not take its messages.
        self.fleet = FleetMonitor(cfg, self.conn)
        self.outbox = Outbox(app, self.conn, cfg, model=self.model.current,
                             input_spec=lambda: self.fleet.input_spec(self.model.key))
        self.rules = Rules.of(w.paths, w.extensions, w.exclude)
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.lanes = {root: Lane(root, self.rules, recursive=w.recursive,
                                 settle_seconds=w.settle_seconds, db_path=cfg.database.path,
                                 out=self.inbox) for root in w.paths}
        self.ingest = Ingest(self.conn, discovery.Reuse(
            cfg.embeddings.model, cfg.embeddings.pretrained, cfg.thumbnails.sizes,
            cfg.thumbnails.format), model=self.model.current)
        self.stats = Counts()
        self.router = Router(self.conn, self.rules, self.lanes, self.ingest, self.stats)
        self.scans = Scans(self.conn, self.rules, self.lanes)
        self.model.sync_thumbnails()
        self.model.identify()
        # [embeddings] remote: the watcher is the one writer of the embedding workers' results.
        self.results = ResultsWriter(cfg, self.conn, self.model.current) \
            if cfg.embeddings.remote else None
        self.observing = Observing(w, self.rules, self.inbox, self.request_rescan)
        self._fleet_started = False
        self.stop_event = threading.Event()
        self.rescan_requested = threading.Event()
        self._stalled: set[Path] = set()
        self.stalled_after_s = STALLED_AFTER_S
        self._watchdog = bool(os.environ.get("WATCHDOG_USEC"))
        self._last_alive = 0.0

    @property
    def observer(self) -> BaseObserver | None:
        return self.observing.observer

    @property
    def polling(self) -> bool:
        return self.observing.polling

    # ----------------------------------------------------------------- lifecycle

    def start(self, *, observe: bool = True) -> None:
        """Start the lanes and (``observe``) the observer. The first reconcile runs at the top of
        ``run()``: after the observer, so nothing added during the scan is missed, and after
        systemd's READY, so a big first scan does not hold up ``systemctl start``."""
        for lane in self.lanes.values():
            lane.start()
        if observe:
            self.observing.start()
            self.fleet.start()
            self._fleet_started = True

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        self.observing.close()
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

    def request_rescan(self) -> None:
        """The kernel dropped events (inotify queue overflow): reconcile every root now."""
        log.warning("inotify queue overflowed: events were lost, rescanning now")
        self.rescan_requested.set()

    def rescan(self, folders: list[Path] | None = None) -> None:
        self.scans.start(folders)

    def run(self, on_tick: Callable[[Watcher], None] | None = None) -> None:
        """The main loop, until ``stop()``: a round of events and lane results, then the timers
        (each its own interval; see ``_timers``)."""
        self.rescan()
        timers = self._timers()
        while not self.stop_event.is_set():
            self.step(timeout=0.2)
            now = time.monotonic()
            for timer in timers:
                if now >= timer.due:
                    timer.due = now + timer.every()
                    timer.run()
            if self.rescan_requested.is_set():
                self.rescan_requested.clear()
                self.rescan()
                for timer in timers:  # the periodic rescan counts from this one
                    if timer.run == self.rescan:
                        timer.due = now + timer.every()
            self.alive()
            if on_tick is not None:
                on_tick(self)

    def _timers(self) -> list[_Timer]:
        w, b = self.cfg.watch, self.cfg.broker
        now = time.monotonic()
        timers = [
            _Timer(now, lambda: min(BACKLOG_FEED_S, b.outbox_interval_seconds),
                   self.outbox.feed_backlog),
            _Timer(now + b.outbox_interval_seconds, lambda: b.outbox_interval_seconds,
                   self._housekeeping),
            _Timer(now + PROGRESS_LOG_S, lambda: PROGRESS_LOG_S, self.scans.log_progress),
            _Timer(now, lambda: PURGE_INTERVAL_S, self.purge),
        ]
        if w.rescan_interval_seconds:
            timers.append(_Timer(now + w.rescan_interval_seconds,
                                 lambda: w.rescan_interval_seconds, self.rescan))
        if self.results is not None:
            results = self.results
            timers.append(_Timer(now, lambda: RESULTS_EVERY_S,
                                 lambda: results.apply() if self._fleet_started else None))
        return timers

    def _housekeeping(self) -> None:
        """Every ``outbox_interval_seconds``: the model's identity, the roots, the fleet, the
        outbox's re-sends, the scans' progress, stalled lanes, stale ingest state."""
        self.model.identify()
        for lane in self.lanes.values():
            lane.check_root()
        stale_before: dict[str, str] = {}
        if self._fleet_started:
            self.fleet.tick()
            stale_before = self.fleet.early_resends()
        self.outbox.send_due(resend_stale=True, stale_before=stale_before)
        self.scans.report()
        self._check_stalled()
        self.ingest.prune()

    def scan_once(self, roots: list[Path], timeout: float) -> dict[str, int]:
        """`watcherd scan`: one reconcile of ``roots`` to the end (files still settling
        included, up to ``timeout``), then send what it found. Totals over the roots."""
        self.rescan(roots)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (
                self.scans.pending or any(lane.backlog() for lane in self.lanes.values())):
            self.step(timeout=0.1)
        self.step(timeout=0.0)
        self.outbox.send_due()
        return self.scans.totals(roots)

    def purge(self) -> None:
        """``[database] keep_deleted_days``: remove rows of photos deleted longer ago."""
        days = self.cfg.database.keep_deleted_days
        if days <= 0:
            return
        r = admin.purge_deleted(self.conn, days)
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
        """Handle what is waiting in the inbox (waiting up to ``timeout`` for the first item):
        lane results are recorded in batches, everything else in order between them."""
        try:
            item = self.inbox.get(timeout=timeout) if timeout > 0 else self.inbox.get_nowait()
        except queue.Empty:
            return
        batch: list[Hashed | Unreadable] = []
        work, taken = 0, 1
        while True:
            if isinstance(item, Hashed | Unreadable):
                batch.append(item)
            else:
                work += self._record(batch)
                batch = []
                self._dispatch(item)
            if taken >= DRAIN_MAX:
                break  # the rest waits for the next round: timers run meanwhile
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
            taken += 1
        work += self._record(batch)
        if work:
            self.outbox.send_due()

    def _record(self, batch: list[Hashed | Unreadable]) -> int:
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

    def _dispatch(self, item: Any) -> None:
        if isinstance(item, FileSystemEvent):
            self.router.handle(item)
        elif isinstance(item, Gone):
            n = discovery.mark_deleted(self.conn, item.paths, before=item.before) \
                if item.paths else 0
            for folder in item.folders:
                n += discovery.mark_folder_files_deleted(self.conn, folder, before=item.before)
            self.stats.deleted += n
            self.scans.gone(item.root, n)
            if n:
                log.info("gone since the last scan", root=str(item.root), rows=n,
                         folders=item.folders[:20])
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
                self.rescan([item.root])

    # ----------------------------------------------------------------- reporting

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
        return browse.pending_count(self.conn)


@dataclasses.dataclass
class _Timer:
    due: float
    every: Callable[[], float]
    run: Callable[[], Any]
