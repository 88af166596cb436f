"""Thin Celery tasks: claim the row, read the file, call the image/model code, write results.

Every task is idempotent, keyed by (image id, sha256): a stale or redelivered message finds the
row done, changed or deleted and does nothing. Per-file problems mark the row ``failed`` with a
reason and are never retried; transient database errors retry with bounded backoff; a row whose
worker keeps dying is given up after ``[broker] max_attempts`` starts.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import sqlite_utils
from celery import Celery

from watcherd import logs
from watcherd.config import Config
from watcherd.media.images import ImageError
from watcherd.queue.app import EMBED_TASK, THUMBNAIL_TASK
from watcherd.store import db

if TYPE_CHECKING:
    from watcherd.media.embeddings import Embedder

log = logs.get("watcherd.worker.tasks")
T = TypeVar("T")

_local = threading.local()


def database(path: str) -> sqlite_utils.Database:
    """One connection per process and thread (prefork children must not share the parent's)."""
    key = (os.getpid(), path)
    conn = getattr(_local, "db", None)
    if conn is None or conn[0] != key:
        _local.db = (key, db.connect(path, migrate_schema=False))
    return _local.db[1]


def with_db_retry(fn: Callable[[], T], *, attempts: int = 6) -> T:
    """Retry a database step on 'database is locked'/busy, with bounded exponential backoff."""
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or attempt == attempts:
                raise
            log.warning("database busy, retrying", attempt=attempt, error=str(exc))
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")


@dataclass
class Claim:
    image_id: int
    sha256: str
    path: str
    data: bytes


def claim(conn: sqlite_utils.Database, kind: db.Kind, image_id: int, sha256: str,
          max_attempts: int) -> Claim | None:
    """Claim the row and read the file. None when there is nothing (more) to do."""
    path = with_db_retry(lambda: db.begin_task(conn, kind, image_id, sha256, max_attempts))
    if path is None:
        log.debug("nothing to do", image_id=image_id, task=kind)
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        # Deleted or moved before its task ran: the watcher records the delete/move.
        log.info("file gone before processing", image_id=image_id, path=path, task=kind)
        return None
    except OSError as exc:
        reason = f"unreadable: {exc.strerror or exc}"
        with_db_retry(lambda: db.fail(conn, kind, image_id, sha256, reason))
        log.warning("failed", image_id=image_id, path=path, task=kind, reason=reason)
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        # Replaced since discovery: the watcher re-records it and sends a new message.
        log.info("file changed since discovery, skipped", image_id=image_id, path=path, task=kind)
        return None
    return Claim(image_id, sha256, path, data)


def thumbnail_one(cfg: Config, image_id: int, sha256: str) -> str:
    from watcherd.media.thumbnails import make_thumbnails

    started = time.perf_counter()
    conn = database(str(cfg.database.path))
    c = claim(conn, "thumbnail", image_id, sha256, cfg.broker.max_attempts)
    if c is None:
        return "skipped"
    t = cfg.thumbnails
    try:
        result = make_thumbnails(c.data, t.sizes, fmt=t.format, quality=t.quality,
                                 max_pixels=cfg.images.max_pixels)
    except Exception as exc:
        # ImageError: the file's fault. Anything else is a bug: the traceback goes to the log,
        # and the row says what happened instead of being retried until it "gives up".
        reason = str(exc) if isinstance(exc, ImageError) else _internal(exc)
        with_db_retry(lambda: db.fail(conn, "thumbnail", image_id, sha256, reason))
        log.warning("failed", image_id=image_id, path=c.path, task="thumbnail", reason=reason,
                    exc_info=not isinstance(exc, ImageError))
        return "failed"
    rows = [db.ThumbRow(x.size, x.width, x.height, x.format, x.data) for x in result.thumbnails]
    saved = with_db_retry(lambda: db.save_thumbnails(
        conn, image_id, sha256, result.width, result.height, result.format, rows))
    log.info("thumbnails done" if saved else "thumbnails stale, dropped", image_id=image_id,
             path=c.path, task="thumbnail", sizes=list(t.sizes),
             duration_ms=round((time.perf_counter() - started) * 1000, 1))
    return "done" if saved else "stale"


def _internal(exc: BaseException) -> str:
    return f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}"[:300]


def encode_splitting(embedder: Embedder, tensors: Sequence[Any]) -> Any:
    """Encode a batch; on a device out-of-memory error, halve the batch and try again (bounded:
    down to one image, then the error stands)."""
    import numpy as np
    import torch

    try:
        return embedder.encode(tensors)
    except torch.OutOfMemoryError:
        if len(tensors) <= 1:
            raise
        torch.cuda.empty_cache()
        half = len(tensors) // 2
        log.warning("out of memory; splitting the batch", task="embedding", batch=len(tensors))
        return np.concatenate([encode_splitting(embedder, tensors[:half]),
                               encode_splitting(embedder, tensors[half:])])


class EmbedderHolder:
    """The embedding worker's model, loaded once per process before the worker consumes."""

    def __init__(self) -> None:
        self.embedder: Embedder | None = None
        self.error: str | None = None
        self.lock = threading.Lock()

    def load(self, cfg: Config) -> None:
        from watcherd.media.embeddings import Embedder, ModelLoadError

        e = cfg.embeddings
        started = time.perf_counter()
        try:
            self.embedder = Embedder(e.model, e.pretrained or None, e.device)
        except ModelLoadError as exc:
            self.error = str(exc)
            log.error("embedding model could not be loaded; every embedding will be marked "
                      "failed until the config is fixed and the worker restarted",
                      model=e.model, pretrained=e.pretrained, reason=self.error)
            return
        log.info("embedding model loaded", model=e.model, pretrained=e.pretrained,
                 device=self.embedder.device, dim=self.embedder.dim,
                 duration_ms=round((time.perf_counter() - started) * 1000, 1))


def embed_batch(cfg: Config, holder: EmbedderHolder, items: Sequence[tuple[int, str]]) -> int:
    """Embed a batch of (image id, sha256); returns how many vectors were stored."""
    from watcherd.media.embeddings import to_blob
    from watcherd.media.images import decode

    started = time.perf_counter()
    conn = database(str(cfg.database.path))
    with holder.lock:  # one batch at a time, whichever thread flushes
        claims = [c for i, s in items
                  if (c := claim(conn, "embedding", i, s, cfg.broker.max_attempts)) is not None]
        if not claims:
            return 0
        embedder = holder.embedder
        if embedder is None:
            reason = f"embedding model could not be loaded: {holder.error}"
            for c in claims:
                with_db_retry(lambda c=c: db.fail(conn, "embedding", c.image_id, c.sha256, reason))
            return 0
        tensors: list[Any] = []
        ready: list[tuple[Claim, Any]] = []
        for c in claims:
            try:
                decoded = decode(c.data, max_pixels=cfg.images.max_pixels,
                                 draft_size=embedder.input_size)
            except ImageError as exc:
                reason = str(exc)
                with_db_retry(lambda c=c, reason=reason: db.fail(
                    conn, "embedding", c.image_id, c.sha256, reason))
                log.warning("failed", image_id=c.image_id, path=c.path, task="embedding",
                            reason=reason)
                continue
            tensors.append(embedder.preprocess(decoded.image))
            ready.append((c, decoded))
        rows: list[db.EmbeddingRow] = []
        bs = cfg.embeddings.batch_size
        for start in range(0, len(tensors), bs):
            chunk = ready[start:start + bs]
            try:
                vectors = encode_splitting(embedder, tensors[start:start + bs])
            except Exception as exc:  # a bug or a resource problem: say so on the rows
                reason = _internal(exc)
                log.error("embedding failed", task="embedding", reason=reason, exc_info=True,
                          image_ids=[c.image_id for c, _ in chunk])
                for c, _ in chunk:
                    with_db_retry(lambda c=c, reason=reason: db.fail(
                        conn, "embedding", c.image_id, c.sha256, reason))
                continue
            for (c, d), v in zip(chunk, vectors, strict=True):
                rows.append(db.EmbeddingRow(c.image_id, c.sha256, to_blob(v), d.width, d.height,
                                            d.format))
        saved = with_db_retry(lambda: db.save_embeddings(
            conn, embedder.model, embedder.pretrained, embedder.dim, rows))
    ms = (time.perf_counter() - started) * 1000
    log.info("embeddings done", task="embedding", batch=len(items), saved=saved,
             image_ids=[r.image_id for r in rows], duration_ms=round(ms, 1))
    return saved


def register(app: Celery, cfg: Config, holder: EmbedderHolder | None = None) -> None:
    """Register both tasks on ``app``. The embedding worker passes its loaded model holder."""
    from celery_batches import Batches

    @app.task(name=THUMBNAIL_TASK, acks_late=True, autoretry_for=(sqlite3.OperationalError,),
              retry_backoff=1, retry_backoff_max=30, max_retries=5)
    def thumbnail(image_id: int, sha256: str) -> str:
        return thumbnail_one(cfg, image_id, sha256)

    the_holder = holder or EmbedderHolder()

    @app.task(name=EMBED_TASK, base=Batches, acks_late=True,
              flush_every=cfg.embeddings.batch_size,
              flush_interval=max(cfg.embeddings.max_wait_ms, 1) / 1000)
    def embed(requests: Sequence[Any]) -> None:
        items = []
        for r in requests:
            args = list(r.args) + [r.kwargs.get(k) for k in ("image_id", "sha256") if k in r.kwargs]
            items.append((int(args[0]), str(args[1])))
        embed_batch(cfg, the_holder, items)

    del thumbnail, embed


def record_worker(cfg: Config, role: str, state: str, message: str | None = None) -> None:
    conn = database(str(cfg.database.path))
    with_db_retry(lambda: db.set_worker_state(conn, role, os.getpid(), socket.gethostname(),
                                              state, message))
