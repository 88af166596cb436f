"""In-flight markers: "this process is about to work on these photos", on the broker first.

Right before a step that could kill the process (decoding a photo, encoding a batch), the
process publishes a ``busy`` event naming the step's photos, synchronously: it is on the broker
before the step starts, so if the process dies in the step the watcher knows whom to blame, and
only them. An empty ``busy`` says the step is over. Each process publishes on its own connection
(a prefork pool child opens one the first time it marks a step).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from watcherd.broker.channel import Publisher
from watcherd.config import Config
from watcherd.fleet.messages import Busy, Item


class Markers:
    def __init__(self, cfg: Config, worker: str) -> None:
        self.worker = worker  # the name in the worker's heartbeats
        self.publisher = Publisher(cfg)
        self._marked: dict[int, bool] = {}  # per process: a non-empty marker is standing

    def busy(self, kind: str, items: Sequence[Item], *, limit: float = 0.0,
             deadline: float = 0.0) -> None:
        """Announce the photos of the step about to start (replaces the previous marker), with
        its time limit (seconds, for the reason) and when it runs out (``time.time()``; 0:
        ``limit`` from now; no limit when ``limit`` is 0): past it, the watcher ends the
        process and charges the step's photos as timed out."""
        now = time.time()
        if limit and not deadline:
            deadline = now + limit
        event = Busy(self.worker, os.getpid(), kind, now, tuple(items), limit, deadline)
        self.publisher.publish(event.to_json())
        self._marked[os.getpid()] = bool(items)

    def idle(self, kind: str) -> None:
        """The step is over (nothing sent if no marker is standing)."""
        if self._marked.get(os.getpid()):
            self.busy(kind, ())

    @contextmanager
    def step(self, kind: str, items: Sequence[Item], *, limit: float = 0.0,
             deadline: float = 0.0) -> Iterator[None]:
        self.busy(kind, items, limit=limit, deadline=deadline)
        try:
            yield
        finally:
            self.idle(kind)

    def close(self) -> None:
        self.publisher.close()
