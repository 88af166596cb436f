"""The Celery tasks: thin wrappers that call the steps (``thumbnail``, ``embedding``) and turn a
locked database into a message given back to the queue.

No Celery retry layer: per-file problems end as ``failed`` rows (no retry), a locked database
gives the message back (``dbconn``), and a worker that dies is noticed by the watcher from its
heartbeats, which counts the attempt against the photo it was working on.

The thumbnail task has Celery's soft and hard time limits (``[thumbnails]``) and
``acks_on_failure_or_timeout=False``: after the hard limit Celery kills the pool child and gives
the message back (instead of acknowledging it, Celery's default), and the watcher charges the
photo as timed out (``worker.thumbnail``).
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Collection, Sequence
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded
from celery import Celery
from celery.exceptions import Reject
from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task

from watcherd.config import Config
from watcherd.queue.app import EMBED_TASK, THUMBNAIL_TASK
from watcherd.worker import held
from watcherd.worker.beacon import worker_name
from watcherd.worker.dbconn import database, is_locked, note_locked
from watcherd.worker.embedding import EmbedderHolder, embed_batch
from watcherd.worker.markers import Markers
from watcherd.worker.thumbnail import thumbnail_one, timed_out

__all__ = ["EmbedBatches", "EmbedderHolder", "register"]


class EmbedBatches(Batches):  # type: ignore[misc]
    """celery-batches' task, keeping track of what it holds and able to give messages back.

    celery-batches keeps received requests in ``_buffer`` (and ``_pending`` for ETAs) until a
    flush hands them to the pool; neither is in Celery's ``reserved_requests``. This class also
    remembers the batch being flushed (``in_flight``), so ``held()`` is every message the worker
    has not acknowledged. The task returns the ids of the requests to give back to the queue
    (a locked database); the others are acknowledged when it returns, as before (acks_late).
    """

    def __init__(self) -> None:
        super().__init__()
        self.in_flight: list[Any] = []
        self.done = 0

    def forget_buffered(self) -> int:
        """Drop the requests received and not yet flushed, and the flush timer (the broker
        connection they came on is gone: see ``watcherd.worker.consumer``)."""
        dropped = len(held.drain(self._buffer)) + len(held.drain(self._pending))
        if self._tref is not None:
            self._tref.cancel()
            self._tref = None
        self._count = itertools.count(1)
        return dropped

    def held(self) -> list[tuple[int, str]]:
        return held.items([*held.queued(self._buffer), *held.queued(self._pending),
                           *list(self.in_flight)])

    def flush(self, requests: Collection[Any]) -> Any:
        reqs = list(requests)
        self.in_flight = reqs

        def on_return(result: Any) -> None:
            give_back = set(result) if isinstance(result, list | set | tuple) else set()
            try:
                for r in reqs:
                    if r.id in give_back:
                        r.reject(requeue=True)
                    else:
                        r.acknowledge()
            finally:  # an ack on a connection lost meanwhile raises: nothing is held any more
                self.done += len(reqs)
                self.in_flight = []

        return self._pool.apply_async(
            apply_batches_task,
            (self, ([SimpleRequest.from_request(r) for r in reqs],), 0, None),
            callback=on_return,
        )


def register(app: Celery, cfg: Config, holder: EmbedderHolder | None = None,
             markers: Markers | None = None) -> None:
    """Register both tasks on ``app``. The embedding worker passes its loaded model holder;
    ``markers`` publish the busy markers (one per worker, named like its heartbeats)."""
    the_holder = holder or EmbedderHolder()
    the_markers = markers or Markers(cfg, worker_name("worker"))
    path, timeout = str(cfg.database.path), cfg.database.busy_timeout_seconds

    t = cfg.thumbnails

    @app.task(name=THUMBNAIL_TASK, acks_late=True, soft_time_limit=t.soft_time_limit_seconds,
              time_limit=t.time_limit_seconds, acks_on_failure_or_timeout=False)
    def thumbnail(image_id: int, sha256: str) -> str:
        deadline = time.time() + t.time_limit_seconds
        conn = database(path, timeout)
        try:
            return thumbnail_one(cfg, conn, the_markers, image_id, sha256, deadline=deadline)
        except SoftTimeLimitExceeded:
            if timed_out(cfg, conn, image_id, sha256):
                return "failed"
            raise Reject("soft time limit exceeded", requeue=True) from None
        except sqlite3.OperationalError as exc:
            if not is_locked(exc):
                raise
            note_locked(conn, "thumbnail", [(image_id, sha256)], timeout)
            raise Reject(str(exc), requeue=True) from None

    @app.task(name=EMBED_TASK, base=EmbedBatches, acks_late=True,
              flush_every=cfg.embeddings.batch_size,
              flush_interval=max(cfg.embeddings.max_wait_ms, 1) / 1000)
    def embed(requests: Sequence[Any]) -> list[str]:
        """Returns the ids of the requests to give back to the queue."""
        items = [i for r in requests if (i := held.request_item(r)) is not None]
        conn = database(path, timeout)
        try:
            embed_batch(cfg, conn, the_holder, the_markers, items)
        except sqlite3.OperationalError as exc:
            if not is_locked(exc):
                raise
            note_locked(conn, "embedding", items, timeout)
            return [r.id for r in requests]
        return []

    del thumbnail, embed
