"""The watcher's side of the ``images`` table: what is known of a folder's files, recording a
complete file (new, changed, restored, moved, identical content reused), unreadable files,
renames and moves of files and folders, deletions, retired rows; and each root's scan
progress (``scans``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from watcherd.formats import kind_of
from watcherd.store import shots
from watcherd.store.schema import FOLDER_SQL, folder_range, now_iso, transaction


@dataclass(frozen=True)
class Known:
    size: int | None
    mtime: float | None
    deleted: bool


def rows_in_folder(conn: sqlite3.Connection, folder: str) -> dict[str, Known]:
    """Every row directly in ``folder`` (not below it): one indexed lookup."""
    rows = conn.execute(
        f"SELECT path, size, mtime, deleted_at FROM images WHERE {FOLDER_SQL} = ?",
        (folder.rstrip("/") + "/",))
    return {r[0]: Known(r[1], r[2], r[3] is not None) for r in rows}


def live_folders_under(conn: sqlite3.Connection, root: Path, *,
                       before: str | None = None) -> list[str]:
    """The folders (no trailing slash) at or below ``root`` holding at least one live row
    (``before``: one not updated since then)."""
    lo, hi = folder_range(root)
    rows = conn.execute(
        f"SELECT DISTINCT {FOLDER_SQL} FROM images WHERE path >= ? AND path < ? "
        "AND deleted_at IS NULL AND (? IS NULL OR updated_at <= ?)", (lo, hi, before, before))
    return [r[0].rstrip("/") for r in rows]


def has_live_rows_under(conn: sqlite3.Connection, root: Path) -> bool:
    lo, hi = folder_range(root)
    return conn.execute("SELECT 1 FROM images WHERE path >= ? AND path < ? AND deleted_at IS NULL "
                        "LIMIT 1", (lo, hi)).fetchone() is not None


def live_twins(conn: sqlite3.Connection, sha256: str, path: str) -> list[tuple[int, str]]:
    """Live rows with this content at another path: (id, path)."""
    return [(r[0], r[1]) for r in conn.execute(
        "SELECT id, path FROM images WHERE sha256 = ? AND path != ? AND deleted_at IS NULL",
        (sha256, path))]


def known(conn: sqlite3.Connection, path: str) -> Known | None:
    row = conn.execute(
        "SELECT size, mtime, deleted_at FROM images WHERE path = ?", (path,)).fetchone()
    return None if row is None else Known(row[0], row[1], row[2] is not None)



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


def record_file(conn: sqlite3.Connection, path: str, size: int, mtime: float, sha256: str,
                reuse: Reuse, *, moved_from: tuple[int, str] | None = None) -> Recorded:
    """Upsert the row for a complete file (see ``record_in``), in its own transaction."""
    with transaction(conn) as c:
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
    recorded = _record(c, path, size, mtime, sha256, reuse, moved_from, now)
    shots.relink(c, path, now)
    if recorded.action == "moved" and moved_from is not None and moved_from[1] != path:
        shots.relink(c, moved_from[1], now)  # the stem it left
    return recorded


def _record(c: sqlite3.Connection, path: str, size: int, mtime: float, sha256: str,
            reuse: Reuse, moved_from: tuple[int, str] | None, now: str) -> Recorded:
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
            "INSERT INTO images (path, sha256, size, mtime, discovered_at, updated_at, "
            "media_type) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (path, sha256, size, mtime, now, now, media_type(path)),
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
            "UPDATE images SET thumbnail_status = 'done', (width, height, format, decode, "
            "duration) = (SELECT width, height, format, decode, duration FROM images "
            "WHERE id = ?) WHERE id = ?",
            (twin[0], image_id),
        )
        # The pixels are the same, the metadata may not be (the file's date, its sidecar):
        # read without the pixels, behind new photos.
        c.execute("INSERT OR REPLACE INTO metadata_due (image_id, sha256, reason) "
                  "VALUES (?, ?, 'copy')", (image_id, sha256))


def record_unreadable(conn: sqlite3.Connection, path: str, reason: str) -> int:
    """A file the watcher cannot read (permissions): one row, both statuses failed with the
    reason. ``sha256``/``size``/``mtime`` stay NULL, so the next scan tries the file again (a
    chmod does not change mtime) and, once readable, records it as changed."""
    with transaction(conn) as c:
        return unreadable_in(c, path, reason)


def unreadable_in(c: sqlite3.Connection, path: str, reason: str) -> int:
    """``record_unreadable`` inside the caller's transaction."""
    now = now_iso()
    reason = reason[:500]
    row = c.execute("SELECT id FROM images WHERE path = ?", (path,)).fetchone()
    if row is None:
        image_id = c.execute(
            "INSERT INTO images (path, discovered_at, updated_at, thumbnail_status, "
            "thumbnail_error, embedding_status, embedding_error, media_type) "
            "VALUES (?, ?, ?, 'failed', ?, 'failed', ?, ?)",
            (path, now, now, reason, reason, media_type(path)),
        ).lastrowid
        assert image_id is not None
        shots.relink(c, path, now)
        return image_id
    image_id = int(row["id"])
    _reset(c, image_id, None, None, None, "failed", reason, now)
    shots.relink(c, path, now)
    return image_id


def _reset(c: sqlite3.Connection, image_id: int, sha256: str | None, size: int | None,
           mtime: float | None, status: str, error: str | None, now: str) -> None:
    """The file at this row is new content (or unreadable): drop what was derived from the old
    content and start both tasks over with ``status``/``error``."""
    c.execute("DELETE FROM thumbnails WHERE image_id = ?", (image_id,))
    c.execute("DELETE FROM embeddings WHERE image_id = ?", (image_id,))
    forget_metadata(c, image_id)  # the new content's thumbnail step writes its own
    c.execute(
        "UPDATE images SET sha256 = ?, size = ?, mtime = ?, width = NULL, height = NULL, "
        "format = NULL, decode = NULL, duration = NULL, deleted_at = NULL, updated_at = ?, "
        "thumbnail_status = ?, thumbnail_error = ?, thumbnail_queued_at = NULL, "
        "thumbnail_attempts = 0, embedding_status = ?, embedding_error = ?, "
        "embedding_queued_at = NULL, embedding_attempts = 0 WHERE id = ?",
        (sha256, size, mtime, now, status, error, status, error, image_id),
    )


def media_type(path: str) -> str:
    """``images.media_type`` of a file at ``path``: 'video' or 'photo' (RAWs are photos)."""
    return "video" if kind_of(path) == "video" else "photo"


def forget_metadata(c: sqlite3.Connection, image_id: int) -> None:
    for table in ("metadata", "metadata_due", "metadata_keywords", "shot_identifiers"):
        c.execute(f"DELETE FROM {table} WHERE image_id = ?", (image_id,))


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
        forget_metadata(c, image_id)
        c.execute(
            "UPDATE images SET path = ? || id || ':' || path, deleted_at = coalesce(deleted_at, "
            "?), updated_at = ? WHERE id = ?", (RETIRED_PREFIX, now, now, image_id))


def move_path(conn: sqlite3.Connection, src: str, dest: str) -> int | None:
    """A file was renamed/moved inside the watched tree: same row, new path."""
    with transaction(conn) as c:
        row = c.execute("SELECT id FROM images WHERE path = ?", (src,)).fetchone()
        if row is None:
            return None
        # A file that stood at dest was overwritten by the move: its row is retired (with its
        # thumbnails and embedding), the moved file keeps its own row.
        _retire(c, "path = ? AND id != ?", (dest, row["id"]), now_iso())
        now = now_iso()
        c.execute(
            "UPDATE images SET path = ?, deleted_at = NULL, updated_at = ? WHERE id = ?",
            (dest, now, row["id"]),
        )
        shots.relink(c, src, now)
        shots.relink(c, dest, now)
        return int(row["id"])


def move_folder(conn: sqlite3.Connection, src: Path, dest: Path) -> int:
    """A folder was renamed/moved inside the watched tree: rewrite every path under it."""
    lo, hi = folder_range(src)
    new_prefix = str(dest).rstrip("/") + "/"
    with transaction(conn) as c:
        # Rows that stand where the moved rows go are retired first (with their thumbnails and
        # embeddings): deleted rows of photos that were there, or stale live ones (a folder can
        # only be renamed onto an empty folder). The moved photos keep their own ids.
        now = now_iso()
        taken = [str(r[0]) for r in c.execute(
            "SELECT path FROM images WHERE path IN (SELECT ? || substr(path, ?) FROM images "
            "WHERE path >= ? AND path < ?)", (new_prefix, len(lo) + 1, lo, hi))]
        _retire(c, "path IN (SELECT ? || substr(path, ?) FROM images WHERE path >= ? AND "
                "path < ?)", (new_prefix, len(lo) + 1, lo, hi), now)
        cur = c.execute(
            "UPDATE images SET path = ? || substr(path, ?), updated_at = ? "
            "WHERE path >= ? AND path < ?", (new_prefix, len(lo) + 1, now, lo, hi),
        )
        # A shot moves whole; only a stem whose rows were retired here may have changed.
        shots.relink_paths(c, taken, now)
        return cur.rowcount


def mark_deleted(conn: sqlite3.Connection, paths: Iterable[str], *,
                 before: str | None = None) -> int:
    """The files at ``paths`` are gone (``before``: only rows not updated since then, so a
    scan's stale view never deletes a row that a live event has just moved or recorded)."""
    now = now_iso()
    with transaction(conn) as c:
        n = 0
        for path in paths:
            gone = c.execute(
                "UPDATE images SET deleted_at = ?, updated_at = ? WHERE path = ? AND "
                "deleted_at IS NULL AND (? IS NULL OR updated_at <= ?)",
                (now, now, path, before, before),
            ).rowcount
            if gone:
                shots.relink(c, path, now)
            n += gone
        return n


def mark_folder_files_deleted(conn: sqlite3.Connection, folder: str, *,
                              before: str | None = None) -> int:
    """Rows directly in ``folder`` (not below it) are gone (``before``: as for mark_deleted)."""
    now = now_iso()
    with transaction(conn) as c:
        gone = [str(r[0]) for r in c.execute(
            f"UPDATE images SET deleted_at = ?, updated_at = ? WHERE {FOLDER_SQL} = ? "
            "AND deleted_at IS NULL AND (? IS NULL OR updated_at <= ?) RETURNING path",
            (now, now, folder.rstrip("/") + "/", before, before))]
        shots.relink_paths(c, gone, now)  # a file of the folder may have come back meanwhile
        return len(gone)


def mark_folder_deleted(conn: sqlite3.Connection, folder: Path) -> int:
    lo, hi = folder_range(folder)
    now = now_iso()
    with transaction(conn) as c:
        return c.execute(
            "UPDATE images SET deleted_at = ?, updated_at = ? "
            "WHERE path >= ? AND path < ? AND deleted_at IS NULL", (now, now, lo, hi),
        ).rowcount


def set_scan(conn: sqlite3.Connection, root: str, state: str, *, folders: int = 0,
             files: int = 0, to_take: int = 0, taken: int = 0, gone: int = 0,
             message: str | None = None, finished: bool = False) -> None:
    """Record a watched root's scan: ``scanning`` with its progress so far, or ``done``."""
    now = now_iso()
    with transaction(conn) as c:
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
