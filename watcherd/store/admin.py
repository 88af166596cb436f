"""The operator's commands on the database: ``retry`` (re-queue stuck or failed rows),
``purge`` (rows of deleted photos, a model's vectors, thumbnails of a size) and VACUUM."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from watcherd.store import shots
from watcherd.store.schema import BACKLOG, KINDS, iso_ago, now_iso, transaction


def requeue(conn: sqlite3.Connection, *, failed: bool) -> dict[str, int]:
    """Make rows due for dispatch now: pending ones (stuck) and, with ``failed``, failed ones.
    A backlog (a model or settings change) is left to be fed in slices."""
    out: dict[str, int] = {}
    with transaction(conn) as c:
        for kind in KINDS:
            statuses = "('pending', 'failed')" if failed else "('pending')"
            ids = [int(r[0]) for r in c.execute(
                f"UPDATE images SET {kind}_status = 'pending', {kind}_error = NULL, "
                f"{kind}_queued_at = NULL, {kind}_attempts = 0 "
                f"WHERE {kind}_status IN {statuses} AND deleted_at IS NULL "
                f"AND coalesce({kind}_queued_at, '') != '{BACKLOG}' "
                # unhashed (unreadable) rows: the next scan retries them, no message can
                "AND sha256 IS NOT NULL RETURNING id")]
            out[kind] = len(ids)
            if kind == "thumbnail" and failed:  # a still retried may be a face again
                shots.relink_ids(c, ids, now_iso())
    return out


@dataclass(frozen=True)
class Purged:
    images: int
    thumbnails: int
    embeddings: int
    bytes: int  # thumbnail and vector bytes removed


def purge_deleted(conn: sqlite3.Connection, older_than_days: float) -> Purged:
    """Remove the rows of photos deleted more than ``older_than_days`` ago, with their
    thumbnails and embeddings (retired rows included), the newest row too: ids are
    AUTOINCREMENT (migration 7), so SQLite never hands a purged id out again and an id never
    names two photos. The file keeps its size until a VACUUM."""
    before = iso_ago(older_than_days * 86400)
    with transaction(conn) as c:
        c.execute("CREATE TEMP TABLE IF NOT EXISTS purge_ids (id INTEGER PRIMARY KEY)")
        c.execute("DELETE FROM purge_ids")
        c.execute("INSERT INTO purge_ids SELECT id FROM images WHERE deleted_at IS NOT NULL "
                  "AND deleted_at < ?", (before,))
        thumbs, tbytes = c.execute(
            "SELECT count(*), coalesce(sum(length(data)), 0) FROM thumbnails "
            "WHERE image_id IN (SELECT id FROM purge_ids)").fetchone()
        vecs, vbytes = c.execute(
            "SELECT count(*), coalesce(sum(length(vector)), 0) FROM embeddings "
            "WHERE image_id IN (SELECT id FROM purge_ids)").fetchone()
        c.execute("DELETE FROM thumbnails WHERE image_id IN (SELECT id FROM purge_ids)")
        c.execute("DELETE FROM embeddings WHERE image_id IN (SELECT id FROM purge_ids)")
        c.execute("DELETE FROM metadata WHERE image_id IN (SELECT id FROM purge_ids)")
        c.execute("DELETE FROM metadata_due WHERE image_id IN (SELECT id FROM purge_ids)")
        c.execute("DELETE FROM metadata_keywords WHERE image_id IN (SELECT id FROM purge_ids)")
        n = c.execute("DELETE FROM images WHERE id IN (SELECT id FROM purge_ids)").rowcount
        c.execute("DELETE FROM purge_ids")
    return Purged(n, thumbs, vecs, tbytes + vbytes)


def purge_model(conn: sqlite3.Connection, model: str, pretrained: str) -> tuple[int, int]:
    """Remove every vector of one model: (vectors, bytes). The caller makes sure it is not
    the configured model (its statuses would lie)."""
    with transaction(conn) as c:
        n, size = c.execute("SELECT count(*), coalesce(sum(length(vector)), 0) FROM embeddings "
                            "WHERE model = ? AND pretrained = ?", (model, pretrained)).fetchone()
        c.execute("DELETE FROM embeddings WHERE model = ? AND pretrained = ?", (model, pretrained))
        c.execute("DELETE FROM models WHERE model = ? AND pretrained = ?", (model, pretrained))
    return int(n), int(size)


def purge_thumbnail_sizes(conn: sqlite3.Connection, sizes: Sequence[int]) -> tuple[int, int]:
    """Remove the thumbnails of these sizes (no longer configured): (thumbnails, bytes)."""
    marks = ",".join("?" * len(sizes))
    with transaction(conn) as c:
        n, size = c.execute(f"SELECT count(*), coalesce(sum(length(data)), 0) FROM thumbnails "
                            f"WHERE size IN ({marks})", tuple(sizes)).fetchone()
        c.execute(f"DELETE FROM thumbnails WHERE size IN ({marks})", tuple(sizes))
    return int(n), int(size)


def vacuum(conn: sqlite3.Connection) -> tuple[int, int]:
    """VACUUM: rewrite the file without its free pages. Blocks every writer while it runs and
    needs free disk about the size of the database. Returns (bytes before, bytes after)."""
    def size() -> int:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int(conn.execute("PRAGMA page_count").fetchone()[0]) * int(page_size)

    before = size()
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return before, size()
