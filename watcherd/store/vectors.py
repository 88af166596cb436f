"""SQL for search: one stored model's vectors, read through a read-only connection.

Plain values in and out (numpy arrays, strings); nothing here imports torch, so the cold
``watcherd search --image PHOTO`` path runs on numpy alone. Only live rows (``deleted_at IS
NULL``) are ever returned, and only the vectors of the model asked for.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from watcherd.store.readonly import ModelKey as ModelKey
from watcherd.store.readonly import connect_readonly as connect_readonly
from watcherd.store.readonly import live_image_at as live_image_at
from watcherd.store.schema import FACE_SQL, FOLDER_SQL, I_FACE_SQL, folder_range

VECTOR_DTYPE = np.dtype("<f4")
#: Rows per chunk when streaming vectors: 8192 x 512 float32 = 16 MiB at a time.
CHUNK_ROWS = 8192
_IN_BATCH = 500  # ids per "IN (...)" (SQLite's default limit on parameters is 32766)

Extra = Literal["folder", "sha256", "path", "vector_at"]
_EXTRA_SQL: dict[str, str] = {"folder": FOLDER_SQL.replace("path", "i.path"),
                              "sha256": "i.sha256", "path": "i.path",
                              "vector_at": "e.created_at"}


class VectorError(Exception):
    """The stored vectors are not usable as asked (e.g. two lengths for one model)."""


@dataclass(frozen=True)
class StoredModel:
    key: ModelKey
    photos: int  # live photos with a vector of this model


@dataclass(frozen=True)
class Chunk:
    ids: np.ndarray  # int64 (n,)
    vectors: np.ndarray  # float32 (n, dim), as stored (L2-normalised)
    extra: dict[str, list[str]]  # the columns asked for with ``extra``, per row


@dataclass(frozen=True)
class Row:
    image_id: int
    path: str
    vector: np.ndarray  # float32 (dim,)


@dataclass(frozen=True)
class Change:
    """A row that changed, or whose vector was stored, since some time."""

    image_id: int
    folder: str
    live: bool  # not deleted
    vector_at: str | None  # embeddings.created_at of this model's vector; None: no vector


def data_version(conn: sqlite3.Connection) -> int:
    """Changes whenever another connection commits (free: no I/O)."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def now(conn: sqlite3.Connection) -> str:
    """The current time as watcherd stores times (ISO 8601 UTC, milliseconds, ``Z``)."""
    return str(conn.execute("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')").fetchone()[0])


def ago(conn: sqlite3.Connection, stamp: str, seconds: float) -> str:
    """``stamp`` minus ``seconds``, in the same format."""
    return str(conn.execute("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ?, ?)",
                            (stamp, f"-{seconds:.3f} seconds")).fetchone()[0])


def stored_models(conn: sqlite3.Connection) -> list[StoredModel]:
    """Every model with vectors of live photos, most photos first (a full scan: for messages
    and listings, not for every query)."""
    rows = conn.execute(
        "SELECT e.model, e.pretrained, count(*) FROM embeddings e JOIN images i "
        "ON i.id = e.image_id WHERE i.deleted_at IS NULL GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2")
    return [StoredModel(ModelKey(r[0], r[1]), int(r[2])) for r in rows]


def model_keys(conn: sqlite3.Connection) -> list[ModelKey]:
    """Every model with a vector (of a live or a deleted photo), in order: one index seek per
    model (``embeddings_model``), not a scan."""
    keys: list[ModelKey] = []
    row = conn.execute("SELECT model, pretrained FROM embeddings "
                       "ORDER BY model, pretrained LIMIT 1").fetchone()
    while row is not None:
        keys.append(ModelKey(row[0], row[1]))
        row = conn.execute("SELECT model, pretrained FROM embeddings WHERE (model, pretrained) > "
                           "(?, ?) ORDER BY model, pretrained LIMIT 1", tuple(row)).fetchone()
    return keys


def has_live_vectors(conn: sqlite3.Connection, key: ModelKey) -> bool:
    """Whether a live photo has a vector of this model."""
    return conn.execute(
        "SELECT 1 FROM embeddings e JOIN images i ON i.id = e.image_id WHERE e.model = ? "
        "AND e.pretrained = ? AND i.deleted_at IS NULL LIMIT 1",
        (key.model, key.pretrained)).fetchone() is not None


def count_vectors(conn: sqlite3.Connection, key: ModelKey) -> int:
    """How many rows (live or deleted) have a vector of this model: an upper bound on the live
    ones, read from the primary key's index without touching the BLOBs."""
    row = conn.execute("SELECT count(*) FROM embeddings WHERE model = ? AND pretrained = ?",
                       (key.model, key.pretrained)).fetchone()
    return int(row[0])


def has_vectors(conn: sqlite3.Connection, key: ModelKey) -> bool:
    """Whether any row (live or deleted) has a vector of this model."""
    return conn.execute("SELECT 1 FROM embeddings WHERE model = ? AND pretrained = ? LIMIT 1",
                        (key.model, key.pretrained)).fetchone() is not None


def _matrix(ids: list[int], blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    sizes = set(map(len, blobs))
    if len(sizes) != 1 or next(iter(sizes)) % VECTOR_DTYPE.itemsize:
        odd = next(i for i, b in zip(ids, blobs, strict=True) if len(b) != len(blobs[0]))
        raise VectorError(f"vectors of one model differ in length ({sorted(sizes)} bytes; "
                          f"photo #{odd} and photo #{ids[0]})")
    dim = len(blobs[0]) // VECTOR_DTYPE.itemsize
    matrix = np.frombuffer(b"".join(blobs), dtype=VECTOR_DTYPE).reshape(len(blobs), dim)
    return np.array(ids, dtype=np.int64), matrix


def iter_vectors(conn: sqlite3.Connection, key: ModelKey, *, under: str | None = None,
                 extra: Sequence[Extra] = (), chunk: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """The live vectors of one model (optionally only photos below ``under``), in chunks of
    ``chunk`` rows, in storage order. Run it inside a transaction for one consistent snapshot."""
    columns = "".join(", " + _EXTRA_SQL[name] for name in extra)
    sql = (f"SELECT e.image_id, e.vector{columns} "
           "FROM embeddings e JOIN images i ON i.id = e.image_id "
           f"WHERE e.model = ? AND e.pretrained = ? AND i.deleted_at IS NULL AND {I_FACE_SQL}")
    params: tuple[str, ...] = (key.model, key.pretrained)
    if under is not None:
        sql += " AND i.path >= ? AND i.path < ?"
        params += folder_range(under)
    cursor = conn.execute(sql, params)
    while rows := cursor.fetchmany(chunk):
        ids, matrix = _matrix([r[0] for r in rows], [r[1] for r in rows])
        yield Chunk(ids, matrix, {name: [r[2 + n] for r in rows]
                                  for n, name in enumerate(extra)})


def _batches(ids: Iterable[int]) -> Iterator[list[int]]:
    batch: list[int] = []
    for i in ids:
        batch.append(int(i))
        if len(batch) == _IN_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def fetch_rows(conn: sqlite3.Connection, key: ModelKey, ids: Iterable[int]) -> list[Row]:
    """Path and stored vector of each id that is live and has a vector of this model."""
    out: list[Row] = []
    for batch in _batches(ids):
        marks = ",".join("?" * len(batch))
        for r in conn.execute(
                "SELECT i.id, i.path, e.vector FROM images i JOIN embeddings e ON e.image_id = "
                f"i.id AND e.model = ? AND e.pretrained = ? WHERE i.id IN ({marks}) "
                "AND i.deleted_at IS NULL", (key.model, key.pretrained, *batch)):
            out.append(Row(int(r[0]), str(r[1]), np.frombuffer(r[2], dtype=VECTOR_DTYPE)))
    return out


def vector_of(conn: sqlite3.Connection, key: ModelKey, image_id: int) -> np.ndarray | None:
    """The stored vector of one live photo, or None."""
    rows = fetch_rows(conn, key, [image_id])
    return rows[0].vector if rows else None


# "live" for the search index: not deleted, and not a RAW or a clip shown by its shot's face
_SHOWN = f"i.deleted_at IS NULL AND {I_FACE_SQL}"


def changes_since(conn: sqlite3.Connection, key: ModelKey, since: str) -> list[Change]:
    """Rows updated (moved, deleted, restored, re-embedded...) or given a vector of this model
    at or after ``since``; both through indexes (migration 3), not a scan."""
    rows = conn.execute(
        f"SELECT i.id, {FOLDER_SQL.replace('path', 'i.path')}, {_SHOWN}, "
        "e.created_at FROM images i LEFT JOIN embeddings e ON e.image_id = i.id "
        "AND e.model = ? AND e.pretrained = ? WHERE i.updated_at >= ? "
        "UNION "
        f"SELECT i.id, {FOLDER_SQL.replace('path', 'i.path')}, {_SHOWN}, "
        "e.created_at FROM embeddings e JOIN images i ON i.id = e.image_id "
        "WHERE e.created_at >= ? AND e.model = ? AND e.pretrained = ?",
        (key.model, key.pretrained, since, since, key.model, key.pretrained))
    return [Change(int(r[0]), str(r[1]), bool(r[2]), r[3]) for r in rows]


def vectors_of(conn: sqlite3.Connection, key: ModelKey,
               ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 matrix) of the given live photos that have a vector of this model."""
    rows = fetch_rows(conn, key, ids)
    if not rows:
        return np.empty(0, np.int64), np.empty((0, 0), np.float32)
    if len({r.vector.shape for r in rows}) > 1:
        raise VectorError(f"vectors of model {key.describe()} differ in length")
    return (np.array([r.image_id for r in rows], dtype=np.int64),
            np.stack([r.vector for r in rows]))


def shot_members(conn: sqlite3.Connection, ids: Sequence[int]
                 ) -> dict[int, list[tuple[int, str]]]:
    """The other live files of each face's shot (its RAW, its clip): (id, path) by id."""
    out: dict[int, list[tuple[int, str]]] = {}
    for batch in _batches(ids):
        marks = ",".join("?" * len(batch))
        for r in conn.execute(
                f"SELECT shot_id, id, path FROM images WHERE shot_id IN ({marks}) "
                "AND shot_id != id AND deleted_at IS NULL ORDER BY id", batch):
            out.setdefault(int(r[0]), []).append((int(r[1]), str(r[2])))
    return out


def identical_files(conn: sqlite3.Connection) -> list[list[tuple[int, str, str]]]:
    """Groups of live rows with the same sha256, each as [(id, path, sha256)] by id; the
    groups ordered by size (largest first), then by their first id."""
    groups: dict[str, list[tuple[int, str, str]]] = {}
    for r in conn.execute(
            f"SELECT id, path, sha256 FROM images WHERE deleted_at IS NULL AND {FACE_SQL} "
            "AND sha256 IN (SELECT sha256 FROM images WHERE deleted_at IS NULL "
            f"AND {FACE_SQL} AND sha256 IS NOT NULL "
            "GROUP BY sha256 HAVING count(*) > 1) ORDER BY id"):
        groups.setdefault(r[2], []).append((int(r[0]), str(r[1]), str(r[2])))
    return sorted(groups.values(), key=lambda g: (-len(g), g[0][0]))
