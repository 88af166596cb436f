"""The ``metadata`` table (public: what each photo says about itself) and ``metadata_due``
(watcherd's own: photos whose metadata must be read again without their pixels).

A photo's row is written by its thumbnail step, in the same transaction as its thumbnails
(``outcomes.save_thumbnails``), or by a metadata-only step for the photos in
``metadata_due``: those processed before metadata existed (the backfill, filled by migration
8) and those whose XMP sidecar appeared, changed or went away. Values come in as plain tuples
in :data:`watcherd.metadata.fields.COLUMNS` order."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from watcherd.metadata.fields import COLUMNS
from watcherd.store.schema import FOLDER_SQL, now_iso, transaction

_INSERT = (f"INSERT OR REPLACE INTO metadata (image_id, {', '.join(COLUMNS)}, updated_at) "
           f"VALUES ({', '.join('?' * (len(COLUMNS) + 2))})")

_KEYWORDS = COLUMNS.index("keywords")

BACKFILL = "backfill"
SIDECAR = "sidecar"


def write(c: sqlite3.Connection, image_id: int, values: Sequence[Any]) -> None:
    """Store a photo's metadata (inside the caller's transaction); it is no longer due."""
    if len(values) != len(COLUMNS):
        raise ValueError(f"{len(values)} metadata values for {len(COLUMNS)} columns")
    c.execute(_INSERT, (image_id, *values, now_iso()))
    c.execute("DELETE FROM metadata_due WHERE image_id = ?", (image_id,))
    c.execute("DELETE FROM metadata_keywords WHERE image_id = ?", (image_id,))
    words = _words(values[_KEYWORDS])
    if words:
        c.executemany("INSERT OR IGNORE INTO metadata_keywords (keyword, image_id) "
                      "VALUES (?, ?)", [(k, image_id) for k in words])


def _words(keywords: Any) -> list[str]:
    """The strings of a ``keywords`` JSON array (nothing for anything else)."""
    try:
        words = json.loads(keywords) if keywords else []
    except (TypeError, ValueError):
        return []
    return [w for w in words if isinstance(w, str)] if isinstance(words, list) else []


def save(conn: sqlite3.Connection, image_id: int, sha256: str, values: Sequence[Any]) -> bool:
    """A metadata-only result: kept only for a live row with the same content."""
    with transaction(conn) as c:
        live = c.execute("SELECT 1 FROM images WHERE id = ? AND sha256 = ? AND deleted_at IS "
                         "NULL", (image_id, sha256)).fetchone() is not None
        if live:
            write(c, image_id, values)
        else:  # changed (its new content's thumbnail step writes it) or gone
            c.execute("DELETE FROM metadata_due WHERE image_id = ? AND sha256 = ?",
                      (image_id, sha256))
        return live


def drop_due(conn: sqlite3.Connection, image_id: int, sha256: str) -> None:
    with transaction(conn) as c:
        c.execute("DELETE FROM metadata_due WHERE image_id = ? AND sha256 = ?",
                  (image_id, sha256))


def begin(conn: sqlite3.Connection, image_id: int, sha256: str) -> tuple[str, float] | None:
    """A metadata-only step's photo: (path, recorded mtime) when it is still due, live and
    unchanged."""
    row = conn.execute(
        "SELECT i.path, i.mtime FROM metadata_due d JOIN images i ON i.id = d.image_id "
        "WHERE d.image_id = ? AND i.sha256 = ? AND i.deleted_at IS NULL",
        (image_id, sha256)).fetchone()
    return None if row is None else (str(row[0]), float(row[1] or 0.0))


# ------------------------------------------------------------------------------- what is due


def mark_due(conn: sqlite3.Connection, image_ids: Iterable[int], reason: str) -> int:
    """Read these photos' metadata again (unsent: the outbox sends them at its next tick)."""
    with transaction(conn) as c:
        return sum(c.execute(
            "INSERT OR REPLACE INTO metadata_due (image_id, sha256, reason) SELECT id, sha256, "
            "? FROM images WHERE id = ? AND sha256 IS NOT NULL AND deleted_at IS NULL",
            (reason, i)).rowcount for i in image_ids)


def mark_all_due(conn: sqlite3.Connection) -> int:
    """Every processed live photo's metadata is read again (``watcherd retry --metadata``)."""
    with transaction(conn) as c:
        return c.execute(
            "INSERT OR REPLACE INTO metadata_due (image_id, sha256, reason) SELECT id, sha256, "
            f"'{BACKFILL}' FROM images WHERE deleted_at IS NULL AND sha256 IS NOT NULL "
            "AND thumbnail_status != 'pending'").rowcount


def photos_of_sidecar(conn: sqlite3.Connection, base: str, whole_name: bool) -> list[int]:
    """The live photos an XMP sidecar describes: ``base`` is its path without ``.xmp``; a
    sidecar named after a whole file name (``IMG_1.CR2.xmp``) describes that file, one named
    after a stem (``IMG_1.xmp``) every ``IMG_1.*`` in its folder."""
    if whole_name:
        row = conn.execute("SELECT id FROM images WHERE path = ? AND deleted_at IS NULL",
                           (base,)).fetchone()
        return [] if row is None else [int(row[0])]
    folder, _, stem = base.rpartition("/")
    return [int(r[0]) for r in conn.execute(
        f"SELECT id, path FROM images WHERE {FOLDER_SQL} = ? AND deleted_at IS NULL",
        (folder + "/",)) if _stem(str(r[1])) == stem]


def older_than(conn: sqlite3.Connection, image_ids: Sequence[int], mtime: float) -> list[int]:
    """Those of ``image_ids`` whose metadata row is missing or older than ``mtime`` (epoch)."""
    since = now_iso(datetime.fromtimestamp(mtime, UTC))
    marks = ",".join("?" * len(image_ids))
    fresh = {int(r[0]) for r in conn.execute(
        f"SELECT image_id FROM metadata WHERE image_id IN ({marks}) AND updated_at >= ?",
        (*image_ids, since))}
    return [i for i in image_ids if i not in fresh]


def _stem(path: str) -> str:
    name = path.rpartition("/")[2]
    return name.rpartition(".")[0] if "." in name else name


def due(conn: sqlite3.Connection, limit: int, *, resend_before: str | None = None
        ) -> list[tuple[int, str]]:
    """The next photos to send: sidecar changes first, then the newest photos; with
    ``resend_before``, also those sent before that time (their message was lost)."""
    sent = "queued_at IS NULL" if resend_before is None else "(queued_at IS NULL OR " \
        "queued_at < ?)"
    params: tuple[Any, ...] = () if resend_before is None else (resend_before,)
    return [(int(r[0]), str(r[1])) for r in conn.execute(
        f"SELECT image_id, sha256 FROM metadata_due WHERE {sent} "
        f"ORDER BY reason = '{SIDECAR}' DESC, image_id DESC LIMIT ?", (*params, limit))]


def prune_due(conn: sqlite3.Connection) -> int:
    """Forget due photos deleted or changed since (a changed photo's step reads it anew)."""
    with transaction(conn) as c:
        return c.execute(
            "DELETE FROM metadata_due WHERE image_id IN (SELECT d.image_id FROM metadata_due d "
            "LEFT JOIN images i ON i.id = d.image_id AND i.sha256 = d.sha256 "
            "AND i.deleted_at IS NULL WHERE i.id IS NULL)").rowcount


def mark_sent(conn: sqlite3.Connection, items: Iterable[tuple[int, str]]) -> None:
    now = now_iso()
    with transaction(conn) as c:
        c.executemany("UPDATE metadata_due SET queued_at = ?, attempts = attempts + 1 "
                      "WHERE image_id = ? AND sha256 = ?", [(now, i, s) for i, s in items])


def give_up(conn: sqlite3.Connection, max_attempts: int) -> int:
    """Photos sent ``max_attempts`` times whose metadata never came back (a worker died on
    them each time): a row that says so, and they are no longer due."""
    reason = f"metadata could not be read: sent {max_attempts} times, no result"
    empty = [None] * (len(COLUMNS) - 1)
    with transaction(conn) as c:
        ids = [int(r[0]) for r in c.execute(
            "SELECT image_id FROM metadata_due WHERE attempts >= ?", (max_attempts,))]
        for i in ids:
            if c.execute("SELECT 1 FROM metadata WHERE image_id = ?", (i,)).fetchone():
                c.execute("UPDATE metadata SET error = ?, updated_at = ? WHERE image_id = ?",
                          (reason, now_iso(), i))
                c.execute("DELETE FROM metadata_due WHERE image_id = ?", (i,))
            else:
                write(c, i, [*empty, reason])
        return len(ids)


def due_count(conn: sqlite3.Connection) -> int:
    try:
        return int(conn.execute("SELECT count(*) FROM metadata_due").fetchone()[0])
    except sqlite3.OperationalError:  # a database older than schema 8 (read-only readers)
        return 0


# ---------------------------------------------------------------------------------- coverage


def coverage(conn: sqlite3.Connection) -> dict[str, Any]:
    """How much of the live, processed library has metadata: rows, capture times by source,
    positions, places, cameras, errors, and what is still due."""
    try:
        row = conn.execute(
            "SELECT count(*), count(m.image_id), count(m.taken_at), "
            "count(CASE WHEN m.taken_source = 'mtime' THEN 1 END), count(m.latitude), "
            "count(m.country_code), count(m.camera_model), count(m.error) "
            "FROM images i LEFT JOIN metadata m ON m.image_id = i.id "
            "WHERE i.deleted_at IS NULL AND i.sha256 IS NOT NULL "
            "AND i.thumbnail_status != 'pending'").fetchone()
        sources = {str(r[0]): int(r[1]) for r in conn.execute(
            "SELECT m.taken_source, count(*) FROM metadata m JOIN images i ON i.id = m.image_id "
            "WHERE i.deleted_at IS NULL AND m.taken_source IS NOT NULL "
            "GROUP BY m.taken_source ORDER BY 2 DESC")}
    except sqlite3.OperationalError:
        return {}
    keys = ("processed", "with_metadata", "taken", "taken_from_mtime", "located", "placed",
            "camera", "errors")
    return {**dict(zip(keys, (int(v) for v in row), strict=True)), "taken_sources": sources,
            "due": due_count(conn)}
