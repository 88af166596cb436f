"""A photo's metadata, read from the bytes its step already holds (no second read of the
photo; its XMP sidecar, when there is one, is read beside it), and the metadata-only step
(``watcherd.metadata``) for photos whose pixels are done: the backfill of a library made
before metadata existed, and sidecars written or changed later.

Reading never fails a photo: whatever cannot be read goes to ``metadata.error``."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from billiard.exceptions import SoftTimeLimitExceeded

from watcherd import logs
from watcherd.formats import extension, kind_of
from watcherd.media.images import ImageError
from watcherd.metadata import live, places, sidecar, zones
from watcherd.metadata.extract import extract
from watcherd.metadata.fields import Metadata
from watcherd.metadata.video import extract_video
from watcherd.store import metadata as stored
from watcherd.worker.intake import internal_reason, read_current

if TYPE_CHECKING:
    from watcherd.media.video import VideoInfo

log = logs.get("watcherd.worker.metadata")


def warm() -> None:
    """Load the places table and the time-zone polygons now: in the prefork parent, so its
    pool children share them (copy-on-write) instead of each loading its own copy (0.3 s and
    about 60 MB each) at its first photo with a GPS position."""
    started = time.perf_counter()
    places.places()
    zones.zone_at(38.7, -9.1)
    log.debug("places loaded", duration_ms=round((time.perf_counter() - started) * 1000, 1))


def read_metadata(path: str, data: bytes, mtime: float | None, *,
                  video: VideoInfo | None = None) -> Metadata:
    """What the photo at ``path`` (its bytes ``data``) and its sidecar say; for a video, what
    its container said (``video``, from probing or decoding it: None when it could not be
    read)."""
    try:
        found = sidecar.read(path)
        side = found[1] if found else None
        if kind_of(path) == "video":
            if video is None:  # its step failed: the reason is on the row
                return replace(extract_video({}, mtime=mtime, sidecar=side),
                               error="video unreadable")
            return extract_video(video.tags, codec=video.codec, fps=video.fps, mtime=mtime,
                                 sidecar=side)
        return extract(data, mtime=mtime, sidecar=side)
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:  # a bug: the photo goes on, the log has the traceback
        log.warning("metadata not read", path=path, exc_info=exc)
        return Metadata(error=internal_reason(exc))


def _probe(path: str) -> VideoInfo | None:
    from watcherd.media.video import probe  # PyAV: imported by the processes that meet a video

    try:
        return probe(path)
    except (ImageError, OSError):  # the row says why after its next thumbnail step
        return None


def content_identifier(path: str, data: bytes, video: VideoInfo | None) -> str | None:
    """The Apple content identifier of a Live Photo's still (HEIC/JPEG) or clip (MOV)."""
    try:
        if video is not None:
            return live.video_identifier(video.tags)
        if extension(path) in ("heic", "heif", "jpg", "jpeg"):
            return live.still_identifier(data)
    except Exception as exc:  # a bug: the pair is made by name alone
        log.warning("content identifier not read", path=path, exc_info=exc)
    return None


def metadata_one(conn: sqlite3.Connection, image_id: int, sha256: str) -> str:
    """One photo's metadata without its pixels: "done", "stale" (changed or gone) or
    "skipped" (no longer due)."""
    started = time.perf_counter()
    found = stored.begin(conn, image_id, sha256)
    if found is None:
        return "skipped"
    path, _ = found
    try:
        current = read_current(conn, image_id, sha256, path)  # the thumbnail step's read
    except FileNotFoundError:  # gone: the watcher records it (or its next scan)
        stored.drop_due(conn, image_id, sha256)
        return "stale"
    except OSError as exc:
        reason = f"unreadable: {exc.strerror or exc}"
        log.warning("metadata not read", image_id=image_id, path=path, reason=reason)
        stored.save(conn, image_id, sha256, Metadata(error=reason).row())
        return "done"
    if current is None:  # replaced: its new content's step reads it
        stored.drop_due(conn, image_id, sha256)
        return "stale"
    data, mtime = current
    md = read_metadata(path, data, mtime,
                       video=_probe(path) if kind_of(path) == "video" else None)
    saved = stored.save(conn, image_id, sha256, md.row())
    log.info("metadata done" if saved else "metadata stale, dropped", image_id=image_id,
             path=path, task="metadata", error=md.error,
             duration_ms=round((time.perf_counter() - started) * 1000, 1))
    return "done" if saved else "stale"
