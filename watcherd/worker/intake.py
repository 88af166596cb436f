"""A task's input: check its row, read its file, make sure the content is the one announced.
(Reading, not claiming: "claim" is the spool's word for taking a message by an exclusive
rename, ``watcherd.broker.spool``.)

Every task is idempotent, keyed by (image id, sha256): a stale or redelivered message finds the
row done, failed, changed or deleted and does nothing (no write: a check costs one read).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from watcherd import logs
from watcherd.config import Config
from watcherd.fleet.busy import Markers
from watcherd.formats import kind_of
from watcherd.media.options import Options
from watcherd.store import outcomes, schema

log = logs.get("watcherd.worker.intake")


@dataclass
class TaskFile:
    """A pending photo's file, read for a task, with the content the message announced."""

    image_id: int
    sha256: str
    path: str
    data: bytes  # empty for a video: it is decoded from its path, never read whole
    mtime: float | None = None  # the file's, when it was read

    @property
    def item(self) -> tuple[int, str]:
        return self.image_id, self.sha256


def read_task_file(conn: sqlite3.Connection, kind: schema.Kind, image_id: int, sha256: str, *,
                   before_read: Callable[[], None] | None = None) -> TaskFile | None:
    """The row's file, read, when there is work to do; None when there is nothing (more) to do
    (an unreadable file has been marked failed). ``before_read`` runs when there is work, before
    the file is read (the busy marker: a read stuck on a dead mount blames this photo)."""
    path = outcomes.begin_task(conn, kind, image_id, sha256)
    if path is None:
        log.debug("nothing to do", image_id=image_id, task=kind)
        return None
    if before_read is not None:
        before_read()
    try:
        current = read_current(conn, image_id, sha256, path)
    except FileNotFoundError:
        # Deleted or moved before its task ran: the watcher records the delete/move.
        log.info("file gone before processing", image_id=image_id, path=path, task=kind)
        return None
    except OSError as exc:
        reason = f"unreadable: {exc.strerror or exc}"
        outcomes.fail(conn, kind, image_id, sha256, reason)
        log.warning("failed", image_id=image_id, path=path, task=kind, reason=reason)
        return None
    if current is None:
        # Replaced since discovery: the watcher re-records it and sends a new message.
        log.info("file changed since discovery, skipped", image_id=image_id, path=path, task=kind)
        return None
    return TaskFile(image_id, sha256, path, *current)


def read_current(conn: sqlite3.Connection, image_id: int, sha256: str,
                 path: str) -> tuple[bytes, float] | None:
    """The file's bytes and mtime when it still holds the content its row recorded, else None;
    OSError goes to the caller. A video is never read whole (it may be 4 GB): its bytes are
    empty, and its size and mtime stand for the content the watcher hashed (it re-records a
    file whose size or mtime changes)."""
    if kind_of(path) == "video":
        st = os.stat(path)
        recorded = outcomes.recorded_stat(conn, image_id)
        return (b"", st.st_mtime) if recorded == (st.st_size, st.st_mtime) else None
    data, mtime = read_with_mtime(path)
    return (data, mtime) if same_content(data, sha256) else None


def read_with_mtime(path: str) -> tuple[bytes, float]:
    """The file's bytes and its mtime at that read (one open; OSError goes to the caller)."""
    with open(path, "rb") as f:
        return f.read(), os.fstat(f.fileno()).st_mtime


def same_content(data: bytes, sha256: str) -> bool:
    return hashlib.sha256(data).hexdigest() == sha256


def options(cfg: Config) -> Options:
    """How the configured worker gets a file's pixels (watcherd.media.sources)."""
    return Options.of(cfg.images.max_pixels, cfg.thumbnails.sizes,
                      cfg.raw.prefer_embedded_preview)


def internal_reason(exc: BaseException) -> str:
    """A row's reason for an error that is not the file's fault (a bug, a resource problem)."""
    return f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}"[:300]


def read_marked(conn: sqlite3.Connection, markers: Markers, kind: schema.Kind, image_id: int,
                sha256: str, *, limit: float, deadline: float) -> TaskFile | None:
    """:func:`read_task_file` for a pool task under Celery's hard limit: its busy marker,
    carrying the limit and the deadline, goes up before the file is read (the caller clears it)."""
    return read_task_file(conn, kind, image_id, sha256,
                 before_read=lambda: markers.busy(kind, [(image_id, sha256)], limit=limit,
                                                  deadline=deadline))
