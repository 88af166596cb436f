"""The embedding task's steps: claim, prepare (decode one photo down to the model's input),
encode the batch, save.

Memory: a photo's bytes and its decoded image live only while that photo is prepared; the
batch keeps only the model-sized tensors (3 x 224 x 224 float32, 0.6 MB each for ViT-B-32).

Blame: each photo is marked busy while it is read and decoded (a decoder crash or the OOM
killer there blames that photo alone), the prepared batch while it is encoded. Each step carries
``[embeddings] step_time_limit_seconds``: a step still running past it (a read stuck on a dead
mount, a pathological file, a stopped process) is ended by the watcher from outside, and only
that step's photos are charged (``watcherd.queue.liveness``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlite_utils

from watcherd import logs
from watcherd.config import Config
from watcherd.media.images import ImageError
from watcherd.store import db
from watcherd.worker.claim import Claim, claim, internal_reason
from watcherd.worker.markers import Markers

if TYPE_CHECKING:
    from watcherd.media.embeddings import Embedder

log = logs.get("watcherd.worker.embedding")


class EmbedderHolder:
    """The embedding worker's model, loaded once per process before the worker consumes."""

    def __init__(self) -> None:
        self.embedder: Embedder | None = None
        self.error: str | None = None
        self.lock = threading.Lock()  # one batch at a time, whichever thread flushes

    def load(self, cfg: Config) -> None:
        from watcherd.media.embeddings import Embedder, ModelLoadError

        e = cfg.embeddings
        started = time.perf_counter()
        try:
            self.embedder = Embedder(e.model, e.pretrained or None, e.device, e.precision)
        except ModelLoadError as exc:
            self.error = str(exc)
            log.error("embedding model could not be loaded; every embedding will be marked "
                      "failed until the config is fixed and the worker restarted",
                      model=e.model, pretrained=e.pretrained, reason=self.error)
            return
        log.info("embedding model loaded", model=e.model, pretrained=e.pretrained,
                 device=self.embedder.device, precision=self.embedder.precision,
                 dim=self.embedder.dim,
                 duration_ms=round((time.perf_counter() - started) * 1000, 1))


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


def prepare(embedder: Embedder, c: Claim, max_pixels: int) -> Prepared:
    """Decode (JPEG: drafted to the model's input scale) and preprocess one photo. Raises
    ImageError for a bad file."""
    from watcherd.media.images import decode

    decoded = decode(c.data, max_pixels=max_pixels, draft_size=embedder.input_size)
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


def save(conn: sqlite_utils.Database, embedder: Embedder, prepared: Sequence[Prepared],
         vectors: Any) -> int:
    from watcherd.media.embeddings import to_blob

    rows = [db.EmbeddingRow(p.image_id, p.sha256, to_blob(v), p.width, p.height, p.format)
            for p, v in zip(prepared, vectors, strict=True)]
    return db.save_embeddings(conn, embedder.model, embedder.pretrained, embedder.dim, rows,
                              embedder.precision)


@dataclass
class BatchResult:
    saved: int = 0
    failed: int = 0
    skipped: int = 0  # nothing to do: stale, done, deleted, gone


def embed_batch(cfg: Config, conn: sqlite_utils.Database, holder: EmbedderHolder,
                markers: Markers, items: Sequence[tuple[int, str]]) -> BatchResult:
    """Embed a batch of (image id, sha256). Two messages for the same photo in one batch (a
    redelivery next to a re-send) compute it once."""
    started = time.perf_counter()
    result = BatchResult(skipped=len(items) - len(set(items)))
    items = list(dict.fromkeys(items))
    with holder.lock:
        embedder = holder.embedder
        if embedder is None:
            reason = f"embedding model could not be loaded: {holder.error}"
            for image_id, sha256 in items:
                if db.begin_task(conn, "embedding", image_id, sha256) is not None:
                    db.fail(conn, "embedding", image_id, sha256, reason)
                    result.failed += 1
            return result
        try:
            prepared = _prepare_all(cfg, conn, embedder, markers, items, result)
            computed = _encode_all(cfg, conn, embedder, markers, prepared, result)
        finally:
            markers.idle("embedding")  # whatever happened, no step is standing any more
    if not computed:
        return result
    log.info("embeddings done", task="embedding", batch=len(items), saved=result.saved,
             image_ids=computed, duration_ms=round((time.perf_counter() - started) * 1000, 1))
    return result


def _prepare_all(cfg: Config, conn: sqlite_utils.Database, embedder: Embedder, markers: Markers,
                 items: Sequence[tuple[int, str]], result: BatchResult) -> list[Prepared]:
    """Claim and prepare each photo in turn, one photo's bytes in memory at a time."""
    prepared: list[Prepared] = []
    limit = cfg.embeddings.step_time_limit_seconds
    for image_id, sha256 in items:
        c = claim(conn, "embedding", image_id, sha256,
                  before_read=lambda i=(image_id, sha256): markers.busy("embedding", [i],
                                                                         limit=limit))
        if c is None:
            result.skipped += 1
            continue
        try:
            prepared.append(prepare(embedder, c, cfg.images.max_pixels))
        except ImageError as exc:
            reason = str(exc)
            db.fail(conn, "embedding", image_id, sha256, reason)
            log.warning("failed", image_id=image_id, path=c.path, task="embedding",
                        reason=reason)
            result.failed += 1
        del c  # its bytes go now, before the next photo is read
    return prepared


def _encode_all(cfg: Config, conn: sqlite_utils.Database, embedder: Embedder,
                markers: Markers, prepared: Sequence[Prepared], result: BatchResult) -> list[int]:
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
                db.fail(conn, "embedding", p.image_id, p.sha256, reason)
            result.failed += len(chunk)
            continue
        n = save(conn, embedder, chunk, vectors)
        result.saved += n
        result.skipped += len(chunk) - n
        computed += [p.image_id for p in chunk]
    return computed
