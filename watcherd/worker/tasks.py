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
from collections.abc import Callable, Collection, Sequence
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded
from celery import Celery, signals
from celery.exceptions import Reject
from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task

from watcherd import logs
from watcherd.config import Config
from watcherd.queue import remote
from watcherd.queue.app import EMBED_TASK, PREPARE_TASK, THUMBNAIL_TASK, queue_names
from watcherd.queue.fleet import Publisher
from watcherd.worker import batchevents, held
from watcherd.worker.beacon import worker_name
from watcherd.worker.dbconn import database, is_locked, note_locked
from watcherd.worker.embedding import EmbedderHolder, embed_batch
from watcherd.worker.markers import Markers
from watcherd.worker.prepare import prepare_one
from watcherd.worker.remote_embed import Refused, embed_jobs
from watcherd.worker.thumbnail import thumbnail_one, timed_out

__all__ = ["EmbedBatches", "EmbedderHolder", "register"]

log = logs.get("watcherd.worker.tasks")
Refuse = Callable[[str], None]


class EmbedBatches(Batches):
    """celery-batches' task, keeping track of what it holds and able to give messages back.

    celery-batches keeps received requests in ``_buffer`` (and ``_pending`` for ETAs) until a
    flush hands them to the pool; neither is in Celery's ``reserved_requests``. This class also
    remembers the batch being flushed (``in_flight``), so ``held()`` is every message the worker
    has not acknowledged. The task returns the ids of the requests to give back to the queue
    (a locked database); the others are acknowledged when it returns, as before (acks_late).
    """

    _tref: Any  # celery-batches' flush timer (its own annotation names an untyped class)

    def __init__(self) -> None:
        super().__init__()
        self.in_flight: list[Any] = []
        self.done = 0
        self.refused: set[str] = set()  # the batch's requests refused (another model): acked

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
        began = batchevents.started(reqs)

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
                refused, self.refused = self.refused, set()
                # result None: the batch raised (celery-batches logged it)
                batchevents.finished(reqs, began, ok=result is not None, given_back=give_back,
                                     refused=refused)

        return self._pool.apply_async(
            apply_batches_task,
            (self, ([SimpleRequest.from_request(r) for r in reqs],), 0, None),
            callback=on_return,
        )


def _received(request: Any = None, **_: Any) -> None:
    """celery-batches sends Celery's ``task_received`` signal but no ``task-received`` event."""
    if isinstance(getattr(request, "task", None), EmbedBatches):
        batchevents.received(request)


def register(app: Celery, cfg: Config, holder: EmbedderHolder | None = None,
             markers: Markers | None = None, refuse: Refuse | None = None,
             results: Publisher | None = None) -> None:
    """Register the tasks on ``app``. The embedding worker passes its loaded model holder;
    ``markers`` publish the busy markers (one per worker, named like its heartbeats);
    ``refuse`` is called with the reason when this worker cannot do the work it receives
    (it stops taking work: see ``watcherd.worker.runner``); ``results`` publishes remote
    embeddings' results. A worker without ``[database]`` (remote) only embeds jobs that carry
    their pixels."""
    signals.task_received.connect(_received, weak=False, dispatch_uid=__name__ + "._received")
    the_holder = holder or EmbedderHolder()
    the_markers = markers or Markers(cfg, worker_name("worker"))
    the_refuse = refuse or (lambda reason: log.error("work refused", reason=reason))
    path = str(cfg.database.path) if cfg.local else ""
    timeout = cfg.database.busy_timeout_seconds if cfg.local else 0.0
    the_results: list[Publisher] = [results] if results is not None else []

    def publish(body: dict[str, Any]) -> bool:
        if not the_results:  # created on first use: only workers that get remote jobs need it
            the_results.append(Publisher(cfg, remote.results_queue(cfg), persistent=True))
        return the_results[0].publish(body)

    def send_embed(image_id: int, sha256: str, job: dict[str, Any]) -> None:
        queue = queue_names(cfg)["embedding"]
        app.send_task(EMBED_TASK, args=[image_id, sha256], kwargs={"remote": job},
                      queue=queue, routing_key=queue)

    # Preparing decodes the photo as a thumbnail does: the same hard limit (no soft one: the
    # step is short), and the message comes back after a timeout for the attempts to decide.
    # shared=False: Celery's default registers every task for every app created later in the
    # process (and finalizing an app runs those in no fixed order), so a second app could get
    # the first one's function, with the first one's config and database.
    @app.task(name=PREPARE_TASK, shared=False, acks_late=True,
              time_limit=cfg.thumbnails.time_limit_seconds, acks_on_failure_or_timeout=False)
    def prepare(image_id: int, sha256: str, job: Any = None) -> str:
        conn = database(path, timeout)
        try:
            return prepare_one(cfg, conn, the_markers, send_embed, image_id, sha256, job,
                               deadline=time.time() + cfg.thumbnails.time_limit_seconds)
        except sqlite3.OperationalError as exc:
            if not is_locked(exc):
                raise
            note_locked(conn, "embedding", [(image_id, sha256)], timeout)
            raise Reject(str(exc), requeue=True) from None

    t = cfg.thumbnails

    @app.task(name=THUMBNAIL_TASK, shared=False, acks_late=True,
              soft_time_limit=t.soft_time_limit_seconds, time_limit=t.time_limit_seconds,
              acks_on_failure_or_timeout=False)
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

    @app.task(name=EMBED_TASK, base=EmbedBatches, shared=False, acks_late=True,
              flush_every=cfg.embeddings.batch_size,
              flush_interval=max(cfg.embeddings.max_wait_ms, 1) / 1000)
    def embed(requests: Sequence[Any]) -> list[str]:
        """Returns the ids of the requests to give back to the queue."""
        jobs = [(i, r.kwargs["remote"]) for r in requests
                if (i := held.request_item(r)) is not None and "remote" in (r.kwargs or {})]
        local = [r for r in requests if "remote" not in (r.kwargs or {})]
        give_back = [r.id for r in requests if "remote" in (r.kwargs or {})]
        if jobs:
            try:
                with the_holder.lock:
                    embed_jobs(the_holder.embedder, the_holder.key, the_holder.error,
                               the_markers, publish,
                               the_markers.worker, cfg.embeddings.batch_size, jobs)
                give_back = []
            except Refused as exc:
                the_refuse(str(exc))
            except ConnectionError as exc:  # results not on the broker: compute them again
                log.warning("results not sent; the photos go back to the queue", error=str(exc))
        if not local:
            return give_back
        if not cfg.local:
            the_refuse("the photo server sends photos by path ([embeddings] remote = false "
                       "there), and this worker has no [database]: set [embeddings] remote = "
                       "true on the photo server. If it is set already, these were sent "
                       "before: let a local embedding worker finish them there, or purge the "
                       "embeddings queue (the photos are sent again)")
            return give_back + [r.id for r in local]
        requests = local
        conn = database(path, timeout)
        ours, refused = held.by_model(requests, the_holder.key)
        for expected, count in refused.items():  # acknowledged, never recorded: the watcher
            the_holder.refuse(expected, count)   # sends them again to a worker that fits
        if refused:  # their events say so (task-rejected), not task-succeeded
            app.tasks[EMBED_TASK].refused.update(
                {r.id for r in requests} - {r.id for r in ours})
        items = [i for r in ours if (i := held.request_item(r)) is not None]
        try:
            embed_batch(cfg, conn, the_holder, the_markers, items)
        except sqlite3.OperationalError as exc:
            if not is_locked(exc):
                raise
            note_locked(conn, "embedding", items, timeout)
            return give_back + [r.id for r in requests]
        return give_back

    del thumbnail, embed, prepare
