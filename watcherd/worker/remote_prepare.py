"""The photo server's half of a remote embedding (``[embeddings] remote = true``), run by the
thumbnail worker: read the photo (its embedding pending), decode it drafted to the model's
input, resize and crop it exactly as the model's preprocess would
(``watcherd.media.clipinput``), and send it on the embeddings queue (``watcherd.dispatch.remote``).

The decode is marked busy as an *embedding* step: a decoder crash or the OOM killer here counts
an embedding attempt against this photo, as it would on a local embedding worker.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

from watcherd import logs
from watcherd.config import Config
from watcherd.dispatch import remote
from watcherd.fleet.busy import Markers
from watcherd.media import clipinput
from watcherd.media.images import ImageError
from watcherd.media.sources import pixels as source_pixels
from watcherd.store import outcomes
from watcherd.worker.intake import internal_reason, options, read_marked

log = logs.get("watcherd.worker.remote_prepare")

Send = Callable[[int, str, dict[str, Any]], None]  # image id, sha256, the embed task's job


def prepare_one(cfg: Config, conn: sqlite3.Connection, markers: Markers, send: Send,
                image_id: int, sha256: str, raw_job: Any, *, deadline: float = 0.0) -> str:
    """"sent", "failed" (a bad photo, or a bad job) or "skipped" (nothing to do).
    ``deadline``: when Celery's hard time limit ends the task (``time.time()``; 0: none); the
    busy markers carry it, so a kill past it is charged as a timeout, read included."""
    started = time.perf_counter()
    try:
        job = remote.parse_job(raw_job, need_pixels=False)
    except remote.BadMessage as exc:  # a watcher of another version: say it on the row
        outcomes.fail(conn, "embedding", image_id, sha256, f"cannot prepare: {exc}")
        log.error("prepare job refused", image_id=image_id, task="embedding", reason=str(exc))
        return "failed"
    limit = cfg.thumbnails.time_limit_seconds if deadline else 0.0
    error: Exception | None = None
    try:
        c = read_marked(conn, markers, "embedding", image_id, sha256, limit=limit,
                         deadline=deadline)
        if c is None:
            return "skipped"
        try:
            decoded = source_pixels(c.path, c.data, options(cfg), draft_size=job.spec.draft).decoded
            pixels = clipinput.to_wire(clipinput.prepare(decoded.image, job.spec))
        except Exception as exc:
            error = exc
    finally:
        markers.idle("embedding")  # the step (read and decode) is over
    c.data = b""  # the photo's bytes go before the message is sent
    if isinstance(error, FileNotFoundError):  # a video, gone since it was checked
        log.info("file gone before processing", image_id=image_id, path=c.path,
                 task="embedding")
        return "skipped"
    if error is not None:
        reason = str(error) if isinstance(error, ImageError) else internal_reason(error)
        outcomes.fail(conn, "embedding", image_id, sha256, reason)
        log.warning("failed", image_id=image_id, path=c.path, task="embedding", reason=reason,
                    exc_info=error if not isinstance(error, ImageError) else None)
        return "failed"
    send(image_id, sha256, remote.with_pixels(raw_job, pixels, decoded.width, decoded.height,
                                              decoded.format))
    log.info("embedding input sent", image_id=image_id, path=c.path, task="embedding",
             bytes=len(pixels), duration_ms=round((time.perf_counter() - started) * 1000, 1))
    return "sent"
