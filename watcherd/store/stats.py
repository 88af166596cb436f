"""Read-only figures about the library for the status model and /metrics: failures grouped by
reason, work done over a recent window, processing durations. Plain SQL on any connection
(a read-only one is enough); rows come back as plain dicts."""

from __future__ import annotations

import sqlite3
from typing import Any

from watcherd.store.db import KINDS, iso_ago


def _dicts(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def failure_groups(conn: Any, limit: int = 50) -> list[dict[str, Any]]:
    """Failed live rows grouped by kind and reason, largest group first: a thousand photos that
    failed for the same reason are one group with a count and one example."""
    return _dicts(conn.execute(
        "SELECT kind, reason, count(*) AS count, min(id) AS example_id, "
        "min(path) AS example_path FROM ("
        " SELECT id, path, 'thumbnail' AS kind, coalesce(thumbnail_error, '?') AS reason "
        " FROM images WHERE thumbnail_status = 'failed' AND deleted_at IS NULL"
        " UNION ALL"
        " SELECT id, path, 'embedding', coalesce(embedding_error, '?') FROM images"
        " WHERE embedding_status = 'failed' AND deleted_at IS NULL) "
        "GROUP BY kind, reason ORDER BY count DESC, kind, reason LIMIT ?", (limit,)))


def done_since(conn: Any, seconds: float) -> dict[str, int]:
    """Photos whose thumbnails / vectors were stored in the last ``seconds``."""
    since = iso_ago(seconds)
    thumbs = conn.execute("SELECT count(DISTINCT image_id) FROM thumbnails WHERE created_at >= ?",
                          (since,)).fetchone()[0]
    vecs = conn.execute("SELECT count(*) FROM embeddings WHERE created_at >= ?",
                        (since,)).fetchone()[0]
    return {"thumbnail": int(thumbs), "embedding": int(vecs)}


def processing_seconds(conn: Any, kind: str, limit: int = 1000) -> list[float]:
    """For the most recent ``limit`` results of ``kind``: seconds from discovery to stored
    result, from the rows' own timestamps (includes the wait in the queue)."""
    assert kind in KINDS
    table = "thumbnails" if kind == "thumbnail" else "embeddings"
    rows = conn.execute(
        f"SELECT (julianday(max(t.created_at)) - julianday(i.discovered_at)) * 86400.0 "
        f"FROM {table} t JOIN images i ON i.id = t.image_id "
        f"GROUP BY t.image_id ORDER BY max(t.created_at) DESC LIMIT ?", (limit,)).fetchall()
    return [max(0.0, float(r[0])) for r in rows if r[0] is not None]


def workers(conn: Any) -> list[dict[str, Any]]:
    """The workers table as it is, whatever its columns (one row per role or per process)."""
    return _dicts(conn.execute("SELECT * FROM workers"))
