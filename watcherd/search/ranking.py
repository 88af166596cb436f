"""Exact top-k by cosine similarity: the plain arithmetic of search.

A fast pass scores every vector approximately (float16 or bfloat16 in memory, float32 BLAS),
each score within a known bound ``error`` of the exact one. :class:`Candidates` keeps every item
that may still belong to the top k under that bound (and nothing that cannot), and
:func:`exact_top` re-scores those from the stored float32 vectors in float64 and orders them by
score, then by image id. So the result equals a brute-force reference over the stored vectors,
whatever the precision of the fast pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["Candidates", "QueryError", "combine", "exact_scores", "exact_top", "member",
           "round_down"]

_PRUNE_AT = 4096  # buffered candidates before the buffer is cut back to the top k (+ margin)


class QueryError(ValueError):
    """A query that cannot be answered as given; ``str(exc)`` is the reason, for the user."""


def combine(positive: Sequence[np.ndarray], negative: Sequence[np.ndarray] = ()) -> np.ndarray:
    """normalize(sum of positive vectors - sum of negative vectors), as float32."""
    if not positive:
        raise QueryError("a query needs at least one positive part (text or --image)")
    total = np.sum([np.asarray(v, np.float64) for v in positive], axis=0)
    if negative:
        total = total - np.sum([np.asarray(v, np.float64) for v in negative], axis=0)
    norm = float(np.linalg.norm(total))
    if not np.isfinite(norm) or norm < 1e-6:
        raise QueryError("the query's positive and negative parts cancel out")
    return (total / norm).astype(np.float32)


def round_down(value: float) -> np.float32:
    """The largest float32 <= value, so a float32 comparison never drops what float64 keeps."""
    out = np.float32(value)
    return out if float(out) <= value else np.nextafter(out, np.float32(-np.inf))


class Candidates:
    """Streaming selection of every item that may be in the exact top ``k``.

    Scores passed to :meth:`add` may be off by at most ``error`` from the exact ones. With t the
    k-th best approximate score so far, an item scored below ``t - 2 * error`` is beaten by k
    items for certain, so it is dropped; so is one below ``min_score - error``. Everything else
    is kept, ties at the boundary included, so the exact re-score can order them by id.
    """

    def __init__(self, k: int, error: float, min_score: float | None = None) -> None:
        if k < 1:
            raise ValueError("k must be >= 1")
        self.k = k
        self.margin = 2.0 * error
        self._cut = -np.inf if min_score is None else float(min_score) - error
        self._ids: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []
        self._buffered = 0

    def add(self, ids: np.ndarray, scores: np.ndarray) -> None:
        """Offer items (int64 ids, float32 approximate scores); NaN scores are never kept."""
        keep = scores >= round_down(self._cut)
        if not keep.all():
            ids, scores = ids[keep], scores[keep]
        if len(ids) == 0:
            return
        self._ids.append(ids)
        self._scores.append(scores)
        self._buffered += len(ids)
        if self._buffered > max(_PRUNE_AT, 4 * self.k):
            self._prune()

    def _prune(self) -> None:
        if not self._ids:
            return
        ids = np.concatenate(self._ids)
        scores = np.concatenate(self._scores)
        if len(scores) > self.k:
            kth = float(np.partition(scores, len(scores) - self.k)[len(scores) - self.k])
            self._cut = max(self._cut, kth - self.margin)
            keep = scores >= round_down(self._cut)
            ids, scores = ids[keep], scores[keep]
        self._ids, self._scores, self._buffered = [ids], [scores], len(ids)

    def ids(self) -> np.ndarray:
        """The candidates' ids (int64), in no particular order."""
        self._prune()
        return self._ids[0] if self._ids else np.empty(0, np.int64)


def exact_scores(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine scores in float64, the same arithmetic for every row: identical vectors get
    identical scores (so ties are real ties, broken by id)."""
    if len(vectors) == 0:
        return np.empty(0, np.float64)
    return (np.asarray(vectors, np.float64) * np.asarray(query, np.float64)).sum(axis=1)


def exact_top(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int,
              min_score: float | None = None) -> list[tuple[int, float]]:
    """The best ``k`` of the given items by exact score, then by id: [(id, score)]."""
    scores = exact_scores(vectors, query)
    ids = np.asarray(ids, np.int64)
    if min_score is not None:
        keep = scores >= min_score
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))[:k]
    return [(int(ids[i]), float(scores[i])) for i in order]


def member(ids: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """Which of ``ids`` are in ``sorted_ids`` (sorted int64): a boolean mask."""
    if len(sorted_ids) == 0:
        return np.zeros(len(ids), bool)
    at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return np.asarray(sorted_ids[at] == ids)
