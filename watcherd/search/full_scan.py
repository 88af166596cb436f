"""One-shot search: one pass over the stored vectors, nothing kept (the ``watcherd search``
command). numpy only: an ``--image`` query of an indexed photo never imports torch."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

import numpy as np

from watcherd.search import kernels
from watcherd.search.filters import Filters
from watcherd.search.ranking import Candidates, exact_top, member
from watcherd.store import filters as filter_sql
from watcherd.store import vectors
from watcherd.store.vectors import ModelKey, Row

__all__ = ["ScanSource"]


class ScanSource:
    """The live vectors of ``key``, streamed from the database for each query (float32 BLAS
    per chunk of rows), in one read transaction: one consistent snapshot per query."""

    def __init__(self, conn: sqlite3.Connection, key: ModelKey) -> None:
        self.conn = conn
        self.key = key

    def top(self, query: np.ndarray, k: int, *, min_score: float | None = None,
            under: str | None = None, exclude: Iterable[int] = (),
            filters: Filters | None = None) -> tuple[list[Row], list[float], int]:
        """The exact best ``k`` live photos (matching ``filters``: only those are ranked) for a
        unit ``query``: (rows, scores, photos considered), ordered by score, then by id."""
        query = np.asarray(query, np.float32)
        candidates = Candidates(k, kernels.error_bound("numpy-float32", len(query)), min_score)
        skip = np.array(sorted(set(exclude)), np.int64)
        considered = 0
        self.conn.execute("BEGIN")
        try:
            only = filter_sql.matching_ids(self.conn, filters) if filters else None
            for chunk in vectors.iter_vectors(self.conn, self.key, under=under):
                if chunk.vectors.shape[1] != len(query):
                    raise vectors.VectorError(f"a {len(query)}-value query for "
                                              f"{chunk.vectors.shape[1]}-value vectors")
                ids = chunk.ids
                scores = chunk.vectors @ query
                if len(skip):
                    keep = ~np.isin(ids, skip)
                    ids, scores = ids[keep], scores[keep]
                if only is not None:
                    keep = member(ids, only)
                    ids, scores = ids[keep], scores[keep]
                considered += len(ids)
                candidates.add(ids, scores)
            rows = vectors.fetch_rows(self.conn, self.key, candidates.ids().tolist())
        finally:
            self.conn.execute("COMMIT")
        by_id = {r.image_id: r for r in rows}
        best = exact_top(np.array(list(by_id), np.int64),
                         np.stack([r.vector for r in rows]) if rows else np.empty((0, len(query))),
                         query, k, min_score)
        return [by_id[i] for i, _ in best], [s for _, s in best], considered

    def vector_of(self, image_id: int) -> np.ndarray | None:
        return vectors.vector_of(self.conn, self.key, image_id)

    def image_at(self, paths: list[str]) -> int | None:
        return vectors.live_image_at(self.conn, paths)

    def members(self, ids: Sequence[int]) -> dict[int, list[tuple[int, str]]]:
        return vectors.shot_members(self.conn, ids)
