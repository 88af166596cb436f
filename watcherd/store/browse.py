"""Read-only figures about the library for status, the web page and /metrics: counts per
status, failures grouped by reason, work done over a recent window, processing durations,
workers and scans. Plain SQL on any connection (a read-only one is enough); rows come back as
plain dicts."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from watcherd.store.schema import FACE_SQL, I_FACE_SQL, KINDS, folder_range, iso_ago


def status_counts(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        counts = {"pending": 0, "done": 0, "failed": 0}
        for status, n in conn.execute(
            f"SELECT {kind}_status, count(*) FROM images WHERE deleted_at IS NULL GROUP BY 1"
        ):
            counts[status] = n
        out[kind] = counts
    out["images"] = {
        "total": conn.execute("SELECT count(*) FROM images WHERE deleted_at IS NULL").fetchone()[0],
        "deleted": conn.execute(
            "SELECT count(*) FROM images WHERE deleted_at IS NOT NULL").fetchone()[0],
    }
    return out


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


def scans(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Each watched root's last scan (``scans``)."""
    return _dicts(conn.execute("SELECT * FROM scans ORDER BY root"))


def pending_count(conn: sqlite3.Connection) -> int:
    """Live photos with any work pending."""
    return int(conn.execute(
        "SELECT count(*) FROM images WHERE deleted_at IS NULL AND "
        "(thumbnail_status = 'pending' OR embedding_status = 'pending')").fetchone()[0])


#: Public columns of one photo, as /api/images/ID returns them.
IMAGE_COLUMNS = ("id", "path", "sha256", "size", "mtime", "width", "height", "format",
                 "discovered_at", "thumbnail_status", "thumbnail_error", "embedding_status",
                 "embedding_error", "deleted_at", "media_type", "duration", "decode", "shot_id")


def image(conn: sqlite3.Connection, image_id: int) -> dict[str, Any] | None:
    """One photo's public columns, the sizes of its thumbnails and its ``metadata`` row (None
    while it has none)."""
    cur = conn.execute(f"SELECT {', '.join(IMAGE_COLUMNS)} FROM images WHERE id = ?",
                       (image_id,))
    row = cur.fetchone()
    if row is None:
        return None
    out = dict(zip(IMAGE_COLUMNS, row, strict=True))
    out["thumbnails"] = [
        {"size": s, "width": w, "height": h, "format": f} for s, w, h, f in
        conn.execute("SELECT size, width, height, format FROM thumbnails "
                     "WHERE image_id = ? ORDER BY size", (image_id,))]
    out["metadata"] = metadata(conn, image_id)
    out["shot"] = shot(conn, image_id, out["shot_id"])
    return out


def shot(conn: sqlite3.Connection, image_id: int, shot_id: int | None) -> list[dict[str, Any]]:
    """The other live files of a photo's shot (its face first), as ``{image_id, path, format,
    media_type}``: a JPEG's RAW and clip, or a RAW's JPEG."""
    if shot_id is None:
        return []
    return [{"image_id": r[0], "path": r[1], "format": r[2], "media_type": r[3]}
            for r in conn.execute(
                "SELECT id, path, format, media_type FROM images WHERE (id = ? OR shot_id = ?) "
                "AND id != ? AND deleted_at IS NULL ORDER BY id != ?, id",
                (shot_id, shot_id, image_id, shot_id))]


@dataclass(frozen=True)
class TileFacts:
    has_thumb: bool
    media_type: str = "photo"
    duration: float | None = None
    badge: str | None = None  # "RAW+JPEG", "LIVE" for a shot's face


def tile_facts(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, TileFacts]:
    """What a grid shows on each photo's tile: a thumbnail or not, ▶ and the duration for a
    video, a badge for a shot's face."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    thumbs = with_thumbnails(conn, ids)
    badges: dict[int, set[str]] = {}
    for face, media_type in conn.execute(
            f"SELECT shot_id, media_type FROM images WHERE shot_id IN ({marks}) "
            "AND shot_id != id AND deleted_at IS NULL", list(ids)):
        badges.setdefault(int(face), set()).add("LIVE" if media_type == "video" else "RAW+JPEG")
    return {int(r[0]): TileFacts(int(r[0]) in thumbs, str(r[1]), r[2],
                                 " ".join(sorted(badges.get(int(r[0]), ()), reverse=True))
                                 or None)
            for r in conn.execute(
                f"SELECT id, media_type, duration FROM images WHERE id IN ({marks})", list(ids))}


def thumbnail(conn: sqlite3.Connection, image_id: int, size: int
              ) -> tuple[bytes, str, str] | None:
    """(data, format, created_at) of a live photo's thumbnail."""
    row = conn.execute(
        "SELECT t.data, t.format, t.created_at FROM thumbnails t JOIN images i "
        "ON i.id = t.image_id WHERE t.image_id = ? AND t.size = ? AND i.deleted_at IS NULL",
        (image_id, size)).fetchone()
    return None if row is None else (bytes(row[0]), str(row[1]), str(row[2]))


def newest(conn: sqlite3.Connection, offset: int, limit: int,
           under: str | None) -> list[tuple[int, str, float | None]]:
    """(id, path, mtime) of live photos, newest file first (below ``under`` if given); a shot
    once, by its face."""
    where, params = f"deleted_at IS NULL AND {FACE_SQL}", []
    if under is not None:
        lo, hi = folder_range(under)
        where += " AND path >= ? AND path < ?"
        params += [lo, hi]
    return [(r[0], r[1], r[2]) for r in conn.execute(
        f"SELECT id, path, mtime FROM images WHERE {where} "
        f"ORDER BY mtime DESC, id DESC LIMIT ? OFFSET ?", (*params, limit, offset))]


def with_thumbnails(conn: sqlite3.Connection, ids: Sequence[int]) -> set[int]:
    """Which of these photos have at least one thumbnail."""
    if not ids:
        return set()
    marks = ",".join("?" * len(ids))
    return {r[0] for r in conn.execute(
        f"SELECT DISTINCT image_id FROM thumbnails WHERE image_id IN ({marks})", list(ids))}


#: One photo's metadata, as its page shows it.
METADATA_COLUMNS = ("taken_at", "taken_offset", "taken_source", "latitude", "longitude",
                    "altitude", "country", "country_code", "region", "place", "camera_make",
                    "camera_model", "lens", "focal_length", "f_number", "exposure_time", "iso",
                    "rating", "title", "description", "keywords", "video_codec", "fps", "error")


def metadata(conn: sqlite3.Connection, image_id: int) -> dict[str, Any] | None:
    """One photo's ``metadata`` row (``keywords`` as a list), or None when it has none."""
    import json

    row = conn.execute(f"SELECT {', '.join(METADATA_COLUMNS)} FROM metadata WHERE image_id = ?",
                       (image_id,)).fetchone()
    if row is None:
        return None
    out = dict(zip(METADATA_COLUMNS, row, strict=True))
    try:
        words = json.loads(out["keywords"]) if out["keywords"] else []
    except ValueError:
        words = []
    out["keywords"] = [str(w) for w in words] if isinstance(words, list) else []
    return out


def timeline(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """("YYYY-MM", live photos taken that month), newest month first."""
    return [(str(r[0]), int(r[1])) for r in conn.execute(
        "SELECT substr(m.taken_at, 1, 7) AS month, count(*) FROM metadata m "
        f"JOIN images i ON i.id = m.image_id WHERE i.deleted_at IS NULL AND {I_FACE_SQL} "
        "AND m.taken_at IS NOT NULL GROUP BY month ORDER BY month DESC")]
