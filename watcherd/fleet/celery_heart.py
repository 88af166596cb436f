"""Celery's worker heartbeats from a thread of their own, for the solo embedding worker.

Celery sends ``worker-heartbeat`` from the consumer's event loop (``celery.worker.heartbeat``).
The solo pool runs each batch in that same loop, so a batch longer than Flower's window (4 s,
twice the 2 s interval) made Flower show the embedding worker offline until the batch ended.
This thread sends Celery's ``worker-online``, ``worker-heartbeat`` (every ``interval``,
whatever the loop is doing) and ``worker-offline`` events with Celery's own fields, on a
connection of its own (a kombu connection belongs to one thread), instead of Celery's heart:
the worker runs ``without_heartbeat``. A heartbeat that cannot be sent is logged once per
outage; the next one reconnects. Telemetry never stops the work.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from celery.events import EventDispatcher
from celery.utils.sysinfo import load_average
from celery.worker.state import SOFTWARE_INFO, active_requests, all_total_count

from watcherd import logs

log = logs.get("watcherd.fleet.celery_heart")
INTERVAL_S = 2.0  # Celery's own heart's


class ThreadHeart:
    def __init__(self, app: Any, hostname: str, interval: float = INTERVAL_S) -> None:
        self.app, self.hostname, self.interval = app, hostname, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="celery-heart", daemon=True)
        self._conn: Any = None
        self._dispatcher: EventDispatcher | None = None
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """``worker-offline``, then the thread ends (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        self._send("worker-online")
        while not self._stop.wait(self.interval):
            self._send("worker-heartbeat")
        self._send("worker-offline")
        self._close()

    def _send(self, event: str) -> None:
        try:
            if self._dispatcher is None:
                self._conn = self.app.connection_for_write()
                self._dispatcher = self.app.events.Dispatcher(
                    self._conn, hostname=self.hostname, enabled=True,
                    buffer_while_offline=False)
            self._dispatcher.send(event, freq=self.interval, active=len(active_requests),
                                  processed=all_total_count[0], loadavg=load_average(),
                                  retry=False, **SOFTWARE_INFO)
        except Exception as exc:  # the broker's connection errors, of any transport
            self._close()
            if not self._failing:
                log.warning("cannot send Celery worker heartbeats (Flower, celery-exporter); "
                            "trying again", error=str(exc))
            self._failing = True
            return
        if self._failing:
            log.info("Celery worker heartbeats sent again")
        self._failing = False

    def _close(self) -> None:
        dispatcher, conn = self._dispatcher, self._conn
        self._dispatcher = self._conn = None
        for closing in (dispatcher, conn):
            if closing is not None:
                with contextlib.suppress(Exception):  # already broken: nothing to release
                    closing.close()
