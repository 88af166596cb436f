"""What the outbox sends: the pending rows due (never sent, or sent too long ago), how many
are in flight, and marking rows as sent. The re-work after a model or settings change is fed
from ``backlog``."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from watcherd.store.schema import Kind, now_iso, transaction


def due_for_dispatch(conn: sqlite3.Connection, kind: Kind, *, resend_before: str | None,
                     limit: int = 500) -> list[tuple[int, str]]:
    """Pending rows never sent, or (when ``resend_before`` is given) sent before that time.
    Never-sent rows come from their own partial index: during a large import this runs after
    every batch of new rows, and must not walk the whole backlog of rows already sent."""
    where = (f"{kind}_status = 'pending' AND deleted_at IS NULL AND sha256 IS NOT NULL AND ")
    if resend_before is None:
        sql = (f"SELECT id, sha256 FROM images INDEXED BY images_{kind}_unsent WHERE {where}"
               f"{kind}_queued_at IS NULL ORDER BY id LIMIT ?")
        params: tuple[Any, ...] = (limit,)
    else:
        sql = (f"SELECT id, sha256 FROM images WHERE {where}({kind}_queued_at IS NULL OR "
               f"{kind}_queued_at < ?) ORDER BY id LIMIT ?")
        params = (resend_before, limit)
    return [(r[0], r[1]) for r in conn.execute(sql, params)]


def in_flight(conn: sqlite3.Connection, kind: Kind, cap: int) -> int:
    """Pending rows already sent (counted up to ``cap``: through the pending index, it stops
    there)."""
    return int(conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM images INDEXED BY images_{kind}_pending WHERE "
        f"{kind}_status = 'pending' AND {kind}_queued_at IS NOT NULL AND "
        f"{kind}_queued_at != 'backlog' AND deleted_at IS NULL LIMIT ?)", (cap,)).fetchone()[0])


def mark_queued(conn: sqlite3.Connection, kind: Kind, ids: Sequence[int]) -> None:
    now = now_iso()
    with transaction(conn) as c:
        c.executemany(
            f"UPDATE images SET {kind}_queued_at = ? WHERE id = ?", [(now, i) for i in ids]
        )
