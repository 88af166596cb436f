"""Test helpers for search: a real watcherd database filled through watcherd's own writers,
with synthetic or real vectors, and the numpy brute-force reference search is checked against."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tests.helpers import put_vectors
from watcherd.store import discovery, outcomes, schema
from watcherd.store.vectors import ModelKey

MODEL_A = ModelKey("local-dir:/models/a", "")
MODEL_B = ModelKey("ViT-B-32", "/models/b.safetensors")


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    m = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def reuse(key: ModelKey = MODEL_A) -> discovery.Reuse:
    return discovery.Reuse(key.model, key.pretrained, (256,), "webp")


def add_photos(conn: object, paths: Sequence[str], *, content: Sequence[str] | None = None
               ) -> list[int]:
    """Rows for files at ``paths`` (as the watcher records them); returns their ids."""
    ids = []
    with schema.transaction(conn) as c:  # type: ignore[arg-type]
        for i, path in enumerate(paths):
            sha = hashlib.sha256((content[i] if content else path).encode()).hexdigest()
            ids.append(discovery.record_in(c, path, 1000, 1.0, sha, reuse()).id)
    return ids


def sha_of(conn: object, image_id: int) -> str:
    return str(conn.execute("SELECT sha256 FROM images WHERE id = ?",  # type: ignore[attr-defined]
                            (image_id,)).fetchone()[0])


def store_vectors(conn: object, key: ModelKey, ids: Sequence[int], matrix: np.ndarray) -> None:
    """A library's vectors of one model (several models may cover the same photos)."""
    from watcherd.media.embeddings import to_blob

    rows = [outcomes.EmbeddingRow(i, sha_of(conn, i), to_blob(v)) for i, v in zip(ids, matrix,
                                                                                  strict=True)]
    put_vectors(conn, key.model, key.pretrained, matrix.shape[1], rows)


def library(path: Path, n: int, dim: int = 32, *, seed: int = 0, key: ModelKey = MODEL_A,
            folders: int = 4) -> tuple[object, list[int], np.ndarray]:
    """A database with ``n`` photos spread over ``folders`` folders, each with a vector."""
    conn = schema.connect(path)
    paths = [f"/photos/f{i % folders}/sub{i % 3}/img{i:05d}.jpg" for i in range(n)]
    ids = add_photos(conn, paths)
    matrix = unit_rows(n, dim, seed)
    store_vectors(conn, key, ids, matrix)
    return conn, ids, matrix


def reference(db_path: Path, key: ModelKey, query: np.ndarray, k: int, *,
              min_score: float | None = None, under: str | None = None
              ) -> list[tuple[int, str, float]]:
    """Brute force over the stored vectors of live rows: [(id, path, score)], best first, ties
    by id (float64 arithmetic, as simple as it gets)."""
    import sqlite3

    conn = sqlite3.connect(db_path)
    rows = conn.execute(
        "SELECT i.id, i.path, e.vector FROM embeddings e JOIN images i ON i.id = e.image_id "
        "WHERE i.deleted_at IS NULL AND e.model = ? AND e.pretrained = ?",
        (key.model, key.pretrained)).fetchall()
    conn.close()
    if under is not None:
        rows = [r for r in rows if r[1].startswith(under.rstrip("/") + "/")]
    scored = [(r[0], r[1], float(np.frombuffer(r[2], "<f4").astype(np.float64)
                                 @ np.asarray(query, np.float64))) for r in rows]
    if min_score is not None:
        scored = [s for s in scored if s[2] >= min_score]
    return sorted(scored, key=lambda s: (-s[2], s[0]))[:k]


def assert_same_ranking(got: Sequence[tuple[int, str, float]],
                        ref: Sequence[tuple[int, str, float]], k: int, *, tol: float = 1e-3,
                        tie: float = 0.0) -> None:
    """``got`` is the reference's top ``k``: same photos (id and path) in the same order, scores
    within ``tol``. With ``tie`` (a query vector computed in another process), two photos whose
    reference scores are that close may come in either order; ``ref`` should then reach a few
    places beyond ``k``."""
    want = list(ref[:k])
    assert len(got) == len(want), (len(got), len(want))
    by_id = {r[0]: r for r in ref}
    for place, (g, w) in enumerate(zip(got, want, strict=True)):
        assert abs(g[2] - w[2]) <= tol, (place, g, w)
        if (g[0], g[1]) != (w[0], w[1]):
            other = by_id.get(g[0])
            assert tie > 0 and other is not None and other[1] == g[1], (place, g, w)
            assert abs(other[2] - w[2]) <= tie, (place, g, w)


def embed_stored(cfg: Any, holder: Any, items: list[tuple[int, str]]) -> int:
    """Run the embedding worker's own batch step (decode, encode, save) on stored photos;
    how many vectors it saved."""
    from watcherd.fleet.busy import Markers
    from watcherd.store import schema
    from watcherd.worker.embedding import embed_batch

    conn = schema.connect(cfg.database.path)
    markers = Markers(cfg, "embeddings@test:1")
    try:
        return embed_batch(cfg, conn, holder, markers, items).saved
    finally:
        markers.close()
        conn.close()


def open_clip_text(model: str, texts: list[str]) -> np.ndarray:
    """The reference text vectors: open_clip's own model, tokenizer and normalisation, loaded
    fresh (not through watcherd's embedder), that search's text queries are checked against."""
    import open_clip
    import torch

    net, _, _ = open_clip.create_model_and_transforms(model)
    net.eval()
    with torch.no_grad():
        feats = net.encode_text(open_clip.get_tokenizer(model)(texts)).float()
    return torch.nn.functional.normalize(feats, dim=-1).numpy()
