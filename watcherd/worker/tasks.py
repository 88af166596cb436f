"""The Celery tasks: thin wrappers that call the steps (``thumbnail``, ``embedding``) and turn a
locked database into a message given back to the queue (``locked_goes_back``). Plain
functions: what they need of the worker (config, model, busy markers) is the app's
:class:`Context`.

No Celery retry layer: per-file problems end as ``failed`` rows (no retry), a locked database
gives the message back (``dbconn``), and a worker that dies is noticed by the watcher from its
heartbeats, which counts the attempt against the photo it was working on.

The thumbnail task has Celery's soft and hard time limits (``[thumbnails]``) and
``acks_on_failure_or_timeout=False``: after the hard limit Celery kills the pool child and gives
the message back (instead of acknowledging it, Celery's default), and the watcher charges the
photo as timed out (``worker.thumbnail``).
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded
from celery import Celery, signals
from celery.exceptions import Reject
from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task

from watcherd import logs
from watcherd.broker.app import (
    EMBED_TASK,
    METADATA_TASK,
    PREPARE_TASK,
    THUMBNAIL_TASK,
    queue_names,
)
from watcherd.broker.channel import Publisher
from watcherd.config import Config
from watcherd.dispatch import remote
from watcherd.fleet.busy import Markers
from watcherd.fleet.heartbeat import worker_name
from watcherd.store import schema
from watcherd.worker import batchevents, unacked
from watcherd.worker.database import database, is_locked, note_locked
from watcherd.worker.embedding import EmbedderHolder, embed_batch
from watcherd.worker.metadata import metadata_one
from watcherd.worker.remote_embed import Refused, embed_jobs
from watcherd.worker.remote_prepare import prepare_one
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
        connection they came on is gone: see ``watcherd.broker.app.Consumer``)."""
        dropped = len(unacked.drain(self._buffer)) + len(unacked.drain(self._pending))
        if self._tref is not None:
            self._tref.cancel()
            self._tref = None
        self._count = itertools.count(1)
        return dropped

    def held(self) -> list[tuple[int, str]]:
        return unacked.items([*unacked.queued(self._buffer), *unacked.queued(self._pending),
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


@dataclass
class Context:
    """What the tasks of one app need, set by :func:`register` (on the app, as ``watcherd``)."""

    app: Celery
    cfg: Config
    holder: EmbedderHolder
    markers: Markers
    refuse: Refuse
    results: Publisher | None = None  # created on first use: only remote jobs need it

    @property
    def path(self) -> str:
        return str(self.cfg.database.path) if self.cfg.local else ""

    @property
    def timeout(self) -> float:
        return self.cfg.database.busy_timeout_seconds if self.cfg.local else 0.0

    def conn(self) -> sqlite3.Connection:
        return database(self.path, self.timeout)

    def publish(self, body: dict[str, Any]) -> bool:
        if self.results is None:
            self.results = Publisher(self.cfg, remote.results_queue(self.cfg), persistent=True)
        return self.results.publish(body)

    def send_embed(self, image_id: int, sha256: str, job: dict[str, Any]) -> None:
        queue = queue_names(self.cfg)["embedding"]
        self.app.send_task(EMBED_TASK, args=[image_id, sha256], kwargs={"remote": job},
                           queue=queue, routing_key=queue)


def context(task: Any) -> Context:
    ctx: Context = task.app.watcherd
    return ctx


@contextlib.contextmanager
def locked_goes_back(ctx: Context, conn: sqlite3.Connection, kind: schema.Kind,
                     items: Sequence[tuple[int, str]]) -> Iterator[None]:
    """A database locked past the busy timeout: note it on the rows and give the message back
    to the queue (Celery's Reject with requeue; no attempt is charged)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if not is_locked(exc):
            raise
        note_locked(conn, kind, items, ctx.timeout)
        raise Reject(str(exc), requeue=True) from None


def prepare(task: Any, image_id: int, sha256: str, job: Any = None) -> str:
    """``watcherd.prepare`` (remote embeddings): the photo's model input, sent on."""
    ctx = context(task)
    conn = ctx.conn()
    with locked_goes_back(ctx, conn, "embedding", [(image_id, sha256)]):
        return prepare_one(ctx.cfg, conn, ctx.markers, ctx.send_embed, image_id, sha256, job,
                           deadline=time.time() + ctx.cfg.thumbnails.time_limit_seconds)


def thumbnail(task: Any, image_id: int, sha256: str) -> str:
    """``watcherd.thumbnail``: a photo's thumbnails; at the soft time limit the photo is
    charged (or failed) and the message goes back."""
    ctx = context(task)
    conn = ctx.conn()
    deadline = time.time() + ctx.cfg.thumbnails.time_limit_seconds
    with locked_goes_back(ctx, conn, "thumbnail", [(image_id, sha256)]):
        try:
            return thumbnail_one(ctx.cfg, conn, ctx.markers, image_id, sha256,
                                 deadline=deadline)
        except SoftTimeLimitExceeded:
            if timed_out(ctx.cfg, conn, image_id, sha256):
                return "failed"
            raise Reject("soft time limit exceeded", requeue=True) from None


def metadata(task: Any, image_id: int, sha256: str) -> str:
    """``watcherd.metadata``: a photo's metadata without its pixels (backfill, sidecars)."""
    ctx = context(task)
    conn = ctx.conn()
    try:
        return metadata_one(conn, image_id, sha256)
    except sqlite3.OperationalError as exc:
        if not is_locked(exc):
            raise
        raise Reject(str(exc), requeue=True) from None


def embed(task: Any, requests: Sequence[Any]) -> list[str]:
    """``watcherd.embed``, a batch: remote jobs (pixels in the message) and local photos (by
    path). Returns the ids of the requests to give back to the queue."""
    ctx = context(task)
    remote_jobs = [r for r in requests if "remote" in (r.kwargs or {})]
    local = [r for r in requests if "remote" not in (r.kwargs or {})]
    give_back = _embed_remote(ctx, remote_jobs) if remote_jobs else []
    if not local:
        return give_back
    if not ctx.cfg.local:
        ctx.refuse("the photo server sends photos by path ([embeddings] remote = false "
                   "there), and this worker has no [database]: set [embeddings] remote = "
                   "true on the photo server. If it is set already, these were sent "
                   "before: let a local embedding worker finish them there, or purge the "
                   "embeddings queue (the photos are sent again)")
        return give_back + [r.id for r in local]
    ours, refused = unacked.by_model(local, ctx.holder.key)
    for expected, count in refused.items():  # acknowledged, never recorded: the watcher
        ctx.holder.refuse(expected, count)   # sends them again to a worker that fits
    if refused:  # their events say so (task-rejected), not task-succeeded
        task.refused.update({r.id for r in local} - {r.id for r in ours})
    items = [i for r in ours if (i := unacked.request_item(r)) is not None]
    conn = ctx.conn()
    try:
        with locked_goes_back(ctx, conn, "embedding", items):
            embed_batch(ctx.cfg, conn, ctx.holder, ctx.markers, items)
    except Reject:
        return give_back + [r.id for r in local]
    return give_back


def _embed_remote(ctx: Context, requests: Sequence[Any]) -> list[str]:
    """Remote jobs: embedded and their results published; the ids to give back (all of them
    when this worker refuses the work or cannot publish)."""
    jobs = [(i, r.kwargs["remote"]) for r in requests
            if (i := unacked.request_item(r)) is not None]
    if not jobs:
        return [r.id for r in requests]
    try:
        with ctx.holder.lock:
            embed_jobs(ctx.holder.embedder, ctx.holder.key, ctx.holder.error, ctx.markers,
                       ctx.publish, ctx.markers.worker, ctx.cfg.embeddings.batch_size, jobs)
        return []
    except Refused as exc:
        ctx.refuse(str(exc))
    except ConnectionError as exc:  # results not on the broker: compute them again
        log.warning("results not sent; the photos go back to the queue", error=str(exc))
    return [r.id for r in requests]


def register(app: Celery, cfg: Config, holder: EmbedderHolder | None = None,
             markers: Markers | None = None, refuse: Refuse | None = None,
             results: Publisher | None = None) -> None:
    """Register the tasks on ``app``. The embedding worker passes its loaded model holder;
    ``markers`` publish the busy markers (one per worker, named like its heartbeats);
    ``refuse`` is called with the reason when this worker cannot do the work it receives
    (it stops taking work: see ``watcherd.worker.runner``); ``results`` publishes remote
    embeddings' results. A worker without ``[database]`` (remote) only embeds jobs that carry
    their pixels.

    ``shared=False``: Celery's default registers every task for every app created later in the
    process (and finalizing an app runs those in no fixed order), so a second app could get the
    first one's task. Preparing decodes the photo as a thumbnail does: the same hard limit (no
    soft one: the step is short), and the message comes back after a timeout for the attempts
    to decide."""
    signals.task_received.connect(_received, weak=False, dispatch_uid=__name__ + "._received")
    app.watcherd = Context(  # the tasks find it through task.app
        app, cfg, holder or EmbedderHolder(), markers or Markers(cfg, worker_name("worker")),
        refuse or (lambda reason: log.error("work refused", reason=reason)), results)
    t = cfg.thumbnails
    app.task(name=PREPARE_TASK, bind=True, shared=False, acks_late=True,
             time_limit=t.time_limit_seconds, acks_on_failure_or_timeout=False)(prepare)
    app.task(name=THUMBNAIL_TASK, bind=True, shared=False, acks_late=True,
             soft_time_limit=t.soft_time_limit_seconds, time_limit=t.time_limit_seconds,
             acks_on_failure_or_timeout=False)(thumbnail)
    app.task(name=METADATA_TASK, bind=True, shared=False, acks_late=True,
             soft_time_limit=t.soft_time_limit_seconds, time_limit=t.time_limit_seconds,
             acks_on_failure_or_timeout=True)(metadata)
    app.task(name=EMBED_TASK, base=EmbedBatches, bind=True, shared=False, acks_late=True,
             flush_every=cfg.embeddings.batch_size,
             flush_interval=max(cfg.embeddings.max_wait_ms, 1) / 1000)(embed)
