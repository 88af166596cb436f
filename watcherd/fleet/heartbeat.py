"""The worker's heartbeat: a daemon thread with its own broker connection.

Every ``HEARTBEAT_INTERVAL_S`` the worker's main process tells the watcher who it is, its state,
its model, its memory, how much it has done, which task messages it holds and which processes do
its work (``watcherd.fleet.messages.Heartbeat``). At a clean stop it says ``stopping``, then a last
``stopped``. Nothing here touches the database: the watcher writes what it hears.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from watcherd import logs
from watcherd.broker.channel import UNREAD_CAP, Publisher, is_amqp
from watcherd.config import Config
from watcherd.fleet import procinfo
from watcherd.fleet.messages import HEARTBEAT_INTERVAL_S, STARTING, STOPPED, Heartbeat, Item
from watcherd.fleet.reaper import pid_space
from watcherd.meta import __version__
from watcherd.store.schema import now_iso

log = logs.get("watcherd.fleet.heartbeat")

BACKLOG_CHECK_EVERY = 30  # heartbeats between looks at the fleet queue's length


def worker_name(role: str) -> str:
    """Unique per worker process: ``thumbnails@host:pid``."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}"


class Beacon:
    def __init__(self, cfg: Config, role: str, kind: str, *,
                 interval: float = HEARTBEAT_INTERVAL_S) -> None:
        self.cfg = cfg
        self.role = role
        self.kind = kind
        self.name = worker_name(role)
        self.interval = interval
        self.started_at = now_iso(datetime.now(UTC))
        self.state = STARTING
        self.message: str | None = None
        self.model: tuple[str | None, str | None, str | None] = (None, None, None)
        self.input: dict[str, Any] | None = None  # the model's input spec, once it is loaded
        # What the worker holds and has done; set once its Celery app exists.
        self.held: Callable[[], Iterable[Item]] = lambda: ()
        self.processed: Callable[[], int] = lambda: 0
        self.publisher = Publisher(cfg)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watcherd-heartbeat",
                                        daemon=True)

    def set_state(self, state: str, message: str | None = None) -> None:
        """Carried by the next heartbeat (safe to call from a signal handler: no lock)."""
        self.state, self.message = state, message

    def beat(self) -> None:
        """A heartbeat now, from the calling thread (a state the watcher must know before the
        worker takes its first task: ready, or the model failed)."""
        self.publisher.publish(self.heartbeat().to_json())

    def heartbeat(self, *, final: bool = False) -> Heartbeat:
        pids = procinfo.live_tree()
        model, pretrained, device = self.model
        return Heartbeat(
            name=self.name, role=self.role, kind=self.kind, host=socket.gethostname(),
            pid=os.getpid(), state=STOPPED if final else self.state, at=time.time(),
            started_at=self.started_at, message=self.message, model=model,
            pretrained=pretrained, device=device,
            rss_kb=sum(procinfo.rss_kb(p) for p in pids), processed=self.processed(),
            held=() if final else tuple(self.held()), pids=tuple(pids),
            input=self.input, version=__version__,
            stopped=tuple(p for p in pids if procinfo.stopped(p)),
            space=pid_space(),
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the thread and send the last heartbeat: ``stopped``, holding nothing."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.publisher.publish(self.heartbeat(final=True).to_json())
        self.publisher.close()

    def _run(self) -> None:
        beats = 0
        while True:
            try:
                self.publisher.publish(self.heartbeat().to_json())
                beats += 1
                if beats % BACKLOG_CHECK_EVERY == 0 and not is_amqp(self.cfg):
                    self._cap_unread()
            except Exception:  # a bug here must not end the heartbeat: say it, go on
                log.exception("heartbeat failed")
            if self._stop.wait(self.interval):
                return

    def _cap_unread(self) -> None:
        """Without a message TTL (Redis, the spool), an unread fleet queue would grow for as
        long as the watcher is down; a live watcher reads it within a second."""
        depth = self.publisher.depth()
        if depth is not None and depth > UNREAD_CAP:
            dropped = self.publisher.purge()
            log.warning("fleet queue unread (is the watcher running?); dropped its backlog",
                        dropped=dropped)
