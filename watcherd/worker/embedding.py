"""The embedding task's steps: read the photo, prepare (decode one photo down to the model's input),
encode the batch, save.

Memory: a photo's bytes and its decoded image live only while that photo is prepared; the
batch keeps only the model-sized tensors (3 x 224 x 224 float32, 0.6 MB each for ViT-B-32).

Blame: each photo is marked busy while it is read and decoded (a decoder crash or the OOM
killer there blames that photo alone), the prepared batch while it is encoded. Each step carries
``[embeddings] step_time_limit_seconds``: a step still running past it (a read stuck on a dead
mount, a pathological file, a stopped process) is ended by the watcher from outside, and only
that step's photos are charged (``watcherd.fleet.liveness``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from watcherd import logs
from watcherd.config import Config
from watcherd.fleet.busy import Markers
from watcherd.media.images import ImageError
from watcherd.media.options import Options
from watcherd.media.sources import pixels
from watcherd.store import outcomes, settings
from watcherd.worker.intake import TaskFile, internal_reason, options, read_marked

if TYPE_CHECKING:
    from watcherd.media.embeddings import Embedder
    from watcherd.media.identity import ModelIdentity

log = logs.get("watcherd.worker.embedding")

RETRY_FIRST_S = 2.0  # a model that could not be loaded: first retry after this long
RETRY_MAX_S = 60.0  # then doubling up to this


class EmbedderHolder:
    """The embedding worker's model, loaded once per process before the worker consumes."""

    def __init__(self) -> None:
        self.embedder: Embedder | None = None
        self.identity: ModelIdentity | None = None  # what its vectors are recorded as
        self.error: str | None = None
        self.refusal: str | None = None  # the last task refused for another model, why
        self.refused = 0
        self.notify: Callable[[str | None], None] | None = None  # the heartbeat's message
        self.lock = threading.Lock()  # one batch at a time, whichever thread flushes

    @property
    def key(self) -> tuple[str, str] | None:
        return None if self.identity is None else (self.identity.model, self.identity.pretrained)

    def load(self, cfg: Config, conn: sqlite3.Connection | None = None) -> None:
        if self.error is None:  # the first try (the retries say only what changed)
            log.info("loading the embedding model", model=cfg.embeddings.model,
                     pretrained=cfg.embeddings.pretrained, device=cfg.embeddings.device)
        from watcherd.media.embeddings import Embedder, ModelLoadError
        from watcherd.media.identity import identify

        e = cfg.embeddings
        started = time.perf_counter()
        try:
            embedder = Embedder(e.model, e.pretrained or None, e.device, e.precision)
            identity = identify(e.model, e.pretrained,
                                settings.Fingerprints(conn) if conn is not None else None)
        except (ModelLoadError, OSError) as exc:
            if str(exc) != self.error:  # once per distinct reason, not at every retry
                log.error("embedding model could not be loaded; embeddings are marked failed "
                          "until it loads (the worker tries again on its own, then queues "
                          "them again)", model=e.model, pretrained=e.pretrained,
                          reason=str(exc))
            self.error = str(exc)
            return
        with self.lock:
            self.embedder, self.identity, self.error = embedder, identity, None
        log.info("embedding model loaded", model=identity.model, pretrained=identity.pretrained,
                 source=identity.source, device=embedder.device, precision=embedder.precision,
                 dim=embedder.dim, duration_ms=round((time.perf_counter() - started) * 1000, 1))
        if conn is not None:
            again = outcomes.requeue_model_failures(conn)
            if again:
                log.info("photos that failed because the model could not be loaded are queued "
                         "again", photos=again)

    def keep_loading(self, cfg: Config, conn: Callable[[], sqlite3.Connection | None],
                     on_loaded: Callable[[], None], stop: threading.Event) -> threading.Thread:
        """Try loading again in a daemon thread, with backoff (``RETRY_FIRST_S`` doubling up
        to ``RETRY_MAX_S``), until it loads or ``stop`` is set; then ``on_loaded()``."""
        def run() -> None:
            delay = RETRY_FIRST_S
            while self.embedder is None and not stop.wait(delay):
                log.info("trying to load the embedding model again", model=cfg.embeddings.model,
                         after_s=delay)
                self.load(cfg, conn())
                delay = min(delay * 2, RETRY_MAX_S)
            if self.embedder is not None:
                on_loaded()

        thread = threading.Thread(target=run, name="watcherd-model-retry", daemon=True)
        thread.start()
        return thread

    def refuse(self, expected: tuple[str, str], count: int) -> None:
        """Tasks for another model than this worker's: never recorded with its vectors."""
        self.refused += count
        self.refusal = (f"refusing tasks for model {expected[0]!r} pretrained {expected[1]!r}: "
                        f"this worker runs {self.key[0]!r} pretrained {self.key[1]!r}"
                        if self.key else None)
        log.warning("tasks refused: they expect another model than this worker's (is this "
                    "worker's [embeddings] model the watcher's?)", expected_model=expected[0],
                    expected_pretrained=expected[1],
                    model=self.key[0] if self.key else None,
                    pretrained=self.key[1] if self.key else None, count=count,
                    refused_total=self.refused)
        if self.notify is not None:
            self.notify(f"{self.refusal} ({self.refused} so far)")


@dataclass
class Prepared:
    """One photo ready for the model: its tensor and what the row records about the image."""

    image_id: int
    sha256: str
    path: str
    tensor: Any
    width: int
    height: int
    format: str

    @property
    def item(self) -> tuple[int, str]:
        return self.image_id, self.sha256


def prepare(embedder: Embedder, c: TaskFile, opts: Options) -> Prepared:
    """Decode (JPEG: drafted to the model's input scale; a RAW's preview or demosaic, a video's
    poster frame, as for its thumbnails) and preprocess one photo. Raises ImageError for a bad
    file."""
    decoded = pixels(c.path, c.data, opts, draft_size=embedder.input_size).decoded
    return Prepared(c.image_id, c.sha256, c.path, embedder.preprocess(decoded.image),
                    decoded.width, decoded.height, decoded.format)


def encode(embedder: Embedder, tensors: Sequence[Any]) -> Any:
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
        return np.concatenate([encode(embedder, tensors[:half]),
                               encode(embedder, tensors[half:])])


def save(conn: sqlite3.Connection, embedder: Embedder, key: tuple[str, str],
         prepared: Sequence[Prepared], vectors: Any) -> int:
    """Record the vectors under the model's identity ``key`` (the model the requests asked
    for: a request for another model is refused before it gets here); a photo changed,
    deleted or no longer pending meanwhile is dropped."""
    from watcherd.media.embeddings import to_blob

    rows = [outcomes.EmbeddingRow(p.image_id, p.sha256, to_blob(v), p.width, p.height, p.format)
            for p, v in zip(prepared, vectors, strict=True)]
    batch = outcomes.Vectors(key[0], key[1], embedder.dim, embedder.precision, rows)
    return outcomes.save_vectors(conn, [batch], configured=key).saved


@dataclass
class BatchResult:
    saved: int = 0
    failed: int = 0
    skipped: int = 0  # nothing to do: stale, done, deleted, gone


def embed_batch(cfg: Config, conn: sqlite3.Connection, holder: EmbedderHolder,
                markers: Markers, items: Sequence[tuple[int, str]]) -> BatchResult:
    """Embed a batch of (image id, sha256). Two messages for the same photo in one batch (a
    redelivery next to a re-send) compute it once."""
    started = time.perf_counter()
    result = BatchResult(skipped=len(items) - len(set(items)))
    items = list(dict.fromkeys(items))
    with holder.lock:
        embedder, key = holder.embedder, holder.key
        if embedder is None or key is None:
            reason = f"{outcomes.MODEL_UNAVAILABLE}: {holder.error}"
            for image_id, sha256 in items:
                if outcomes.begin_task(conn, "embedding", image_id, sha256) is not None:
                    outcomes.fail(conn, "embedding", image_id, sha256, reason)
                    result.failed += 1
            if result.failed:  # queued again once the model loads (requeue_model_failures)
                log.warning("embeddings failed: the model is not loaded", task="embedding",
                            batch=len(items), failed=result.failed, reason=holder.error)
            return result
        try:
            prepared = _prepare_all(cfg, conn, embedder, markers, items, result)
            computed = _encode_all(cfg, conn, embedder, key, markers, prepared, result)
        finally:
            markers.idle("embedding")  # whatever happened, no step is standing any more
    if not computed:
        return result
    log.info("embeddings done", task="embedding", batch=len(items), saved=result.saved,
             image_ids=computed, duration_ms=round((time.perf_counter() - started) * 1000, 1))
    return result


def _prepare_all(cfg: Config, conn: sqlite3.Connection, embedder: Embedder, markers: Markers,
                 items: Sequence[tuple[int, str]], result: BatchResult) -> list[Prepared]:
    """TaskFile and prepare each photo in turn, one photo's bytes in memory at a time."""
    prepared: list[Prepared] = []
    limit = cfg.embeddings.step_time_limit_seconds
    for image_id, sha256 in items:
        c = read_marked(conn, markers, "embedding", image_id, sha256, limit=limit,
                         deadline=0.0)  # 0: the limit from now
        if c is None:
            result.skipped += 1
            continue
        try:
            prepared.append(prepare(embedder, c, options(cfg)))
        except FileNotFoundError:  # a video, gone since it was checked: the watcher sees it
            log.info("file gone before processing", image_id=image_id, path=c.path,
                     task="embedding")
            result.skipped += 1
        except ImageError as exc:
            reason = str(exc)
            outcomes.fail(conn, "embedding", image_id, sha256, reason)
            log.warning("failed", image_id=image_id, path=c.path, task="embedding",
                        reason=reason)
            result.failed += 1
        del c  # its bytes go now, before the next photo is read
    return prepared


def _encode_all(cfg: Config, conn: sqlite3.Connection, embedder: Embedder,
                key: tuple[str, str], markers: Markers, prepared: Sequence[Prepared],
                result: BatchResult) -> list[int]:
    """Encode and save in chunks of ``batch_size``; the ids whose vectors were computed."""
    computed: list[int] = []
    bs = cfg.embeddings.batch_size
    for start in range(0, len(prepared), bs):
        chunk = prepared[start:start + bs]
        try:
            with markers.step("embedding", [p.item for p in chunk],
                              limit=cfg.embeddings.step_time_limit_seconds):
                vectors = encode(embedder, [p.tensor for p in chunk])
        except Exception as exc:  # a bug or a resource problem: say so on the rows
            reason = internal_reason(exc)
            log.error("embedding failed", task="embedding", reason=reason, exc_info=True,
                      image_ids=[p.image_id for p in chunk])
            for p in chunk:
                outcomes.fail(conn, "embedding", p.image_id, p.sha256, reason)
            result.failed += len(chunk)
            continue
        n = save(conn, embedder, key, chunk, vectors)
        result.saved += n
        result.skipped += len(chunk) - n
        computed += [p.image_id for p in chunk]
    return computed
