"""The ``workers`` table: one row per worker process, written by the watcher alone from the
workers' heartbeats (``watcherd.fleet.monitor``), read by status and the web page."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from watcherd.store.schema import transaction


@dataclass(frozen=True)
class WorkerRow:
    name: str
    role: str
    host: str
    pid: int
    state: str
    message: str | None
    model: str | None
    pretrained: str | None
    device: str | None
    started_at: str
    last_seen: str
    processed: int
    rss_kb: int


def save_workers(conn: sqlite3.Connection, rows: Sequence[WorkerRow]) -> None:
    if not rows:
        return
    with transaction(conn) as c:
        c.executemany(
            "INSERT OR REPLACE INTO workers (name, role, host, pid, state, message, model, "
            "pretrained, device, started_at, last_seen, processed, rss_kb) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(r.name, r.role, r.host, r.pid, r.state, r.message, r.model, r.pretrained,
              r.device, r.started_at, r.last_seen, r.processed, r.rss_kb) for r in rows],
        )


def forget_workers(conn: sqlite3.Connection, *, last_seen_before: str) -> int:
    """Drop the rows of workers not heard from since ``last_seen_before``."""
    with transaction(conn) as c:
        return c.execute("DELETE FROM workers WHERE last_seen < ?",
                         (last_seen_before,)).rowcount


def worker_states(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute("SELECT * FROM workers ORDER BY role, started_at, name")]
