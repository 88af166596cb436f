"""What the statuses describe: each model identity seen and where it was loaded from
(``models``), weight files' fingerprints (``fingerprints``), the settings rows (``settings``),
and relabelling vectors stored under a pre-schema-6 key."""

from __future__ import annotations

import contextlib
import sqlite3

from watcherd.store.schema import now_iso, transaction


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


def record_model(conn: sqlite3.Connection, model: str, pretrained: str, source: str) -> None:
    """Where this identity was last loaded from (``models``)."""
    now = now_iso()
    with transaction(conn) as c:
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


def adopt_vectors(conn: sqlite3.Connection, old: tuple[str, str], new: tuple[str, str]) -> int:
    """Relabel the vectors stored under ``old`` (a pre-schema-6 key: the configured strings
    with absolute paths) as ``new`` (the identity of the same weights). A photo that already
    has a vector under ``new`` keeps that one."""
    if old == new:
        return 0
    with transaction(conn) as c:
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
