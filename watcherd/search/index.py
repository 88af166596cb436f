"""A long-lived, in-memory index of one stored model's live vectors.

Built for a process that answers many queries (the web server): the vectors are read once, kept
in half precision where this machine scores that fast (:mod:`watcherd.search.kernels`), and
then followed incrementally: :meth:`SearchIndex.refresh` reads only the rows changed and the
vectors stored since its last look (through the ``images.updated_at`` and
``embeddings.created_at`` indexes), so new, deleted, moved and re-embedded photos are seen within
one refresh, without reloading everything. It costs nothing when no other connection committed
(``PRAGMA data_version``); :meth:`search` refreshes first by default.

Paths are not held: a slot keeps its photo's id and folder (for ``under``); the paths and the
exact float32 vectors of the few candidates are read at query time, which also drops a photo
deleted a moment ago.

The slots themselves (the matrix, which photo and folder each row holds, the approximate
scoring) are :class:`~watcherd.search.vector_slots.VectorSlots`; this module follows the
database into them and answers queries from them.

Thread-safe (one lock); plain values in and out.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from watcherd.search.filters import Filters
from watcherd.search.ranking import exact_top
from watcherd.search.vector_slots import VectorSlots
from watcherd.store import filters as filter_sql
from watcherd.store import vectors
from watcherd.store.vectors import ModelKey

__all__ = ["REFRESH_OVERLAP_S", "IndexStats", "SearchIndex"]

#: Each refresh re-reads rows stamped up to this long before the previous refresh began: a
#: writer stamps ``updated_at`` before its transaction may wait (up to the 30 s busy timeout)
#: for the lock, so a row can become visible later than its stamp says. Rows re-read whose
#: stamps are unchanged cost a little (no vector is read again).
REFRESH_OVERLAP_S = 60.0
_MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class IndexStats:
    vectors: int  # live vectors held
    dim: int
    kernel: str
    nbytes: int  # memory of the vector matrix
    load_s: float  # seconds the initial load took


class SearchIndex:
    """The live vectors of ``key`` in the database at ``db_path``, in memory.

    ``kernel`` is ``"auto"`` (measured here, see :func:`kernels.pick_matrix`) or one of
    :data:`kernels.KERNELS`.
    """

    def __init__(self, db_path: str | Path, key: ModelKey, *, kernel: str = "auto",
                 overlap_s: float = REFRESH_OVERLAP_S) -> None:
        self.key = key
        self.overlap_s = overlap_s
        self._conn = vectors.connect_readonly(db_path)
        self._lock = threading.RLock()
        self._slots = VectorSlots(key, kernel)
        self._vocabulary = filter_sql.Vocabulary()  # places and keywords, for the filters
        self._recent: dict[int, str] = {}  # id -> vector stamp, for vectors stored lately
        started = time.perf_counter()
        self._load()
        self.load_s = time.perf_counter() - started

    @property
    def dim(self) -> int:
        """The number of values in each vector held (0 before the first)."""
        return self._slots.dim

    # ------------------------------------------------------------------------- loading

    def _load(self) -> None:
        conn = self._conn
        self._version = vectors.data_version(conn)
        self._stamp = vectors.now(conn)
        since = vectors.ago(conn, self._stamp, self.overlap_s)
        conn.execute("BEGIN")
        try:
            expected = vectors.count_vectors(conn, self.key)
            for chunk in vectors.iter_vectors(conn, self.key, extra=("folder", "vector_at")):
                if len(chunk.ids):
                    self._slots.reserve(chunk.vectors.shape[1], expected)
                self._slots.upsert(chunk.ids, chunk.vectors, chunk.extra["folder"])
                # Vectors stamped within the overlap are looked at again by the next refresh:
                # remember which ones this load already holds, so they are not read twice.
                for image_id, at in zip(chunk.ids.tolist(), chunk.extra["vector_at"],
                                        strict=True):
                    if at is not None and at >= since:
                        self._recent[image_id] = at
        finally:
            conn.execute("COMMIT")

    def _remove(self, ids: Iterable[int]) -> None:
        for image_id in self._slots.remove(ids):
            self._recent.pop(image_id, None)

    # ------------------------------------------------------------------------- following

    def refresh(self, *, force: bool = False) -> int:
        """Apply what changed since the last look; returns how many rows were looked at
        (0 at once when no other connection has committed since)."""
        with self._lock:
            conn = self._conn
            version = vectors.data_version(conn)
            if version == self._version and not force:
                return 0
            stamp = vectors.now(conn)
            conn.execute("BEGIN")
            try:
                since = vectors.ago(conn, self._stamp, self.overlap_s)
                changes = vectors.changes_since(conn, self.key, since)
                gone: list[int] = []
                fetch: dict[int, str] = {}
                for c in changes:
                    if not c.live or c.vector_at is None:
                        gone.append(c.image_id)
                        continue
                    if self._slots.refile(c.image_id, c.folder) and (
                            c.vector_at < since or self._recent.get(c.image_id) == c.vector_at):
                        continue  # the vector held is the stored one
                    fetch[c.image_id] = c.folder
                    self._recent[c.image_id] = c.vector_at
                self._remove(gone)
                ids, matrix = vectors.vectors_of(conn, self.key, fetch)
                self._slots.upsert(ids, matrix, [fetch[int(i)] for i in ids])
                self._remove(set(fetch) - set(ids.tolist()))
            finally:
                conn.execute("COMMIT")
            self._version, self._stamp = version, stamp
            self._recent = {i: at for i, at in self._recent.items() if at >= since}
            return len(changes)

    def reload(self) -> None:
        """Read everything again (after changes made behind watcherd's back, e.g. rows deleted
        by hand: a refresh only sees rows that still exist)."""
        with self._lock:
            self._slots.clear()
            self._recent = {}
            self._load()

    # ------------------------------------------------------------------------- querying

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, int) and self._slots.slot(image_id) >= 0

    @property
    def stats(self) -> IndexStats:
        m = self._slots.matrix
        return IndexStats(len(self), self.dim, m.kernel if m else "none",
                          m.nbytes if m else 0, self.load_s)

    def top(self, query: np.ndarray, k: int, *, min_score: float | None = None,
            under: str | None = None, exclude: Iterable[int] = (),
            filters: Filters | None = None, refresh: bool = True
            ) -> tuple[list[vectors.Row], list[float], int]:
        """The exact best ``k`` live photos (matching ``filters``: only those are ranked) for
        a unit ``query`` vector: (rows, scores, number of photos considered). Ordered by score,
        then by image id."""
        with self._lock:
            if refresh:
                self.refresh()
            for _ in range(_MAX_ATTEMPTS):
                found = self._attempt(query, k, min_score, under, set(exclude), filters)
                if found is not None:
                    return found
            raise sqlite3.OperationalError("the database kept changing during the search")

    def _attempt(self, query: np.ndarray, k: int, min_score: float | None, under: str | None,
                 exclude: set[int], filters: Filters | None
                 ) -> tuple[list[vectors.Row], list[float], int] | None:
        if self._slots.matrix is None or len(self) == 0:
            return [], [], 0
        if len(query) != self.dim:
            raise vectors.VectorError(f"a {len(query)}-value query for {self.dim}-value vectors")
        self._conn.execute("BEGIN")  # the matching ids and the rows: one snapshot
        try:
            only = (filter_sql.matching_ids(self._conn, filters, self._vocabulary)
                    if filters else None)
            ids, considered = self._slots.candidates(query, k, min_score, under, exclude, only)
            rows = vectors.fetch_rows(self._conn, self.key, ids.tolist())
        finally:
            self._conn.execute("COMMIT")
        if len(rows) < len(ids):  # deleted since the last refresh: forget them, try again
            self._remove(set(ids.tolist()) - {r.image_id for r in rows})
            return None
        if under is not None:
            rows = [r for r in rows if r.path.startswith(under.rstrip("/") + "/")]
        by_id = {r.image_id: r for r in rows}
        best = exact_top(np.array(list(by_id), np.int64),
                         np.stack([r.vector for r in rows]) if rows else np.empty((0, self.dim)),
                         query, k, min_score)
        return [by_id[i] for i, _ in best], [s for _, s in best], considered

    def vector_of(self, image_id: int) -> np.ndarray | None:
        """The stored float32 vector of a live photo (from the database, exact)."""
        with self._lock:
            return vectors.vector_of(self._conn, self.key, image_id)

    def image_at(self, paths: list[str]) -> int | None:
        with self._lock:
            return vectors.live_image_at(self._conn, paths)

    def members(self, ids: Sequence[int]) -> dict[int, list[tuple[int, str]]]:
        with self._lock:
            return vectors.shot_members(self._conn, ids)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
