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

This module is the loop itself (init, start, run, step, close); what an inbox item does is
``recording.py``, the periodic chores ``chores.py``, their timers ``timers.py``.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery
from watchdog.observers.api import BaseObserver

from watcherd import logs, sdnotify
from watcherd.config import Config
from watcherd.dispatch.outbox import Outbox
from watcherd.dispatch.remote_results import ResultsWriter
from watcherd.fleet.monitor import FleetMonitor
from watcherd.store import browse, discovery, schema
from watcherd.watch.chores import STALLED_AFTER_S, Chores
from watcherd.watch.ingest import Ingest
from watcherd.watch.lane import Lane
from watcherd.watch.lane_results import Hashed, Unreadable
from watcherd.watch.model_state import ModelState
from watcherd.watch.observing import Observing
from watcherd.watch.recording import Recorder
from watcherd.watch.routing import Counts, Router
from watcherd.watch.rules import Rules
from watcherd.watch.tally import Scans
from watcherd.watch.timers import Timer, Timers

log = logs.get("watcherd.watch.loop")

DRAIN_MAX = 5000  # inbox items per round, so timers still run during a flood
PROGRESS_LOG_S = 10.0
PURGE_INTERVAL_S = 86400.0
RESULTS_EVERY_S = 0.5  # how often remote embedding results are applied, at most
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
        self.rules = Rules.of(w.paths, cfg.taken_extensions, w.exclude)
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
        self.recorder = Recorder(self.conn, ingest=self.ingest, router=self.router,
                                 scans=self.scans, stats=self.stats, observing=self.observing,
                                 outbox=self.outbox)
        self.chores = Chores(cfg, self.conn, model=self.model, lanes=self.lanes,
                             outbox=self.outbox, scans=self.scans, ingest=self.ingest)
        self._fleet_started = False
        self.stop_event = threading.Event()
        self.rescan_requested = threading.Event()
        self.stalled_after_s = STALLED_AFTER_S  # a lane's file operation running this long
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
            timers.run_due(now)
            if self.rescan_requested.is_set():
                self.rescan_requested.clear()
                self.rescan()
                timers.restart(self.rescan, now)  # the periodic rescan counts from this one
            self.alive()
            if on_tick is not None:
                on_tick(self)

    def _timers(self) -> Timers:
        w, b = self.cfg.watch, self.cfg.broker
        now = time.monotonic()
        timers = [
            Timer(now, lambda: min(BACKLOG_FEED_S, b.outbox_interval_seconds),
                  self.outbox.feed_backlog),
            Timer(now + b.outbox_interval_seconds, lambda: b.outbox_interval_seconds,
                  self._housekeeping),
            Timer(now + PROGRESS_LOG_S, lambda: PROGRESS_LOG_S, self.scans.log_progress),
            Timer(now, lambda: PURGE_INTERVAL_S, self.chores.purge),
        ]
        if w.rescan_interval_seconds:
            timers.append(Timer(now + w.rescan_interval_seconds,
                                lambda: w.rescan_interval_seconds, self.rescan))
        if self.results is not None:
            results = self.results
            timers.append(Timer(now, lambda: RESULTS_EVERY_S,
                                lambda: results.apply() if self._fleet_started else None))
        return Timers(timers)

    def _housekeeping(self) -> None:
        """Every ``outbox_interval_seconds``: see ``Chores.every_interval``."""
        self.chores.every_interval(self.fleet if self._fleet_started else None,
                                   self.stalled_after_s)

    def scan_once(self, roots: list[Path], timeout: float) -> dict[str, int]:
        """`watcherd scan`: one reconcile of ``roots`` to the end (files still settling
        included, up to ``timeout``), then send what it found. Totals over the roots."""
        self.rescan(roots)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (
                self.scans.pending or any(lane.waiting() for lane in self.lanes.values())):
            self.step(timeout=0.1)
        self.step(timeout=0.0)
        self.outbox.send_due()
        return self.scans.totals(roots)

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
                work += self.recorder.record(batch)
                batch = []
                self.recorder.handle(item)
            if taken >= DRAIN_MAX:
                break  # the rest waits for the next round: timers run meanwhile
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
            taken += 1
        work += self.recorder.record(batch)
        if work:
            self.outbox.send_due()

    # ----------------------------------------------------------------- reporting

    def status_line(self) -> str:
        n = len(self.cfg.watch.paths)
        how = "polling" if self.polling else "watching"
        parts = [f"{how} {n} folder{'s' if n != 1 else ''}", f"{self.pending_count()} pending"]
        for root, lane in self.lanes.items():
            if lane.scan is not None:
                p = lane.scan.progress
                parts.append(f"scanning {root}: {p.folders} folders, {p.files} files seen")
        if self.chores.stalled:
            parts.append("NOT RESPONDING: " + ", ".join(map(str, sorted(self.chores.stalled))))
        if not self.outbox.broker_ok:
            parts.append("broker unreachable")
        return ", ".join(parts)

    def pending_count(self) -> int:
        return browse.pending_count(self.conn)
