"""The thumbnail task's steps: read the photo, render (marked busy: a decoder crash or the OOM
killer blames this photo), save.

Time limits (``[thumbnails] soft_time_limit_seconds`` / ``time_limit_seconds``, Celery's): the
busy marker carries the hard limit's deadline, so when Celery kills a pool child past it the
watcher charges the photo as timed out; at the soft limit the task charges it itself
(``timed_out``) through the same attempts counter and reason, then gives the message back."""

from __future__ import annotations

import sqlite3
import time

from billiard.exceptions import SoftTimeLimitExceeded

from watcherd import logs
from watcherd.config import Config
from watcherd.fleet.busy import Markers
from watcherd.media.images import ImageError
from watcherd.media.sources import Pixels, pixels
from watcherd.media.thumbnails import ThumbnailResult, thumbnails_of
from watcherd.metadata.fields import Metadata
from watcherd.store import metadata as stored_metadata
from watcherd.store import outcomes
from watcherd.store import shots as shots_store
from watcherd.worker.intake import TaskFile, internal_reason, options, read_marked
from watcherd.worker.metadata import content_identifier, read_metadata

log = logs.get("watcherd.worker.thumbnail")


def render(cfg: Config, c: TaskFile) -> tuple[ThumbnailResult, Pixels]:
    """The file's pixels (a photo, a RAW's preview or demosaic, a video's poster frame),
    decoded once to about the largest size, and its thumbnails."""
    t = cfg.thumbnails
    got = pixels(c.path, c.data, options(cfg), draft_size=max(t.sizes), to_srgb_now=False)
    return thumbnails_of(got.decoded, t.sizes, fmt=t.format, quality=t.quality), got


def save(conn: sqlite3.Connection, c: TaskFile, result: ThumbnailResult, got: Pixels,
         md: Metadata) -> bool:
    rows = [outcomes.ThumbRow(x.size, x.width, x.height, x.format, x.data)
            for x in result.thumbnails]
    saved = outcomes.save_thumbnails(conn, c.image_id, c.sha256, result.width, result.height,
                                     result.format, rows, md.row(), decode=got.decoded.decode,
                                     duration=got.duration)
    identifier = content_identifier(c.path, c.data, got.video) if saved else None
    if identifier:  # a Live Photo's still or clip: its shot may change
        shots_store.set_identifier(conn, c.image_id, c.path, identifier)
    return saved


def thumbnail_one(cfg: Config, conn: sqlite3.Connection, markers: Markers, image_id: int,
                  sha256: str, *, deadline: float = 0.0) -> str:
    """One photo's thumbnails: "done", "stale" (its content changed meanwhile), "failed" or
    "skipped" (nothing to do). ``deadline``: when Celery's hard time limit ends the task
    (``time.time()``; 0: no limit). SoftTimeLimitExceeded goes to the caller."""
    started = time.perf_counter()
    limit = cfg.thumbnails.time_limit_seconds if deadline else 0.0
    error: Exception | None = None
    try:
        c = read_marked(conn, markers, "thumbnail", image_id, sha256, limit=limit,
                         deadline=deadline)
        if c is None:
            return "skipped"
        got: Pixels | None = None
        try:
            result, got = render(cfg, c)
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:
            error = exc
        # headers only, from the same bytes (a video: what its container said while decoding)
        md = read_metadata(c.path, c.data, c.mtime, video=got.video if got else None)
    finally:
        markers.idle("thumbnail")  # the step (read and render) is over
    if isinstance(error, FileNotFoundError):  # a video, gone since it was checked
        log.info("file gone before processing", image_id=image_id, path=c.path,
                 task="thumbnail")
        return "skipped"
    if error is not None:
        # ImageError: the file's fault. Anything else is a bug: the traceback goes to the log,
        # and the row says what happened instead of being retried until it "gives up".
        reason = str(error) if isinstance(error, ImageError) else internal_reason(error)
        outcomes.fail(conn, "thumbnail", image_id, sha256, reason)
        stored_metadata.save(conn, image_id, sha256, md.row())  # what could be read
        log.warning("failed", image_id=image_id, path=c.path, task="thumbnail", reason=reason,
                    exc_info=error if not isinstance(error, ImageError) else None)
        return "failed"
    assert got is not None
    saved = save(conn, c, result, got, md)
    log.info("thumbnails done" if saved else "thumbnails stale, dropped", image_id=image_id,
             path=c.path, task="thumbnail", sizes=list(cfg.thumbnails.sizes),
             duration_ms=round((time.perf_counter() - started) * 1000, 1))
    return "done" if saved else "stale"


def timed_out(cfg: Config, conn: sqlite3.Connection, image_id: int, sha256: str) -> bool:
    """The soft time limit struck: one more attempt for the photo, like a death (``failed``,
    "timed out after N s", at ``[broker] max_attempts``). True when there is nothing more to do
    (failed now, or no longer pending); else the caller gives the message back."""
    limit = cfg.thumbnails.soft_time_limit_seconds
    charged = outcomes.died_while_processing(conn, "thumbnail", [(image_id, sha256)],
                                       cfg.broker.max_attempts, outcomes.timed_out_reason(limit))
    failed = bool(charged) and charged[0].failed
    log.warning("time limit exceeded", image_id=image_id, task="thumbnail", limit_s=limit,
                attempts=charged[0].attempts if charged else None, failed=failed)
    return failed or not charged
