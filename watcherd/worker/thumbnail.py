"""The thumbnail task's steps: claim, render (marked busy: a decoder crash or the OOM killer
blames this photo), save."""

from __future__ import annotations

import time

import sqlite_utils

from watcherd import logs
from watcherd.config import Config
from watcherd.media.images import ImageError
from watcherd.media.thumbnails import ThumbnailResult, make_thumbnails
from watcherd.store import db
from watcherd.worker.claim import Claim, claim, internal_reason
from watcherd.worker.markers import Markers

log = logs.get("watcherd.worker.thumbnail")


def render(cfg: Config, c: Claim) -> ThumbnailResult:
    t = cfg.thumbnails
    return make_thumbnails(c.data, t.sizes, fmt=t.format, quality=t.quality,
                           max_pixels=cfg.images.max_pixels)


def save(conn: sqlite_utils.Database, c: Claim, result: ThumbnailResult) -> bool:
    rows = [db.ThumbRow(x.size, x.width, x.height, x.format, x.data) for x in result.thumbnails]
    return db.save_thumbnails(conn, c.image_id, c.sha256, result.width, result.height,
                              result.format, rows)


def thumbnail_one(cfg: Config, conn: sqlite_utils.Database, markers: Markers, image_id: int,
                  sha256: str) -> str:
    """One photo's thumbnails: "done", "stale" (its content changed meanwhile), "failed" or
    "skipped" (nothing to do)."""
    started = time.perf_counter()
    c = claim(conn, "thumbnail", image_id, sha256)
    if c is None:
        return "skipped"
    error: Exception | None = None
    with markers.step("thumbnail", [c.item]):
        try:
            result = render(cfg, c)
        except Exception as exc:
            error = exc
    if error is not None:
        # ImageError: the file's fault. Anything else is a bug: the traceback goes to the log,
        # and the row says what happened instead of being retried until it "gives up".
        reason = str(error) if isinstance(error, ImageError) else internal_reason(error)
        db.fail(conn, "thumbnail", image_id, sha256, reason)
        log.warning("failed", image_id=image_id, path=c.path, task="thumbnail", reason=reason,
                    exc_info=error if not isinstance(error, ImageError) else None)
        return "failed"
    saved = save(conn, c, result)
    log.info("thumbnails done" if saved else "thumbnails stale, dropped", image_id=image_id,
             path=c.path, task="thumbnail", sizes=list(cfg.thumbnails.sizes),
             duration_ms=round((time.perf_counter() - started) * 1000, 1))
    return "done" if saved else "stale"
