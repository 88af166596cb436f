"""The SQLite database: connection, migrations and every SQL statement watcherd runs.

The schema is the product's public API (see README). Migrations are append-only: never edit one
that has shipped, add a new one. This module knows nothing of Celery, click or config.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # imported where a connection is made: `watcherd search` never needs it
    import sqlite_utils

Kind = Literal["thumbnail", "embedding"]
KINDS: tuple[Kind, ...] = ("thumbnail", "embedding")
BUSY_TIMEOUT_MS = 30_000

MIGRATIONS: tuple[str, ...] = (
    # 1: the initial public schema, plus the outbox columns (internal: *_queued_at, *_attempts).
    """
    CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        path TEXT UNIQUE NOT NULL,
        sha256 TEXT,
        size INTEGER,
        mtime REAL,
        width INTEGER,
        height INTEGER,
        format TEXT,
        discovered_at TEXT NOT NULL,
        thumbnail_status TEXT NOT NULL DEFAULT 'pending'
            CHECK (thumbnail_status IN ('pending', 'done', 'failed')),
        thumbnail_error TEXT,
        embedding_status TEXT NOT NULL DEFAULT 'pending'
            CHECK (embedding_status IN ('pending', 'done', 'failed')),
        embedding_error TEXT,
        deleted_at TEXT,
        updated_at TEXT,
        thumbnail_queued_at TEXT,
        embedding_queued_at TEXT,
        thumbnail_attempts INTEGER NOT NULL DEFAULT 0,
        embedding_attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX images_sha256 ON images(sha256);
    CREATE INDEX images_thumbnail_pending ON images(id) WHERE thumbnail_status = 'pending';
    CREATE INDEX images_embedding_pending ON images(id) WHERE embedding_status = 'pending';
    CREATE TABLE thumbnails (
        image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        size INTEGER NOT NULL,
        width INTEGER,
        height INTEGER,
        format TEXT,
        data BLOB,
        created_at TEXT,
        PRIMARY KEY (image_id, size)
    );
    CREATE TABLE embeddings (
        image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        pretrained TEXT NOT NULL,
        dim INTEGER,
        vector BLOB,
        created_at TEXT,
        PRIMARY KEY (image_id, model, pretrained)
    );
    CREATE TABLE workers (
        role TEXT PRIMARY KEY,
        pid INTEGER,
        hostname TEXT,
        state TEXT,
        message TEXT,
        updated_at TEXT
    );
    """,
    # 2: a streaming scan looks rows up folder by folder (FOLDER_SQL, the folder of a path with
    # its trailing slash); the outbox finds never-sent rows without walking the whole backlog;
    # each watched root's last scan, for `watcherd status`.
    """
    CREATE INDEX images_folder ON images(rtrim(path, replace(path, '/', '')));
    CREATE INDEX images_thumbnail_unsent ON images(id)
        WHERE thumbnail_status = 'pending' AND thumbnail_queued_at IS NULL;
    CREATE INDEX images_embedding_unsent ON images(id)
        WHERE embedding_status = 'pending' AND embedding_queued_at IS NULL;
    CREATE TABLE scans (
        root TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        folders INTEGER NOT NULL DEFAULT 0,
        files INTEGER NOT NULL DEFAULT 0,
        to_take INTEGER NOT NULL DEFAULT 0,
        taken INTEGER NOT NULL DEFAULT 0,
        gone INTEGER NOT NULL DEFAULT 0,
        message TEXT,
        started_at TEXT,
        updated_at TEXT,
        finished_at TEXT
    );
    """,
    # 3: a long-lived search index (watcherd.search.index) follows rows that changed (moved,
    # deleted, re-embedded) and vectors stored since it last looked, without scanning a table.
    """
    CREATE INDEX images_updated_at ON images(updated_at);
    CREATE INDEX embeddings_created_at ON embeddings(created_at);
    """,
    # 4: one row per worker *process* (name "thumbnails@host:pid"), written by the watcher from the
    # workers' heartbeats (the fleet queue): workers themselves never write it. Replaces the
    # table of one row per role that each worker wrote at its start and stop.
    """
    DROP TABLE IF EXISTS workers;
    CREATE TABLE workers (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        host TEXT,
        pid INTEGER,
        state TEXT,
        message TEXT,
        model TEXT,
        pretrained TEXT,
        device TEXT,
        started_at TEXT,
        last_seen TEXT,
        processed INTEGER,
        rss_kb INTEGER
    );
    """,
    # 5: the number format the model computed each vector in ([embeddings] precision: fp32,
    # bf16, fp16); a precision change is not a model change, so the key stays the same.
    """
    ALTER TABLE embeddings ADD COLUMN precision TEXT;
    """,
    # 6: a model's identity is what it computes (watcherd.media.identity): ``models`` records
    # where each identity was loaded from; ``fingerprints`` caches weight files' sha256 by
    # (path, size, mtime_ns); ``settings`` holds what the statuses describe (the model and the
    # thumbnail settings they were last brought in line with). A backlog row (re-embed after a
    # model change, thumbnails after a settings change) is pending with ``*_queued_at =
    # 'backlog'`` (after any time as text, so never taken for a row sent long ago): the outbox
    # feeds them from these indexes in slices while the queue is short.
    """
    CREATE TABLE models (
        model TEXT NOT NULL,
        pretrained TEXT NOT NULL,
        source TEXT,
        first_seen TEXT,
        last_seen TEXT,
        PRIMARY KEY (model, pretrained)
    );
    CREATE TABLE fingerprints (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL
    );
    CREATE TABLE settings (
        name TEXT PRIMARY KEY,
        value TEXT,
        updated_at TEXT
    );
    CREATE INDEX images_thumbnail_backlog ON images(id)
        WHERE thumbnail_status = 'pending' AND thumbnail_queued_at = 'backlog';
    CREATE INDEX images_embedding_backlog ON images(id)
        WHERE embedding_status = 'pending' AND embedding_queued_at = 'backlog';
    CREATE INDEX embeddings_model ON embeddings(model, pretrained);
    """,
    # 7: ids are never reused, kept by SQLite itself: ``images`` is rebuilt with AUTOINCREMENT
    # (a plain INTEGER PRIMARY KEY hands a deleted highest id out again, so purge had to keep
    # the newest deleted row and its BLOBs for ever). The same columns in the same order, the
    # same indexes; sqlite_sequence starts at the highest id so far. Run with foreign keys off
    # (``migrate``), so dropping the old table cascades nothing.
    """
    CREATE TABLE images_v7 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT UNIQUE NOT NULL,
        sha256 TEXT,
        size INTEGER,
        mtime REAL,
        width INTEGER,
        height INTEGER,
        format TEXT,
        discovered_at TEXT NOT NULL,
        thumbnail_status TEXT NOT NULL DEFAULT 'pending'
            CHECK (thumbnail_status IN ('pending', 'done', 'failed')),
        thumbnail_error TEXT,
        embedding_status TEXT NOT NULL DEFAULT 'pending'
            CHECK (embedding_status IN ('pending', 'done', 'failed')),
        embedding_error TEXT,
        deleted_at TEXT,
        updated_at TEXT,
        thumbnail_queued_at TEXT,
        embedding_queued_at TEXT,
        thumbnail_attempts INTEGER NOT NULL DEFAULT 0,
        embedding_attempts INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO images_v7 SELECT * FROM images;
    DROP TABLE images;
    ALTER TABLE images_v7 RENAME TO images;
    CREATE INDEX images_sha256 ON images(sha256);
    CREATE INDEX images_thumbnail_pending ON images(id) WHERE thumbnail_status = 'pending';
    CREATE INDEX images_embedding_pending ON images(id) WHERE embedding_status = 'pending';
    CREATE INDEX images_folder ON images(rtrim(path, replace(path, '/', '')));
    CREATE INDEX images_thumbnail_unsent ON images(id)
        WHERE thumbnail_status = 'pending' AND thumbnail_queued_at IS NULL;
    CREATE INDEX images_embedding_unsent ON images(id)
        WHERE embedding_status = 'pending' AND embedding_queued_at IS NULL;
    CREATE INDEX images_updated_at ON images(updated_at);
    CREATE INDEX images_thumbnail_backlog ON images(id)
        WHERE thumbnail_status = 'pending' AND thumbnail_queued_at = 'backlog';
    CREATE INDEX images_embedding_backlog ON images(id)
        WHERE embedding_status = 'pending' AND embedding_queued_at = 'backlog';
    """,
)
#: ``*_queued_at`` of a pending row waiting in a backlog (see migration 6).
BACKLOG = "backlog"
SCHEMA_VERSION = len(MIGRATIONS)
# The folder of a path, with its trailing slash (everything after the last '/' trimmed); the
# expression of the images_folder index, so lookups by folder use it.
FOLDER_SQL = "rtrim(path, replace(path, '/', ''))"


def now_iso(at: datetime | None = None) -> str:
    """ISO 8601 UTC with a fixed width, so stored times also sort as text."""
    at = at or datetime.now(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_ago(seconds: float) -> str:
    return now_iso(datetime.now(UTC) - timedelta(seconds=seconds))


def connect(path: str | Path, *, migrate_schema: bool = True,
            busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite_utils.Database:
    """Open the database in WAL mode with a busy timeout; create/upgrade the schema.

    The busy timeout is the one retry layer for a locked database: SQLite's busy handler waits
    and tries again inside each statement (every write transaction here is ``BEGIN IMMEDIATE``,
    so it applies to writes too; a deferred read-then-write could fail at once in WAL mode)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    if migrate_schema:
        migrate(db)
    return db


def schema_version(db: sqlite_utils.Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite_utils.Database) -> tuple[int, int]:
    """Apply pending migrations in one IMMEDIATE transaction each. Returns (before, after)."""
    before = schema_version(db)
    if before > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {before} is newer than this watcherd ({SCHEMA_VERSION})"
        )
    conn = db.conn
    if before == SCHEMA_VERSION:
        return before, before
    # SQLite's recipe for rebuilding a table (migration 7): foreign keys off outside the
    # transaction (the pragma is a no-op inside one), checked before each commit, back on after.
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        for version in range(before + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have migrated while we waited for the lock.
                if schema_version(db) >= version:
                    conn.execute("COMMIT")
                    continue
                for statement in _statements(MIGRATIONS[version - 1]):
                    conn.execute(statement)
                broken = conn.execute("PRAGMA foreign_key_check").fetchone()
                if broken is not None:
                    raise RuntimeError(f"migration {version} broke a foreign key: {tuple(broken)}")
                conn.execute(f"PRAGMA user_version = {version}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
    return before, schema_version(db)


def _statements(script: str) -> Iterable[str]:
    return (s.strip() for s in script.split(";") if s.strip())


class _Tx:
    """``with transaction(db):`` BEGIN IMMEDIATE … COMMIT (ROLLBACK on error)."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.conn = db.conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def transaction(db: sqlite_utils.Database) -> _Tx:
    return _Tx(db)


# ---------------------------------------------------------------- discovery (the watcher's side)


@dataclass(frozen=True)
class Known:
    size: int | None
    mtime: float | None
    deleted: bool


def rows_in_folder(db: sqlite_utils.Database, folder: str) -> dict[str, Known]:
    """Every row directly in ``folder`` (not below it): one indexed lookup."""
    rows = db.execute(
        f"SELECT path, size, mtime, deleted_at FROM images WHERE {FOLDER_SQL} = ?",
        (folder.rstrip("/") + "/",))
    return {r[0]: Known(r[1], r[2], r[3] is not None) for r in rows}


def live_folders_under(db: sqlite_utils.Database, root: Path, *,
                       before: str | None = None) -> list[str]:
    """The folders (no trailing slash) at or below ``root`` holding at least one live row
    (``before``: one not updated since then)."""
    lo, hi = _prefix_range(root)
    rows = db.execute(
        f"SELECT DISTINCT {FOLDER_SQL} FROM images WHERE path >= ? AND path < ? "
        "AND deleted_at IS NULL AND (? IS NULL OR updated_at <= ?)", (lo, hi, before, before))
    return [r[0].rstrip("/") for r in rows]


def has_live_rows_under(db: sqlite_utils.Database, root: Path) -> bool:
    lo, hi = _prefix_range(root)
    return db.execute("SELECT 1 FROM images WHERE path >= ? AND path < ? AND deleted_at IS NULL "
                      "LIMIT 1", (lo, hi)).fetchone() is not None


def live_twins(db: sqlite_utils.Database, sha256: str, path: str) -> list[tuple[int, str]]:
    """Live rows with this content at another path: (id, path)."""
    return [(r[0], r[1]) for r in db.execute(
        "SELECT id, path FROM images WHERE sha256 = ? AND path != ? AND deleted_at IS NULL",
        (sha256, path))]


def known(db: sqlite_utils.Database, path: str) -> Known | None:
    row = db.execute(
        "SELECT size, mtime, deleted_at FROM images WHERE path = ?", (path,)).fetchone()
    return None if row is None else Known(row[0], row[1], row[2] is not None)


def _prefix_range(folder: Path) -> tuple[str, str]:
    prefix = str(folder).rstrip("/") + "/"
    return prefix, prefix[:-1] + chr(ord("/") + 1)


@dataclass(frozen=True)
class Recorded:
    id: int
    action: Literal["new", "changed", "unchanged", "moved", "restored"]


@dataclass(frozen=True)
class Reuse:
    """What a new row may copy from an existing row with the same content."""

    model: str
    pretrained: str
    thumbnail_sizes: Sequence[int]
    thumbnail_format: str


def record_file(db: sqlite_utils.Database, path: str, size: int, mtime: float, sha256: str,
                reuse: Reuse, *, moved_from: tuple[int, str] | None = None) -> Recorded:
    """Upsert the row for a complete file (see ``record_in``), in its own transaction."""
    with transaction(db) as c:
        return record_in(c, path, size, mtime, sha256, reuse, moved_from=moved_from)


def record_in(c: sqlite3.Connection, path: str, size: int, mtime: float, sha256: str,
              reuse: Reuse, *, moved_from: tuple[int, str] | None = None,
              now: str | None = None) -> Recorded:
    """Upsert the row for a complete file, inside the caller's transaction.

    - Same content at the same path: the row stays (``restored`` if it was deleted).
    - Other content at a live row's path: the row is reset (``changed``).
    - Other content at a deleted row's path: the deleted row is retired (with its thumbnails
      and embeddings, its path set aside) and the file gets a new id (``new``).
    - A new path: a move keeps the row. ``moved_from`` is a live row with this content whose
      file the caller found gone (moved while watcherd was down, or a scan that has not reached
      the old folder yet); else the most recently deleted row with this content. Otherwise a
      new row, reusing the thumbnails and embedding of identical content elsewhere.
    """
    now = now or now_iso()
    row = c.execute("SELECT id, sha256, deleted_at FROM images WHERE path = ?",
                    (path,)).fetchone()
    if row is not None and row["sha256"] == sha256:
        c.execute("UPDATE images SET size = ?, mtime = ?, deleted_at = NULL, updated_at = ? "
                  "WHERE id = ?", (size, mtime, now, row["id"]))
        return Recorded(row["id"], "restored" if row["deleted_at"] else "unchanged")
    if row is not None and row["deleted_at"] is not None:
        _retire(c, "id = ?", (row["id"],), now)
        row = None
    if row is None:
        if moved_from is not None and c.execute(
                "UPDATE images SET path = ?, size = ?, mtime = ?, updated_at = ? WHERE id = ? "
                "AND path = ? AND sha256 = ? AND deleted_at IS NULL",
                (path, size, mtime, now, moved_from[0], moved_from[1], sha256)).rowcount:
            return Recorded(moved_from[0], "moved")
        moved = c.execute(
            "SELECT id FROM images WHERE sha256 = ? AND deleted_at IS NOT NULL "
            "ORDER BY deleted_at DESC LIMIT 1", (sha256,),
        ).fetchone()
        if moved is not None:
            c.execute(
                "UPDATE images SET path = ?, size = ?, mtime = ?, deleted_at = NULL, "
                "updated_at = ? WHERE id = ?", (path, size, mtime, now, moved["id"]),
            )
            return Recorded(moved["id"], "moved")
        image_id = c.execute(
            "INSERT INTO images (path, sha256, size, mtime, discovered_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)", (path, sha256, size, mtime, now, now),
        ).lastrowid
        assert image_id is not None
        action: Literal["new", "changed"] = "new"
    else:
        image_id = row["id"]
        _reset(c, image_id, sha256, size, mtime, "pending", None, now)
        action = "changed"
    _reuse_identical(c, image_id, sha256, reuse, now)
    return Recorded(image_id, action)


def _reuse_identical(c: sqlite3.Connection, image_id: int, sha256: str, reuse: Reuse,
                     now: str) -> None:
    twin = c.execute(
        "SELECT e.image_id FROM embeddings e JOIN images i ON i.id = e.image_id "
        "WHERE i.sha256 = ? AND i.id != ? AND e.model = ? AND e.pretrained = ? LIMIT 1",
        (sha256, image_id, reuse.model, reuse.pretrained),
    ).fetchone()
    if twin is not None:
        c.execute(
            "INSERT OR REPLACE INTO embeddings (image_id, model, pretrained, dim, vector, "
            "created_at, precision) SELECT ?, model, pretrained, dim, vector, ?, precision "
            "FROM embeddings WHERE image_id = ? AND model = ? AND pretrained = ?",
            (image_id, now, twin[0], reuse.model, reuse.pretrained),
        )
        c.execute("UPDATE images SET embedding_status = 'done' WHERE id = ?", (image_id,))
    sizes = sorted(set(reuse.thumbnail_sizes))
    marks = ",".join("?" * len(sizes))
    twin = c.execute(
        f"SELECT t.image_id FROM thumbnails t JOIN images i ON i.id = t.image_id "
        f"WHERE i.sha256 = ? AND i.id != ? AND i.thumbnail_status = 'done' AND t.format = ? "
        f"AND t.size IN ({marks}) GROUP BY t.image_id HAVING count(*) = ? LIMIT 1",
        (sha256, image_id, reuse.thumbnail_format, *sizes, len(sizes)),
    ).fetchone()
    if twin is not None:
        c.execute(
            f"INSERT OR REPLACE INTO thumbnails (image_id, size, width, height, format, data, "
            f"created_at) SELECT ?, size, width, height, format, data, ? FROM thumbnails "
            f"WHERE image_id = ? AND size IN ({marks})", (image_id, now, twin[0], *sizes),
        )
        c.execute(
            "UPDATE images SET thumbnail_status = 'done', (width, height, format) = "
            "(SELECT width, height, format FROM images WHERE id = ?) WHERE id = ?",
            (twin[0], image_id),
        )


def record_unreadable(db: sqlite_utils.Database, path: str, reason: str) -> int:
    """A file the watcher cannot read (permissions): one row, both statuses failed with the
    reason. ``sha256``/``size``/``mtime`` stay NULL, so the next scan tries the file again (a
    chmod does not change mtime) and, once readable, records it as changed."""
    with transaction(db) as c:
        return unreadable_in(c, path, reason)


def unreadable_in(c: sqlite3.Connection, path: str, reason: str) -> int:
    """``record_unreadable`` inside the caller's transaction."""
    now = now_iso()
    reason = reason[:500]
    row = c.execute("SELECT id FROM images WHERE path = ?", (path,)).fetchone()
    if row is None:
        image_id = c.execute(
            "INSERT INTO images (path, discovered_at, updated_at, thumbnail_status, "
            "thumbnail_error, embedding_status, embedding_error) "
            "VALUES (?, ?, ?, 'failed', ?, 'failed', ?)", (path, now, now, reason, reason),
        ).lastrowid
        assert image_id is not None
        return image_id
    image_id = int(row["id"])
    _reset(c, image_id, None, None, None, "failed", reason, now)
    return image_id


def _reset(c: sqlite3.Connection, image_id: int, sha256: str | None, size: int | None,
           mtime: float | None, status: str, error: str | None, now: str) -> None:
    """The file at this row is new content (or unreadable): drop what was derived from the old
    content and start both tasks over with ``status``/``error``."""
    c.execute("DELETE FROM thumbnails WHERE image_id = ?", (image_id,))
    c.execute("DELETE FROM embeddings WHERE image_id = ?", (image_id,))
    c.execute(
        "UPDATE images SET sha256 = ?, size = ?, mtime = ?, width = NULL, height = NULL, "
        "format = NULL, deleted_at = NULL, updated_at = ?, "
        "thumbnail_status = ?, thumbnail_error = ?, thumbnail_queued_at = NULL, "
        "thumbnail_attempts = 0, embedding_status = ?, embedding_error = ?, "
        "embedding_queued_at = NULL, embedding_attempts = 0 WHERE id = ?",
        (sha256, size, mtime, now, status, error, status, error, image_id),
    )


RETIRED_PREFIX = "retired:"


def _retire(c: sqlite3.Connection, where: str, params: tuple[Any, ...], now: str) -> None:
    """Free the paths of the rows matching ``where`` for other photos: each is marked deleted,
    loses its thumbnails and embeddings, and its path becomes ``retired:<id>:<path>`` (not a
    path: it never matches a folder). The row and its id stay until ``purge`` removes them
    with the other deleted rows (ids are AUTOINCREMENT: never handed out again)."""
    ids = [r[0] for r in c.execute(f"SELECT id FROM images WHERE {where}", params)]
    for image_id in ids:
        c.execute("DELETE FROM thumbnails WHERE image_id = ?", (image_id,))
        c.execute("DELETE FROM embeddings WHERE image_id = ?", (image_id,))
        c.execute(
            "UPDATE images SET path = ? || id || ':' || path, deleted_at = coalesce(deleted_at, "
            "?), updated_at = ? WHERE id = ?", (RETIRED_PREFIX, now, now, image_id))


def move_path(db: sqlite_utils.Database, src: str, dest: str) -> int | None:
    """A file was renamed/moved inside the watched tree: same row, new path."""
    with transaction(db) as c:
        row = c.execute("SELECT id FROM images WHERE path = ?", (src,)).fetchone()
        if row is None:
            return None
        # A file that stood at dest was overwritten by the move: its row is retired (with its
        # thumbnails and embedding), the moved file keeps its own row.
        _retire(c, "path = ? AND id != ?", (dest, row["id"]), now_iso())
        c.execute(
            "UPDATE images SET path = ?, deleted_at = NULL, updated_at = ? WHERE id = ?",
            (dest, now_iso(), row["id"]),
        )
        return int(row["id"])


def move_folder(db: sqlite_utils.Database, src: Path, dest: Path) -> int:
    """A folder was renamed/moved inside the watched tree: rewrite every path under it."""
    lo, hi = _prefix_range(src)
    new_prefix = str(dest).rstrip("/") + "/"
    with transaction(db) as c:
        # Rows that stand where the moved rows go are retired first (with their thumbnails and
        # embeddings): deleted rows of photos that were there, or stale live ones (a folder can
        # only be renamed onto an empty folder). The moved photos keep their own ids.
        _retire(c, "path IN (SELECT ? || substr(path, ?) FROM images WHERE path >= ? AND "
                "path < ?)", (new_prefix, len(lo) + 1, lo, hi), now_iso())
        cur = c.execute(
            "UPDATE images SET path = ? || substr(path, ?), updated_at = ? "
            "WHERE path >= ? AND path < ?", (new_prefix, len(lo) + 1, now_iso(), lo, hi),
        )
        return cur.rowcount


def mark_deleted(db: sqlite_utils.Database, paths: Iterable[str], *,
                 before: str | None = None) -> int:
    """The files at ``paths`` are gone (``before``: only rows not updated since then, so a
    scan's stale view never deletes a row that a live event has just moved or recorded)."""
    now = now_iso()
    with transaction(db) as c:
        n = 0
        for path in paths:
            n += c.execute(
                "UPDATE images SET deleted_at = ?, updated_at = ? WHERE path = ? AND "
                "deleted_at IS NULL AND (? IS NULL OR updated_at <= ?)",
                (now, now, path, before, before),
            ).rowcount
        return n


def mark_folder_files_deleted(db: sqlite_utils.Database, folder: str, *,
                              before: str | None = None) -> int:
    """Rows directly in ``folder`` (not below it) are gone (``before``: as for mark_deleted)."""
    now = now_iso()
    with transaction(db) as c:
        return c.execute(
            f"UPDATE images SET deleted_at = ?, updated_at = ? WHERE {FOLDER_SQL} = ? "
            "AND deleted_at IS NULL AND (? IS NULL OR updated_at <= ?)",
            (now, now, folder.rstrip("/") + "/", before, before),
        ).rowcount


def mark_folder_deleted(db: sqlite_utils.Database, folder: Path) -> int:
    lo, hi = _prefix_range(folder)
    now = now_iso()
    with transaction(db) as c:
        return c.execute(
            "UPDATE images SET deleted_at = ?, updated_at = ? "
            "WHERE path >= ? AND path < ? AND deleted_at IS NULL", (now, now, lo, hi),
        ).rowcount


# ---------------------------------------------------------------------------- outbox dispatch


def due_for_dispatch(db: sqlite_utils.Database, kind: Kind, *, resend_before: str | None,
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
    return [(r[0], r[1]) for r in db.execute(sql, params)]


def in_flight(db: sqlite_utils.Database, kind: Kind, cap: int) -> int:
    """Pending rows already sent (counted up to ``cap``: through the pending index, it stops
    there)."""
    return int(db.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM images INDEXED BY images_{kind}_pending WHERE "
        f"{kind}_status = 'pending' AND {kind}_queued_at IS NOT NULL AND "
        f"{kind}_queued_at != 'backlog' AND deleted_at IS NULL LIMIT ?)", (cap,)).fetchone()[0])


def mark_queued(db: sqlite_utils.Database, kind: Kind, ids: Sequence[int]) -> None:
    now = now_iso()
    with transaction(db) as c:
        c.executemany(
            f"UPDATE images SET {kind}_queued_at = ? WHERE id = ?", [(now, i) for i in ids]
        )


# ------------------------------------------------------------------------ tasks (workers' side)


def begin_task(db: sqlite_utils.Database, kind: Kind, image_id: int, sha256: str) -> str | None:
    """Check a task before working on it: the file's path, or None when there is nothing to do
    (a stale message for other content, already done or failed, deleted). Reads only: attempts
    are counted by the watcher when a worker dies (``died_while_processing``), never here, so a
    redelivered message or a retried task costs no attempt."""
    row = db.execute(
        f"SELECT path FROM images WHERE id = ? AND sha256 = ? AND {kind}_status = 'pending' "
        "AND deleted_at IS NULL", (image_id, sha256),
    ).fetchone()
    return None if row is None else str(row[0])


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


def died_while_processing(db: sqlite_utils.Database, kind: Kind,
                          items: Iterable[tuple[int, str]], max_attempts: int,
                          reason: Callable[[int], str] = died_reason) -> list[Charged]:
    """A worker process died (or timed out) while processing these photos: one more attempt for
    each that is still pending (same content, not deleted); at ``max_attempts`` the row becomes
    failed with ``reason(attempts)``."""
    out: list[Charged] = []
    now = now_iso()
    with transaction(db) as c:
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
            out.append(Charged(image_id, attempts, failed))
    return out


def still_queued(db: sqlite_utils.Database, kind: Kind, items: Iterable[tuple[int, str]]) -> int:
    """A live worker holds these photos' messages: they are not lost, so the outbox must not
    send them again however long they wait (their ``*_queued_at`` moves to now)."""
    now = now_iso()
    with transaction(db) as c:
        return sum(c.execute(
            f"UPDATE images SET {kind}_queued_at = ? WHERE id = ? AND sha256 = ? "
            f"AND {kind}_status = 'pending' AND {kind}_queued_at IS NOT NULL", (now, i, s)
        ).rowcount for i, s in items)


def note_error(db: sqlite_utils.Database, kind: Kind, image_id: int, sha256: str,
               reason: str) -> bool:
    """Say on a row that stays pending why it is not done yet (e.g. the database was locked)."""
    with transaction(db) as c:
        return c.execute(
            f"UPDATE images SET {kind}_error = ?, updated_at = ? WHERE id = ? AND sha256 = ? "
            f"AND {kind}_status = 'pending'", (reason[:500], now_iso(), image_id, sha256),
        ).rowcount > 0


def fail(db: sqlite_utils.Database, kind: Kind, image_id: int, sha256: str, reason: str) -> bool:
    with transaction(db) as c:
        return c.execute(
            f"UPDATE images SET {kind}_status = 'failed', {kind}_error = ?, updated_at = ? "
            "WHERE id = ? AND sha256 = ?", (reason[:500], now_iso(), image_id, sha256),
        ).rowcount > 0


@dataclass(frozen=True)
class ThumbRow:
    size: int
    width: int
    height: int
    format: str
    data: bytes


def save_thumbnails(db: sqlite_utils.Database, image_id: int, sha256: str, width: int,
                    height: int, fmt: str, thumbs: Sequence[ThumbRow]) -> bool:
    """Store thumbnails (replacing those of the same sizes); a no-op (False) if the row's
    content changed meanwhile."""
    now = now_iso()
    with transaction(db) as c:
        ok = c.execute(
            "UPDATE images SET thumbnail_status = 'done', thumbnail_error = NULL, width = ?, "
            "height = ?, format = ?, updated_at = ? WHERE id = ? AND sha256 = ?",
            (width, height, fmt, now, image_id, sha256),
        ).rowcount > 0
        if ok:  # sizes not written now (no longer configured) stay until purged
            c.executemany(
                "INSERT OR REPLACE INTO thumbnails (image_id, size, width, height, format, "
                "data, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(image_id, t.size, t.width, t.height, t.format, t.data, now) for t in thumbs],
            )
        return ok


@dataclass(frozen=True)
class EmbeddingRow:
    image_id: int
    sha256: str
    vector: bytes
    width: int | None = None
    height: int | None = None
    format: str | None = None


def save_embeddings(db: sqlite_utils.Database, model: str, pretrained: str, dim: int,
                    rows: Sequence[EmbeddingRow], precision: str | None = None) -> int:
    """Store a batch of vectors in one transaction; rows whose content changed are skipped."""
    now = now_iso()
    saved = 0
    with transaction(db) as c:
        for r in rows:
            ok = c.execute(
                "UPDATE images SET embedding_status = 'done', embedding_error = NULL, "
                "width = coalesce(width, ?), height = coalesce(height, ?), "
                "format = coalesce(format, ?), updated_at = ? WHERE id = ? AND sha256 = ?",
                (r.width, r.height, r.format, now, r.image_id, r.sha256),
            ).rowcount > 0
            if ok:
                c.execute(
                    "INSERT OR REPLACE INTO embeddings (image_id, model, pretrained, dim, vector, "
                    "created_at, precision) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (r.image_id, model, pretrained, dim, r.vector, now, precision),
                )
                saved += 1
    return saved


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


def apply_results(db: sqlite_utils.Database, batches: Sequence[Vectors],
                  failures: Sequence[tuple[int, str, str]]) -> Applied:
    """Results of remote embedding workers, in one transaction: a vector or a failure is kept
    only for a row still pending with the same sha256 and not deleted (idempotent: applying
    the same results twice changes nothing the second time). ``failures``: (id, sha256,
    reason)."""
    now = now_iso()
    out = Applied()
    with transaction(db) as c:
        for b in batches:
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


# ------------------------------------------------------------------------- operator commands


def status_counts(db: sqlite_utils.Database) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        counts = {"pending": 0, "done": 0, "failed": 0}
        for status, n in db.execute(
            f"SELECT {kind}_status, count(*) FROM images WHERE deleted_at IS NULL GROUP BY 1"
        ):
            counts[status] = n
        out[kind] = counts
    out["images"] = {
        "total": db.execute("SELECT count(*) FROM images WHERE deleted_at IS NULL").fetchone()[0],
        "deleted": db.execute(
            "SELECT count(*) FROM images WHERE deleted_at IS NOT NULL").fetchone()[0],
    }
    return out


def failures(db: sqlite_utils.Database, limit: int = 20) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT id, path, 'thumbnail' AS kind, thumbnail_error AS error FROM images "
        "WHERE thumbnail_status = 'failed' AND deleted_at IS NULL UNION ALL "
        "SELECT id, path, 'embedding', embedding_error FROM images "
        "WHERE embedding_status = 'failed' AND deleted_at IS NULL ORDER BY id LIMIT ?", (limit,),
    )
    return [dict(r) for r in rows]


def requeue(db: sqlite_utils.Database, *, failed: bool) -> dict[str, int]:
    """Make rows due for dispatch now: pending ones (stuck) and, with ``failed``, failed ones.
    A backlog (a model or settings change) is left to be fed in slices."""
    out: dict[str, int] = {}
    with transaction(db) as c:
        for kind in KINDS:
            statuses = "('pending', 'failed')" if failed else "('pending')"
            out[kind] = c.execute(
                f"UPDATE images SET {kind}_status = 'pending', {kind}_error = NULL, "
                f"{kind}_queued_at = NULL, {kind}_attempts = 0 "
                f"WHERE {kind}_status IN {statuses} AND deleted_at IS NULL "
                f"AND coalesce({kind}_queued_at, '') != '{BACKLOG}' "
                # unhashed (unreadable) rows: the next scan retries them, no message can
                "AND sha256 IS NOT NULL",
            ).rowcount
    return out


#: The start of ``embedding_error`` for photos failed because the worker could not load its
#: model: once it loads, they are queued again (``requeue_model_failures``).
MODEL_UNAVAILABLE = "embedding model could not be loaded"


def requeue_model_failures(db: sqlite_utils.Database) -> int:
    """Photos failed only because the model could not be loaded: pending again, in the
    backlog (fed behind new photos)."""
    with transaction(db) as c:
        return c.execute(
            "UPDATE images SET embedding_status = 'pending', embedding_error = NULL, "
            "embedding_queued_at = ?, embedding_attempts = 0, updated_at = ? "
            "WHERE embedding_status = 'failed' AND embedding_error LIKE ? || '%' "
            "AND deleted_at IS NULL AND sha256 IS NOT NULL",
            (BACKLOG, now_iso(), MODEL_UNAVAILABLE)).rowcount


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


def save_workers(db: sqlite_utils.Database, rows: Sequence[WorkerRow]) -> None:
    if not rows:
        return
    with transaction(db) as c:
        c.executemany(
            "INSERT OR REPLACE INTO workers (name, role, host, pid, state, message, model, "
            "pretrained, device, started_at, last_seen, processed, rss_kb) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(r.name, r.role, r.host, r.pid, r.state, r.message, r.model, r.pretrained,
              r.device, r.started_at, r.last_seen, r.processed, r.rss_kb) for r in rows],
        )


def forget_workers(db: sqlite_utils.Database, *, last_seen_before: str) -> int:
    """Drop the rows of workers not heard from since ``last_seen_before``."""
    with transaction(db) as c:
        return c.execute("DELETE FROM workers WHERE last_seen < ?",
                         (last_seen_before,)).rowcount


def worker_states(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    return [dict(r) for r in db.execute("SELECT * FROM workers ORDER BY role, started_at, name")]


# ------------------------------------------------------------------------------------- purge


@dataclass(frozen=True)
class Purged:
    images: int
    thumbnails: int
    embeddings: int
    bytes: int  # thumbnail and vector bytes removed


def purge_deleted(db: sqlite_utils.Database, older_than_days: float) -> Purged:
    """Remove the rows of photos deleted more than ``older_than_days`` ago, with their
    thumbnails and embeddings (retired rows included), the newest row too: ids are
    AUTOINCREMENT (migration 7), so SQLite never hands a purged id out again and an id never
    names two photos. The file keeps its size until a VACUUM."""
    before = iso_ago(older_than_days * 86400)
    with transaction(db) as c:
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
        n = c.execute("DELETE FROM images WHERE id IN (SELECT id FROM purge_ids)").rowcount
        c.execute("DELETE FROM purge_ids")
    return Purged(n, thumbs, vecs, tbytes + vbytes)


def purge_model(db: sqlite_utils.Database, model: str, pretrained: str) -> tuple[int, int]:
    """Remove every vector of one model: (vectors, bytes). The caller makes sure it is not
    the configured model (its statuses would lie)."""
    with transaction(db) as c:
        n, size = c.execute("SELECT count(*), coalesce(sum(length(vector)), 0) FROM embeddings "
                            "WHERE model = ? AND pretrained = ?", (model, pretrained)).fetchone()
        c.execute("DELETE FROM embeddings WHERE model = ? AND pretrained = ?", (model, pretrained))
        c.execute("DELETE FROM models WHERE model = ? AND pretrained = ?", (model, pretrained))
    return int(n), int(size)


def purge_thumbnail_sizes(db: sqlite_utils.Database, sizes: Sequence[int]) -> tuple[int, int]:
    """Remove the thumbnails of these sizes (no longer configured): (thumbnails, bytes)."""
    marks = ",".join("?" * len(sizes))
    with transaction(db) as c:
        n, size = c.execute(f"SELECT count(*), coalesce(sum(length(data)), 0) FROM thumbnails "
                            f"WHERE size IN ({marks})", tuple(sizes)).fetchone()
        c.execute(f"DELETE FROM thumbnails WHERE size IN ({marks})", tuple(sizes))
    return int(n), int(size)


def vacuum(db: sqlite_utils.Database) -> tuple[int, int]:
    """VACUUM: rewrite the file without its free pages. Blocks every writer while it runs and
    needs free disk about the size of the database. Returns (bytes before, bytes after)."""
    def size() -> int:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        return int(db.execute("PRAGMA page_count").fetchone()[0]) * int(page_size)

    before = size()
    db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return before, size()


# ------------------------------------------------------------------------------- scan progress


def set_scan(db: sqlite_utils.Database, root: str, state: str, *, folders: int = 0,
             files: int = 0, to_take: int = 0, taken: int = 0, gone: int = 0,
             message: str | None = None, finished: bool = False) -> None:
    """Record a watched root's scan: ``scanning`` with its progress so far, or ``done``."""
    now = now_iso()
    with transaction(db) as c:
        c.execute(
            "INSERT INTO scans (root, state, folders, files, to_take, taken, gone, message, "
            "started_at, updated_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(root) DO UPDATE SET state = excluded.state, "
            "folders = excluded.folders, files = excluded.files, to_take = excluded.to_take, "
            "taken = excluded.taken, gone = excluded.gone, message = excluded.message, "
            "started_at = CASE WHEN scans.state = 'scanning' AND excluded.state = 'scanning' "
            "THEN scans.started_at WHEN excluded.state = 'scanning' THEN excluded.started_at "
            "ELSE scans.started_at END, "
            "updated_at = excluded.updated_at, finished_at = excluded.finished_at",
            (root, state, folders, files, to_take, taken, gone, message, now, now,
             now if finished else None),
        )


def scans(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    return [dict(r) for r in db.execute("SELECT * FROM scans ORDER BY root")]


# ---------------------------------------------------------------------- models and settings


class Fingerprints:
    """The ``fingerprints`` table as a :class:`watcherd.media.identity.FingerprintCache`.
    On a read-only connection ``put`` does nothing (the next writer stores it)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def get(self, path: str, size: int, mtime_ns: int) -> str | None:
        try:
            row = self.conn.execute("SELECT sha256 FROM fingerprints WHERE path = ? AND size = ? "
                                    "AND mtime_ns = ?", (path, size, mtime_ns)).fetchone()
        except sqlite3.OperationalError:  # a database older than schema 6, read-only
            return None
        return None if row is None else str(row[0])

    def put(self, path: str, size: int, mtime_ns: int, sha256: str) -> None:
        with contextlib.suppress(sqlite3.OperationalError):  # read-only (search): not cached
            self.conn.execute("INSERT OR REPLACE INTO fingerprints (path, size, mtime_ns, "
                              "sha256) VALUES (?, ?, ?, ?)", (path, size, mtime_ns, sha256))


def record_model(db: sqlite_utils.Database, model: str, pretrained: str, source: str) -> None:
    """Where this identity was last loaded from (``models``)."""
    now = now_iso()
    with transaction(db) as c:
        c.execute("INSERT INTO models (model, pretrained, source, first_seen, last_seen) "
                  "VALUES (?, ?, ?, ?, ?) ON CONFLICT (model, pretrained) DO UPDATE SET "
                  "source = excluded.source, last_seen = excluded.last_seen",
                  (model, pretrained, source, now, now))


def model_sources(conn: sqlite3.Connection) -> dict[tuple[str, str], str]:
    try:
        return {(r[0], r[1]): r[2] or "" for r in conn.execute(
            "SELECT model, pretrained, source FROM models")}
    except sqlite3.OperationalError:
        return {}


def adopt_vectors(db: sqlite_utils.Database, old: tuple[str, str], new: tuple[str, str]) -> int:
    """Relabel the vectors stored under ``old`` (a pre-schema-6 key: the configured strings
    with absolute paths) as ``new`` (the identity of the same weights). A photo that already
    has a vector under ``new`` keeps that one."""
    if old == new:
        return 0
    with transaction(db) as c:
        n = c.execute("UPDATE OR IGNORE embeddings SET model = ?, pretrained = ? "
                      "WHERE model = ? AND pretrained = ?", (*new, *old)).rowcount
        c.execute("DELETE FROM embeddings WHERE model = ? AND pretrained = ?", old)
    return n


def setting(conn: sqlite3.Connection, name: str) -> str | None:
    try:
        row = conn.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
    except sqlite3.OperationalError:  # older schema, read-only
        return None
    return None if row is None else row[0]


def set_setting(c: sqlite3.Connection, name: str, value: str) -> None:
    """Inside the caller's transaction."""
    c.execute("INSERT OR REPLACE INTO settings (name, value, updated_at) VALUES (?, ?, ?)",
              (name, value, now_iso()))
