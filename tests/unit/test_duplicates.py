"""Duplicates: all pairs in blocks against a brute force, connected groups, and the whole
thing on resized and recompressed copies embedded by the worker's code (tiny model)."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import jpeg, put_vectors, scene_image
from tests.searchlib import unit_rows
from watcherd.media.embeddings import Embedder, to_blob
from watcherd.search import kernels
from watcherd.search.duplicates import connected_groups, find_duplicates, similar_pairs
from watcherd.search.engine import embed_image_bytes
from watcherd.search.ranking import QueryError
from watcherd.store import discovery, outcomes, schema, vectors
from watcherd.store.vectors import ModelKey


def brute_pairs(x: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    s = x.astype(np.float64) @ x.astype(np.float64).T
    return {(i, j) for i, j in itertools.combinations(range(len(x)), 2) if s[i, j] >= threshold}


@pytest.mark.parametrize("kernel", kernels.KERNELS)
@pytest.mark.parametrize("block", [64, 100, 1000])
def test_similar_pairs_equal_brute_force(kernel: kernels.Kernel, block: int) -> None:
    if kernel != "numpy-float32":
        pytest.importorskip("torch")
    rng = np.random.default_rng(block)
    x = unit_rows(700, 64, seed=3)
    # Plant near-duplicates at controlled distances around the threshold, across blocks.
    for n, (i, j) in enumerate(rng.integers(0, 700, (60, 2))):
        if i != j:
            noise = unit_rows(1, 64, 1000 + n)[0] * (0.05 + 0.2 * rng.random())
            x[j] = x[i] + noise
            x[j] /= np.linalg.norm(x[j])
    x[500] = x[499]  # an exact copy: cosine 1
    for threshold in (0.98, 0.99, 0.999):
        a, b, s = similar_pairs(x, threshold, block=block, kernel=kernel)
        assert set(zip(a.tolist(), b.tolist(), strict=True)) == brute_pairs(x, threshold)
        assert all(s >= threshold)
        np.testing.assert_allclose(s, np.sum(x[a].astype(np.float64) * x[b], axis=1),
                                   atol=1e-12)


def test_too_many_pairs_is_a_clear_error() -> None:
    x = np.repeat(unit_rows(1, 16, 0), 300, axis=0)
    with pytest.raises(QueryError, match="raise --threshold"):
        similar_pairs(x, 0.5, max_pairs=1000)


def test_connected_groups() -> None:
    a = np.array([1, 2, 10, 7, 30])
    b = np.array([2, 3, 11, 1, 31])
    assert connected_groups(a, b) == [[1, 2, 3, 7], [10, 11], [30, 31]]
    assert connected_groups(np.array([], np.int64), np.array([], np.int64)) == []


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> dict[str, Any]:
    """Four scenes, each as an original, a half-size copy and a strongly recompressed copy,
    plus a byte-identical copy of one original, embedded with the worker's decode path."""
    tmp = tmp_path_factory.mktemp("dups")
    conn = schema.connect(tmp / "watcherd.db")
    embedder = Embedder(tiny_model)
    key = ModelKey(tiny_model, "")
    scene_of: dict[int, int] = {}
    for scene in range(4):
        original = scene_image(800, 600, scene)
        for name, data in (("orig", jpeg(original, quality=92)),
                           ("half", jpeg(original.resize((400, 300)), quality=92)),
                           ("q30", jpeg(original, quality=30))):
            path = tmp / f"s{scene}-{name}.jpg"
            path.write_bytes(data)
            sha = hashlib.sha256(data).hexdigest()
            reuse = discovery.Reuse(key.model, key.pretrained, (64,), "webp")
            rec = discovery.record_file(conn, str(path), len(data), 1.0, sha, reuse)
            scene_of[rec.id] = scene
            vec = embed_image_bytes(embedder, data, max_pixels=10**8)
            put_vectors(conn, key.model, key.pretrained, embedder.dim,
                               [outcomes.EmbeddingRow(rec.id, sha, to_blob(vec))])
    twin = tmp / "s2-orig copy.jpg"
    twin.write_bytes((tmp / "s2-orig.jpg").read_bytes())
    sha = hashlib.sha256(twin.read_bytes()).hexdigest()
    twin_id = discovery.record_file(conn, str(twin), 1, 1.0, sha, discovery.Reuse(
        key.model, key.pretrained, (64,), "webp")).id  # reuses the original's vector
    return {"db": tmp / "watcherd.db", "key": key, "scene_of": scene_of, "twin": twin_id,
            "conn": conn, "tmp": tmp}


def _threshold(copies: dict[str, Any]) -> float:
    """Between the copies' lowest score and unrelated photos' highest (random weights put
    everything close together, so the threshold comes from the data, not from practice)."""
    ro = vectors.connect_readonly(copies["db"])
    rows = vectors.fetch_rows(ro, copies["key"], list(copies["scene_of"]))
    x = np.stack([r.vector for r in rows]).astype(np.float64)
    scene = np.array([copies["scene_of"][r.image_id] for r in rows])
    s = x @ x.T
    same = (scene[:, None] == scene[None, :]) & ~np.eye(len(rows), dtype=bool)
    within, across = s[same].min(), s[scene[:, None] != scene[None, :]].max()
    assert within > across + 1e-4, (within, across)  # the test's premise
    return float((within + across) / 2)


def test_resized_and_recompressed_copies_group_by_scene(copies: dict[str, Any]) -> None:
    threshold = _threshold(copies)
    ro = vectors.connect_readonly(copies["db"])
    found = find_duplicates(ro, copies["key"], threshold, block=5)
    # The byte-identical copy: its own group first.
    [identical] = found.identical
    assert {p.image_id for p in identical.photos} == {copies["twin"], identical.photos[0].image_id}
    assert copies["scene_of"][identical.photos[0].image_id] == 2
    # One near-identical group per scene, each with its three versions (the identical copy
    # is compared once, through its original), and every pair's exact score.
    groups = sorted(sorted(p.image_id for p in g.photos) for g in found.near)
    want = sorted(sorted(i for i, s in copies["scene_of"].items() if s == scene)
                  for scene in range(4))
    assert groups == want
    for g in found.near:
        assert len(g.pairs) == 3 and all(p.score >= threshold for p in g.pairs)
        for p in g.pairs:
            va = vectors.vector_of(ro, copies["key"], p.a)
            vb = vectors.vector_of(ro, copies["key"], p.b)
            assert va is not None and vb is not None
            assert p.score == pytest.approx(float(va.astype(np.float64) @ vb), abs=1e-9)
    assert found.compared == 12
    # Above every copy's score: no near-identical group; the identical files stay.
    strict = find_duplicates(ro, copies["key"], 0.9999999)
    assert strict.near == [] and len(strict.identical) == 1


def test_deleted_photos_are_not_duplicates(copies: dict[str, Any], tmp_path: Path) -> None:
    threshold = _threshold(copies)
    conn = copies["conn"]
    gone = str(copies["tmp"] / "s1-half.jpg")
    discovery.mark_deleted(conn, [gone])
    try:
        found = find_duplicates(vectors.connect_readonly(copies["db"]), copies["key"], threshold)
        assert all(p.path != gone for g in found.near for p in g.photos)
        assert sorted(len(g.photos) for g in found.near) == [2, 3, 3, 3]
    finally:
        discovery.record_file(conn, gone, 1, 1.0,
                              hashlib.sha256(Path(gone).read_bytes()).hexdigest(),
                              discovery.Reuse(copies["key"].model, "", (64,), "webp"))
