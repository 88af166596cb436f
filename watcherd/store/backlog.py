"""Bringing the statuses in line with the settings: a model change or a thumbnail settings
change turns the photos it leaves uncovered into a *backlog* (pending rows with
``*_queued_at = 'backlog'``, see migration 6), which the outbox feeds in slices behind new
photos. Plain SQL; the settings come in as plain values.

``images.embedding_status`` describes the configured model: ``done`` when the photo has a
vector of it, ``pending`` until it has one (the backlog), ``failed`` when computing it failed.
``images.thumbnail_status`` describes the configured sizes, format and quality.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from watcherd.store.schema import BACKLOG, Kind, now_iso, transaction
from watcherd.store.settings import set_setting, setting

EMBEDDING_MODEL = "embedding_model"  # settings: the identity embedding_status describes
THUMBNAILS = "thumbnails"  # settings: the sizes, format and quality thumbnail_status describes
ESTIMATE = "backfill:"  # settings: + kind, the estimate made when a backfill started
_SAMPLE = 500  # recent results to measure per-photo time and size on


@dataclass(frozen=True)
class ThumbSettings:
    sizes: tuple[int, ...]
    format: str
    quality: int

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "sizes": sorted(set(self.sizes))}, sort_keys=True)

    @staticmethod
    def from_json(text: str | None) -> ThumbSettings | None:
        try:
            d = json.loads(text or "")
            return ThumbSettings(tuple(int(s) for s in d["sizes"]), str(d["format"]),
                                 int(d["quality"]))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Estimate:
    """What a backfill will cost, from figures measured on this library's recent work."""

    kind: str
    reason: str
    photos: int
    bytes: int | None  # roughly, what it adds to the database
    seconds: float | None  # roughly, at the pace recent photos were done
    started_at: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))


# ---------------------------------------------------------------------------------- embeddings


def sync_embeddings(conn: sqlite3.Connection, model: str, pretrained: str) -> int | None:
    """Make ``embedding_status`` describe (model, pretrained) when it described another model
    (or nothing yet): photos with a vector of it become ``done``; live photos without one
    join the backlog (those never sent stay new: they go first). Returns the size of the
    backlog added, or None when the statuses already described this model."""
    key = json.dumps([model, pretrained])
    if setting(conn, EMBEDDING_MODEL) == key:
        return None
    now = now_iso()
    has = ("EXISTS (SELECT 1 FROM embeddings e WHERE e.image_id = images.id AND e.model = ? "
           "AND e.pretrained = ?)")
    with transaction(conn) as c:
        c.execute(f"UPDATE images SET embedding_status = 'done', embedding_error = NULL, "
                  f"embedding_queued_at = NULL, updated_at = ? WHERE deleted_at IS NULL "
                  f"AND embedding_status != 'done' AND {has}", (now, model, pretrained))
        added = c.execute(
            f"UPDATE images SET embedding_status = 'pending', embedding_error = NULL, "
            f"embedding_queued_at = ?, embedding_attempts = 0, updated_at = ? "
            f"WHERE deleted_at IS NULL AND sha256 IS NOT NULL "
            f"AND NOT (embedding_status = 'pending' AND embedding_queued_at IS NULL) "
            f"AND NOT {has}", (BACKLOG, now, model, pretrained)).rowcount
        set_setting(c, EMBEDDING_MODEL, key)
    return added


# ---------------------------------------------------------------------------------- thumbnails


def sync_thumbnails(conn: sqlite3.Connection, wanted: ThumbSettings) -> tuple[int, str] | None:
    """Make ``thumbnail_status`` describe ``wanted``: a changed format or quality puts every
    photo with thumbnails in the backlog; an added size, the photos without it. Sizes no
    longer configured are kept. Returns (photos added, why) or None when nothing changed."""
    before = ThumbSettings.from_json(setting(conn, THUMBNAILS))
    if before == wanted or (before is None and _no_thumbnails(conn)):
        with transaction(conn) as c:
            set_setting(c, THUMBNAILS, wanted.to_json())
        return None
    now = now_iso()
    sizes = sorted(set(wanted.sizes))
    where = "deleted_at IS NULL AND sha256 IS NOT NULL AND thumbnail_status != 'pending'"
    params: tuple[Any, ...] = ()
    if before is not None and (before.format, before.quality) != (wanted.format, wanted.quality):
        why = (f"format/quality changed ({before.format} {before.quality} -> "
               f"{wanted.format} {wanted.quality})")
        where += " AND thumbnail_status = 'done'"
    else:
        marks = ",".join("?" * len(sizes))
        why = "sizes added: " + ", ".join(
            str(s) for s in sizes if before is None or s not in before.sizes)
        where += (f" AND thumbnail_status = 'done' AND (SELECT count(*) FROM thumbnails t WHERE "
                  f"t.image_id = images.id AND t.size IN ({marks})) < ?")
        params = (*sizes, len(sizes))
    with transaction(conn) as c:
        added = c.execute(
            f"UPDATE images SET thumbnail_status = 'pending', thumbnail_error = NULL, "
            f"thumbnail_queued_at = ?, thumbnail_attempts = 0, updated_at = ? WHERE {where}",
            (BACKLOG, now, *params)).rowcount
        set_setting(c, THUMBNAILS, wanted.to_json())
    return (added, why) if added else None


def _no_thumbnails(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM thumbnails LIMIT 1").fetchone() is None


# -------------------------------------------------------------------------- feeding, figures


def due_backlog(conn: sqlite3.Connection, kind: Kind, limit: int) -> list[tuple[int, str]]:
    """The next slice of the backlog, most recently discovered photos first."""
    return [(r[0], r[1]) for r in conn.execute(
        f"SELECT id, sha256 FROM images INDEXED BY images_{kind}_backlog WHERE "
        f"{kind}_status = 'pending' AND {kind}_queued_at = '{BACKLOG}' AND deleted_at IS NULL "
        f"AND sha256 IS NOT NULL ORDER BY id DESC LIMIT ?", (limit,))]


def backlog_size(conn: sqlite3.Connection, kind: Kind) -> int:
    try:
        return int(conn.execute(
            f"SELECT count(*) FROM images INDEXED BY images_{kind}_backlog WHERE "
            f"{kind}_status = 'pending' AND {kind}_queued_at = '{BACKLOG}' "
            "AND deleted_at IS NULL").fetchone()[0])
    except sqlite3.OperationalError:  # no such index: a database older than schema 6
        return 0


def estimate(conn: sqlite3.Connection, kind: Kind, photos: int, reason: str, *,
             new_sizes: tuple[int, ...] = ()) -> Estimate:
    """Roughly what a backfill of ``photos`` costs, from this library's recent results: the
    time between the last ``_SAMPLE`` results (per photo), and their size. For thumbnails,
    ``new_sizes`` are scaled from the nearest stored size by area."""
    table = "thumbnails" if kind == "thumbnail" else "embeddings"
    span = conn.execute(
        f"SELECT count(DISTINCT image_id), (julianday(max(created_at)) - "
        f"julianday(min(created_at))) * 86400.0 FROM (SELECT image_id, created_at FROM {table} "
        f"ORDER BY created_at DESC LIMIT ?)", (_SAMPLE,)).fetchone()
    per_photo = span[1] / (span[0] - 1) if span[0] and span[0] > 10 and span[1] else None
    if kind == "embedding":
        avg = conn.execute("SELECT avg(length(vector)) FROM (SELECT vector FROM embeddings "
                           "ORDER BY created_at DESC LIMIT ?)", (_SAMPLE,)).fetchone()[0]
        size = float(avg) if avg else None
    else:
        stored = {int(r[0]): float(r[1]) for r in conn.execute(
            "SELECT size, avg(length(data)) FROM (SELECT size, data FROM thumbnails ORDER BY "
            "created_at DESC LIMIT ?) GROUP BY size", (_SAMPLE,))}
        size = None
        if stored:
            size = 0.0
            for s in new_sizes or tuple(stored):
                near = min(stored, key=lambda k: abs(k - s))
                size += stored[near] * (s / near) ** 2
    return Estimate(kind, reason, photos, None if size is None else round(size * photos),
                    None if per_photo is None else round(per_photo * photos, 1), now_iso())


def save_estimate(conn: sqlite3.Connection, e: Estimate) -> None:
    with transaction(conn) as c:
        set_setting(c, ESTIMATE + e.kind, e.to_json())


def estimates(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """The last backfill estimate per kind, with how many photos are still in its backlog."""
    out: dict[str, dict[str, Any]] = {}
    for kind in ("thumbnail", "embedding"):
        text = setting(conn, ESTIMATE + kind)
        if text:
            out[kind] = {**json.loads(text), "remaining": backlog_size(conn, kind)}
    return out
