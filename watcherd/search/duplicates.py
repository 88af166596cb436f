"""Duplicates: identical files (same sha256), then near-identical photos (cosine >= threshold).

Near-identical photos are the connected groups of the graph whose edges are the pairs scoring at
least the threshold. All pairs are scored in square blocks (memory bounded by the block, not by
n squared) with the fastest kernel measured here (:mod:`watcherd.search.kernels`); every pair
within the kernel's error bound of the threshold is re-scored exactly (float64 over the stored
float32 vectors), so the groups and their scores do not depend on the kernel.

Identical files share one vector (the worker reuses it), so the near-identical pass compares
one photo per content: a group lists distinct contents, and the copies of each are in the
identical groups.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from watcherd.search import kernels
from watcherd.search.ranking import QueryError, round_down
from watcherd.store import vectors
from watcherd.store.vectors import ModelKey

__all__ = ["DEFAULT_BLOCK", "DEFAULT_THRESHOLD", "MAX_PAIRS", "Duplicates", "IdenticalGroup",
           "NearGroup", "Pair", "Photo", "connected_groups", "find_duplicates", "report",
           "similar_pairs"]

#: Immich's default: duplicates at cosine distance <= 0.01.
DEFAULT_THRESHOLD = 0.99
#: Rows per block: a block of scores is DEFAULT_BLOCK**2 float32 values (16 MiB).
DEFAULT_BLOCK = 2048
#: More candidate pairs than this is a threshold far too low for "duplicates".
MAX_PAIRS = 5_000_000
# Below this many photos numpy alone is fast enough (a few seconds): no torch import.
_MEASURE_FROM = 20_000
_RESCORE_BATCH = 65_536


@dataclass(frozen=True)
class Photo:
    image_id: int
    path: str
    shot: tuple[tuple[int, str], ...] = ()  # a face's RAW and clip: (id, path)


@dataclass(frozen=True)
class Pair:
    a: int  # image ids, a < b
    b: int
    score: float


@dataclass(frozen=True)
class IdenticalGroup:
    sha256: str
    photos: list[Photo]  # by id


@dataclass(frozen=True)
class NearGroup:
    photos: list[Photo]  # by id
    pairs: list[Pair]  # every pair at or above the threshold, best first


@dataclass(frozen=True)
class Duplicates:
    model: ModelKey
    threshold: float
    identical: list[IdenticalGroup]
    near: list[NearGroup]
    compared: int  # distinct contents compared pairwise
    kernel: str


BlockHits = Callable[[int, int, int, int, float], tuple[np.ndarray, np.ndarray]]


def _numpy_blocks(x: np.ndarray) -> BlockHits:
    def hits(i0: int, i1: int, j0: int, j1: int, cut: float) -> tuple[np.ndarray, np.ndarray]:
        s = x[i0:i1] @ x[j0:j1].T
        if i0 == j0:  # the diagonal block: pairs i < j only
            s[np.tri(i1 - i0, j1 - j0, dtype=bool)] = -np.inf
        if not s.size or float(s.max()) < cut:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        r, c = np.nonzero(s >= round_down(cut))
        return r.astype(np.int64), c.astype(np.int64)

    return hits


def _torch_blocks(x: np.ndarray, kernel: kernels.Kernel) -> BlockHits:
    import torch

    dtype = torch.float16 if kernel == "torch-float16" else torch.bfloat16
    t = torch.from_numpy(np.require(x, np.float32, ["C", "W"])).to(dtype)

    def hits(i0: int, i1: int, j0: int, j1: int, cut: float) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            s = t[i0:i1] @ t[j0:j1].T
            if i0 == j0:
                lower = torch.ones(i1 - i0, j1 - j0, dtype=torch.bool).tril()
                s = s.masked_fill(lower, float("-inf"))
            if not s.numel() or float(s.max()) < cut:  # bf16/f16 values are exact as floats
                return np.empty(0, np.int64), np.empty(0, np.int64)
            rc = torch.nonzero(s.float() >= cut).numpy()
        return rc[:, 0].astype(np.int64), rc[:, 1].astype(np.int64)

    return hits


def similar_pairs(x: np.ndarray, threshold: float, *, block: int = DEFAULT_BLOCK,
                  kernel: kernels.Kernel = "numpy-float32",
                  max_pairs: int = MAX_PAIRS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of rows i < j of the unit vectors ``x`` whose exact cosine is >= threshold:
    (i, j, score) arrays, in block order."""
    x = np.ascontiguousarray(x, np.float32)
    n, dim = x.shape
    hits = _numpy_blocks(x) if kernel == "numpy-float32" else _torch_blocks(x, kernel)
    cut = threshold - kernels.error_bound(kernel, dim)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    found = 0
    for i0 in range(0, n, block):
        i1 = min(i0 + block, n)
        for j0 in range(i0, n, block):
            j1 = min(j0 + block, n)
            r, c = hits(i0, i1, j0, j1, cut)
            if len(r):
                rows.append(r + i0)
                cols.append(c + j0)
                found += len(r)
                if found > max_pairs:
                    raise QueryError(f"more than {max_pairs} pairs of photos score >= "
                                     f"{threshold:g}: that is not duplicates, raise --threshold")
    if not rows:
        empty = np.empty(0, np.int64)
        return empty, empty, np.empty(0, np.float64)
    a, b = np.concatenate(rows), np.concatenate(cols)
    scores = np.empty(len(a), np.float64)
    for s0 in range(0, len(a), _RESCORE_BATCH):
        sl = slice(s0, s0 + _RESCORE_BATCH)
        scores[sl] = (x[a[sl]].astype(np.float64) * x[b[sl]].astype(np.float64)).sum(axis=1)
    keep = scores >= threshold
    return a[keep], b[keep], scores[keep]


def connected_groups(a: np.ndarray, b: np.ndarray) -> list[list[int]]:
    """The connected components (of two or more nodes) of the graph with edges (a[i], b[i]),
    each sorted, ordered by size (largest first), then by their smallest node."""
    parent: dict[int, int] = {}

    def root(v: int) -> int:
        parent.setdefault(v, v)
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for u, v in zip(a.tolist(), b.tolist(), strict=True):
        ru, rv = root(u), root(v)
        if ru != rv:
            parent[max(ru, rv)] = min(ru, rv)
    groups: dict[int, list[int]] = {}
    for v in parent:
        groups.setdefault(root(v), []).append(v)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: (-len(g), g[0]))


def pick_kernel(n: int, dim: int, prefer: str = "auto", block: int = DEFAULT_BLOCK
                ) -> kernels.Kernel:
    """``prefer`` if it names a kernel; for "auto", numpy for small libraries, else the fastest
    kernel measured on this machine."""
    if prefer != "auto":
        if prefer not in kernels.KERNELS:
            raise ValueError(f"unknown kernel {prefer!r}")
        return prefer
    if n < _MEASURE_FROM:
        return "numpy-float32"
    times = kernels.measure_pairs(dim, min(block, 1024))
    return min((t, k) for k, t in times.items() if t is not None)[1]


def find_duplicates(conn: sqlite3.Connection, key: ModelKey, threshold: float = DEFAULT_THRESHOLD,
                    *, block: int = DEFAULT_BLOCK, kernel: str = "auto",
                    max_pairs: int = MAX_PAIRS) -> Duplicates:
    """Identical files, then near-identical photos among the live vectors of ``key``."""
    if not -1.0 <= threshold <= 1.0:
        raise QueryError(f"the threshold is a cosine, between -1 and 1; got {threshold:g}")
    conn.execute("BEGIN")
    try:
        identical = [IdenticalGroup(g[0][2], [Photo(i, p) for i, p, _ in g])
                     for g in vectors.identical_files(conn)]
        ids, matrix, seen = [], [], set()
        for chunk in vectors.iter_vectors(conn, key, extra=("sha256",)):
            keep = []
            for row, sha in enumerate(chunk.extra["sha256"]):
                if sha is None or sha not in seen:
                    keep.append(row)
                    if sha is not None:
                        seen.add(sha)
            ids.append(chunk.ids[keep])
            matrix.append(chunk.vectors[keep])
        x = np.concatenate(matrix) if matrix else np.empty((0, 0), np.float32)
        id_of = np.concatenate(ids) if ids else np.empty(0, np.int64)
        chosen = pick_kernel(len(x), x.shape[1] if x.ndim == 2 else 0, kernel, block)
        a, b, scores = similar_pairs(x, threshold, block=block, kernel=chosen,
                                     max_pairs=max_pairs)
        a, b = id_of[a], id_of[b]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        groups = connected_groups(lo, hi)
        paths = {r.image_id: r.path for r in
                 vectors.fetch_rows(conn, key, [i for g in groups for i in g])}
        shots = vectors.shot_members(
            conn, [i for g in groups for i in g] + [p.image_id for g in identical
                                                    for p in g.photos])
    finally:
        conn.execute("COMMIT")
    identical = [IdenticalGroup(g.sha256, [Photo(p.image_id, p.path,
                                                 tuple(shots.get(p.image_id, ())))
                                           for p in g.photos]) for g in identical]
    group_of = {i: n for n, g in enumerate(groups) for i in g}
    pairs: list[list[Pair]] = [[] for _ in groups]
    for u, v, s in zip(lo.tolist(), hi.tolist(), scores.tolist(), strict=True):
        pairs[group_of[u]].append(Pair(u, v, s))
    near = [NearGroup([Photo(i, paths[i], tuple(shots.get(i, ()))) for i in g],
                      sorted(p, key=lambda q: (-q.score, q.a, q.b)))
            for g, p in zip(groups, pairs, strict=True)]
    return Duplicates(key, threshold, identical, near, len(x), chosen)


def report(found: Duplicates) -> dict[str, Any]:
    """What `watcherd duplicates --json` prints and /api/duplicates answers (scores rounded to 6
    places): ``{model, pretrained, threshold, identical: [{sha256, photos}], near: [{photos,
    pairs: [{a, b, score}]}]}``, photos as ``{image_id, path}`` (and ``shot``: the RAW and the
    clip of a shot's face, as ``{image_id, path}``)."""
    def photo(p: Photo) -> dict[str, Any]:
        out: dict[str, Any] = {"image_id": p.image_id, "path": p.path}
        if p.shot:
            out["shot"] = [{"image_id": i, "path": path} for i, path in p.shot]
        return out

    def photos(group: list[Photo]) -> list[dict[str, Any]]:
        return [photo(p) for p in group]

    return {
        "model": found.model.model, "pretrained": found.model.pretrained,
        "threshold": found.threshold,
        "identical": [{"sha256": g.sha256, "photos": photos(g.photos)} for g in found.identical],
        "near": [{"photos": photos(g.photos),
                  "pairs": [{"a": p.a, "b": p.b, "score": round(p.score, 6)} for p in g.pairs]}
                 for g in found.near],
    }
