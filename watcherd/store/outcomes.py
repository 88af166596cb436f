"""The outcome of a photo's work, from the workers' side and the watcher's: checking a task
before it runs, attempts charged when a worker dies or times out, failures, a note on a row
that stays pending, and storing thumbnails and vectors. Every result is kept only for the row
it was computed for: same content (sha256), not deleted."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from watcherd.store import metadata, shots
from watcherd.store.schema import BACKLOG, Kind, now_iso, transaction


def begin_task(conn: sqlite3.Connection, kind: Kind, image_id: int, sha256: str) -> str | None:
    """Check a task before working on it: the file's path, or None when there is nothing to do
    (a stale message for other content, already done or failed, deleted). Reads only: attempts
    are counted by the watcher when a worker dies (``died_while_processing``), never here, so a
    redelivered message or a retried task costs no attempt."""
    row = conn.execute(
        f"SELECT path FROM images WHERE id = ? AND sha256 = ? AND {kind}_status = 'pending' "
        "AND deleted_at IS NULL", (image_id, sha256),
    ).fetchone()
    return None if row is None else str(row[0])


def recorded_stat(conn: sqlite3.Connection, image_id: int) -> tuple[int, float] | None:
    """The (size, mtime) recorded with the row's content."""
    row = conn.execute("SELECT size, mtime FROM images WHERE id = ?", (image_id,)).fetchone()
    return None if row is None else (row[0], row[1])


def died_reason(times: int) -> str:
    what = "once" if times == 1 else f"{times} times"
    return (f"the worker died {what} while processing this photo (a decoder crash or the "
            "out-of-memory killer?)")


def timed_out_reason(limit: float) -> Callable[[int], str]:
    """The reason for a photo whose last attempt ran past its time limit of ``limit`` s."""
    def reason(times: int) -> str:
        what = "" if times == 1 else f" ({times} attempts)"
        return (f"timed out after {limit:g} s{what}: a pathological file, or a read stuck on "
                "its disk?")
    return reason


@dataclass(frozen=True)
class Charged:
    image_id: int
    attempts: int
    failed: bool


def died_while_processing(conn: sqlite3.Connection, kind: Kind,
                          items: Iterable[tuple[int, str]], max_attempts: int,
                          reason: Callable[[int], str] = died_reason) -> list[Charged]:
    """A worker process died (or timed out) while processing these photos: one more attempt for
    each that is still pending (same content, not deleted); at ``max_attempts`` the row becomes
    failed with ``reason(attempts)``."""
    out: list[Charged] = []
    now = now_iso()
    with transaction(conn) as c:
        for image_id, sha256 in items:
            row = c.execute(
                f"UPDATE images SET {kind}_attempts = {kind}_attempts + 1, updated_at = ? "
                f"WHERE id = ? AND sha256 = ? AND {kind}_status = 'pending' "
                f"AND deleted_at IS NULL RETURNING {kind}_attempts", (now, image_id, sha256),
            ).fetchone()
            if row is None:
                continue
            attempts = int(row[0])
            failed = attempts >= max_attempts
            if failed:
                c.execute(f"UPDATE images SET {kind}_status = 'failed', {kind}_error = ? "
                          "WHERE id = ?", (reason(attempts), image_id))
                if kind == "thumbnail":
                    shots.relink_ids(c, [image_id], now)
            out.append(Charged(image_id, attempts, failed))
    return out


def still_queued(conn: sqlite3.Connection, kind: Kind, items: Iterable[tuple[int, str]]) -> int:
    """A live worker holds these photos' messages: they are not lost, so the outbox must not
    send them again however long they wait (their ``*_queued_at`` moves to now)."""
    now = now_iso()
    with transaction(conn) as c:
        return sum(c.execute(
            f"UPDATE images SET {kind}_queued_at = ? WHERE id = ? AND sha256 = ? "
            f"AND {kind}_status = 'pending' AND {kind}_queued_at IS NOT NULL", (now, i, s)
        ).rowcount for i, s in items)


def note_error(conn: sqlite3.Connection, kind: Kind, image_id: int, sha256: str,
               reason: str) -> bool:
    """Say on a row that stays pending why it is not done yet (e.g. the database was locked)."""
    with transaction(conn) as c:
        return c.execute(
            f"UPDATE images SET {kind}_error = ?, updated_at = ? WHERE id = ? AND sha256 = ? "
            f"AND {kind}_status = 'pending'", (reason[:500], now_iso(), image_id, sha256),
        ).rowcount > 0


def fail(conn: sqlite3.Connection, kind: Kind, image_id: int, sha256: str, reason: str) -> bool:
    now = now_iso()
    with transaction(conn) as c:
        failed = c.execute(
            f"UPDATE images SET {kind}_status = 'failed', {kind}_error = ?, updated_at = ? "
            "WHERE id = ? AND sha256 = ?", (reason[:500], now, image_id, sha256),
        ).rowcount > 0
        if failed and kind == "thumbnail":  # a still that cannot show is no shot's face
            shots.relink_ids(c, [image_id], now)
        return failed


@dataclass(frozen=True)
class ThumbRow:
    size: int
    width: int
    height: int
    format: str
    data: bytes


def save_thumbnails(conn: sqlite3.Connection, image_id: int, sha256: str, width: int,
                    height: int, fmt: str, thumbs: Sequence[ThumbRow],
                    metadata_values: Sequence[Any] | None = None, *, decode: str | None = None,
                    duration: float | None = None) -> bool:
    """Store thumbnails (replacing those of the same sizes), the file's size, type and (RAW,
    video) how its pixels were obtained, and, in the same transaction, its metadata
    (``watcherd.store.metadata``); a no-op (False) if the row's content changed meanwhile."""
    now = now_iso()
    with transaction(conn) as c:
        ok = c.execute(
            "UPDATE images SET thumbnail_status = 'done', thumbnail_error = NULL, width = ?, "
            "height = ?, format = ?, decode = ?, duration = ?, updated_at = ? "
            "WHERE id = ? AND sha256 = ?",
            (width, height, fmt, decode, duration, now, image_id, sha256),
        ).rowcount > 0
        if ok:  # sizes not written now (no longer configured) stay until purged
            c.executemany(
                "INSERT OR REPLACE INTO thumbnails (image_id, size, width, height, format, "
                "data, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(image_id, t.size, t.width, t.height, t.format, t.data, now) for t in thumbs],
            )
            if metadata_values is not None:
                metadata.write(c, image_id, metadata_values)
        return ok


@dataclass(frozen=True)
class EmbeddingRow:
    image_id: int
    sha256: str
    vector: bytes
    width: int | None = None
    height: int | None = None
    format: str | None = None


@dataclass(frozen=True)
class Vectors:
    """One batch of vectors computed elsewhere (``[embeddings] remote``), all of one model."""

    model: str
    pretrained: str
    dim: int
    precision: str | None
    rows: Sequence[EmbeddingRow]


@dataclass
class Applied:
    saved: int = 0
    failed: int = 0
    dropped: int = 0  # the photo changed, was deleted or was done meanwhile


def save_vectors(conn: sqlite3.Connection, batches: Sequence[Vectors], *,
                 configured: tuple[str, str],
                 failures: Sequence[tuple[int, str, str]] = ()) -> Applied:
    """The one writer of vectors: the embedding worker's batches and the remote workers'
    results the watcher applies. In one transaction, a vector is kept only for a row still
    pending, with the same sha256, not deleted, and only from the ``configured`` model
    (model, pretrained); anything else is dropped and counted (the photo changed, was deleted
    or done meanwhile, or the model is not the one the statuses describe). ``failures``
    (id, sha256, reason) likewise. Idempotent: applying the same results twice changes
    nothing the second time."""
    now = now_iso()
    out = Applied()
    with transaction(conn) as c:
        for b in batches:
            if (b.model, b.pretrained) != tuple(configured):
                out.dropped += len(b.rows)
                continue
            for r in b.rows:
                if c.execute(
                    "UPDATE images SET embedding_status = 'done', embedding_error = NULL, "
                    "width = coalesce(width, ?), height = coalesce(height, ?), "
                    "format = coalesce(format, ?), updated_at = ? WHERE id = ? AND sha256 = ? "
                    "AND embedding_status = 'pending' AND deleted_at IS NULL",
                    (r.width, r.height, r.format, now, r.image_id, r.sha256),
                ).rowcount == 0:
                    out.dropped += 1
                    continue
                c.execute(
                    "INSERT OR REPLACE INTO embeddings (image_id, model, pretrained, dim, vector, "
                    "created_at, precision) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (r.image_id, b.model, b.pretrained, b.dim, r.vector, now, b.precision),
                )
                out.saved += 1
        for image_id, sha256, reason in failures:
            if c.execute(
                "UPDATE images SET embedding_status = 'failed', embedding_error = ?, "
                "updated_at = ? WHERE id = ? AND sha256 = ? AND embedding_status = 'pending' "
                "AND deleted_at IS NULL", (reason[:500], now, image_id, sha256),
            ).rowcount:
                out.failed += 1
            else:
                out.dropped += 1
    return out


#: The start of ``embedding_error`` for photos failed because the worker could not load its
#: model: once it loads, they are queued again (``requeue_model_failures``).
MODEL_UNAVAILABLE = "embedding model could not be loaded"


def requeue_model_failures(conn: sqlite3.Connection) -> int:
    """Photos failed only because the model could not be loaded: pending again, in the
    backlog (fed behind new photos)."""
    with transaction(conn) as c:
        return c.execute(
            "UPDATE images SET embedding_status = 'pending', embedding_error = NULL, "
            "embedding_queued_at = ?, embedding_attempts = 0, updated_at = ? "
            "WHERE embedding_status = 'failed' AND embedding_error LIKE ? || '%' "
            "AND deleted_at IS NULL AND sha256 IS NOT NULL",
            (BACKLOG, now_iso(), MODEL_UNAVAILABLE)).rowcount
