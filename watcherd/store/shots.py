"""Shots: the files of one stem in one folder that are one picture taken once.

- **RAW+JPEG**: a camera RAW beside an ordinary still of the same stem (``IMG_0001.CR2`` and
  ``IMG_0001.JPG``, any case).
- **Live Photo**: a HEIC/JPEG still beside a MOV of the same stem, unless both carry an Apple
  content identifier and the two differ.

The still is the shot's *face*: its ``shot_id`` is its own id; every other member's is the
face's id; a file that stands alone has NULL. Every member is processed in full (the JPEG may be
deleted later, and the RAW then becomes its own face). Search, duplicates and the page show a
shot once, by its face (``schema.FACE_SQL``).

A shot is derived from the live rows of one stem key (``schema.STEM_SQL``), so it is recomputed
(``relink``) wherever a row appears, moves, changes or goes away; a row whose ``shot_id``
changes gets a new ``updated_at`` (the search index follows rows by it)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from watcherd.formats import extension, kind_of
from watcherd.store.schema import STEM_SQL, now_iso, transaction

__all__ = ["Member", "faces", "relink", "relink_ids", "relink_paths", "set_identifier",
           "stem_key"]

# What a camera writes beside its RAW, and a phone beside its Live Photo's clip. A TIFF or a PNG
# export beside a RAW is an edit: its own photo.
_STILL_FACES = frozenset({"heic", "heif", "jpg", "jpeg"})
_LIVE_CLIP = frozenset({"mov"})


@dataclass(frozen=True)
class Member:
    image_id: int
    path: str
    media_type: str
    identifier: str | None = None  # an Apple content identifier, when its file has one
    failed: bool = False  # its thumbnails failed (an undecodable JPEG cannot show its RAW)

    @property
    def ext(self) -> str:
        return extension(self.path)

    @property
    def is_raw(self) -> bool:
        return kind_of(self.path) == "raw"

    @property
    def can_face(self) -> bool:
        return self.media_type == "photo" and self.ext in _STILL_FACES and not self.failed


def faces(members: Iterable[Member]) -> dict[int, int | None]:
    """Each member's ``shot_id``: the face's id for the face and its RAWs and clips, NULL for a
    file that stands alone. The face is the first JPEG or HEIC to arrive (lowest id) whose
    thumbnails did not fail; another still of the same stem (an IMG_1.JPG beside an
    IMG_1.HEIC) stands alone."""
    rows = sorted(members, key=lambda m: m.image_id)
    out: dict[int, int | None] = {m.image_id: None for m in rows}
    stills = [m for m in rows if m.can_face]
    if not stills:
        return out
    face = stills[0]
    joined = [m for m in rows if m.is_raw]
    joined += [m for m in rows if m.media_type == "video" and m.ext in _LIVE_CLIP
               and _same_moment(face, m)]
    if joined:
        out[face.image_id] = face.image_id
        for m in joined:
            out[m.image_id] = face.image_id
    return out


def _same_moment(still: Member, clip: Member) -> bool:
    """Both identifiers known and different: two moments that happen to share a name."""
    return not (still.identifier and clip.identifier and still.identifier != clip.identifier)


def relink(c: sqlite3.Connection, path: str, now: str) -> None:
    """Recompute the shot of ``path``'s stem key (inside the caller's transaction), and free
    the rows that pointed at a face of this stem but are no longer in it."""
    members = [Member(int(r[0]), str(r[1]), str(r[2]), r[3], r[4] == "failed")
               for r in c.execute(
        f"SELECT i.id, i.path, i.media_type, s.identifier, i.thumbnail_status FROM images i "
        f"LEFT JOIN shot_identifiers s ON s.image_id = i.id "
        f"WHERE {STEM_SQL.replace('path', 'i.path')} = lower(rtrim(?, replace(?, '.', ''))) "
        f"AND i.deleted_at IS NULL", (path, path))]
    wanted = faces(members)
    ids = list(wanted)
    # Rows of this stem that became deleted, or moved to another stem, keep no link to it.
    if ids:
        marks = ",".join("?" * len(ids))
        c.execute(f"UPDATE images SET shot_id = NULL, updated_at = ? WHERE shot_id IN ({marks}) "
                  f"AND id NOT IN ({marks})", (now, *ids, *ids))
    row = c.execute("SELECT id FROM images WHERE path = ?", (path,)).fetchone()
    if row is not None and int(row[0]) not in wanted:  # deleted: it links to nothing
        c.execute("UPDATE images SET shot_id = NULL, updated_at = ? WHERE (id = ? OR shot_id = ?) "
                  "AND shot_id IS NOT NULL", (now, row[0], row[0]))
    for image_id, shot_id in wanted.items():
        c.execute("UPDATE images SET shot_id = ?, updated_at = ? WHERE id = ? "
                  "AND shot_id IS NOT ?", (shot_id, now, image_id, shot_id))


def set_identifier(conn: sqlite3.Connection, image_id: int, path: str, identifier: str) -> None:
    """The Apple content identifier a still or a clip carries; its stem's shot again."""
    now = now_iso()
    with transaction(conn) as c:
        c.execute("INSERT OR REPLACE INTO shot_identifiers (image_id, identifier) "
                  "SELECT id, ? FROM images WHERE id = ? AND deleted_at IS NULL",
                  (identifier[:200], image_id))
        relink(c, path, now)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def stem_key(path: str) -> str:
    """``STEM_SQL`` in Python: the path up to and including its last '.', ASCII lower-cased
    ('' without a '.')."""
    return path[:path.rfind(".") + 1].translate(_ASCII_LOWER)


def relink_ids(c: sqlite3.Connection, ids: Iterable[int], now: str) -> None:
    """``relink`` the stems of these rows (a thumbnail that failed, a retry)."""
    paths = [str(r[0]) for i in ids for r in c.execute(
        "SELECT path FROM images WHERE id = ? AND deleted_at IS NULL", (i,))]
    relink_paths(c, paths, now)


def relink_paths(c: sqlite3.Connection, paths: Iterable[str], now: str) -> None:
    """``relink`` each distinct stem key among ``paths`` once."""
    seen: set[str] = set()
    for path in paths:
        key = stem_key(path)
        if key not in seen:
            seen.add(key)
            relink(c, path, now)
