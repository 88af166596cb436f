"""Connections and the vocabulary every store module shares: ``connect`` (WAL, busy timeout,
the schema brought up to date), ``transaction``, the kinds of work, and time stamps as stored.

The schema is the product's public API (README, ``migrations``). The store knows nothing of
Celery, click or config: it takes plain values and a ``sqlite3.Connection``."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from watcherd.store.migrations import migrate

Kind = Literal["thumbnail", "embedding"]


KINDS: tuple[Kind, ...] = ("thumbnail", "embedding")


BUSY_TIMEOUT_MS = 30_000


#: ``*_queued_at`` of a pending row waiting in a backlog (see migration 6).
BACKLOG = "backlog"


# The folder of a path, with its trailing slash (everything after the last '/' trimmed); the
# expression of the images_folder index, so lookups by folder use it.
FOLDER_SQL = "rtrim(path, replace(path, '/', ''))"


# A row that is the face of its shot or stands alone (not a RAW or a clip listed with its face):
# what search, duplicates and the page show. Use with the images table unaliased, or replace.
FACE_SQL = "(shot_id IS NULL OR shot_id = id)"
I_FACE_SQL = "(i.shot_id IS NULL OR i.shot_id = i.id)"  # the same, for images aliased as i

# The stem key of a path: the path up to and including its last '.', lower-cased (ASCII); the
# expression of the images_stem index (migration 9).
STEM_SQL = "lower(rtrim(path, replace(path, '.', '')))"


def folder_range(folder: str | Path) -> tuple[str, str]:
    """``path >= lo AND path < hi`` selects exactly the paths below ``folder``."""
    prefix = str(folder).rstrip("/") + "/"
    return prefix, prefix[:-1] + chr(ord("/") + 1)


def now_iso(at: datetime | None = None) -> str:
    """ISO 8601 UTC with a fixed width, so stored times also sort as text."""
    at = at or datetime.now(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_ago(seconds: float) -> str:
    return now_iso(datetime.now(UTC) - timedelta(seconds=seconds))


def set_busy_timeout(conn: sqlite3.Connection, milliseconds: int) -> None:
    """How long a statement waits for another connection's write lock before it fails."""
    conn.execute(f"PRAGMA busy_timeout = {int(milliseconds)}")


def connect(path: str | Path, *, migrate_schema: bool = True,
            busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """Open the database in WAL mode with a busy timeout; create/upgrade the schema.

    The busy timeout is the one retry layer for a locked database: SQLite's busy handler waits
    and tries again inside each statement (every write transaction here is ``BEGIN IMMEDIATE``,
    so it applies to writes too; a deferred read-then-write could fail at once in WAL mode)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.row_factory = sqlite3.Row
    set_busy_timeout(conn, busy_timeout_ms)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    if migrate_schema:
        migrate(conn)
    return conn


class _Tx:
    """``with transaction(conn):`` BEGIN IMMEDIATE … COMMIT (ROLLBACK on error)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def transaction(conn: sqlite3.Connection) -> _Tx:
    return _Tx(conn)
