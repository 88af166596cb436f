"""Search over a real watcherd database (rows and vectors written by watcherd's own writers):
the one-shot scan and the long-lived index against a numpy brute force, the index following
changes, two models side by side, deleted rows, the choice of model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.searchlib import (
    MODEL_A,
    MODEL_B,
    add_photos,
    assert_same_ranking,
    library,
    reference,
    store_vectors,
    unit_rows,
)
from watcherd.search import kernels
from watcherd.search.engine import Query, QueryError, Searcher
from watcherd.search.full_scan import ScanSource
from watcherd.search.index import SearchIndex
from watcherd.search.model_choice import NoVectorsError, choose_model
from watcherd.store import discovery, schema, vectors
from watcherd.store.vectors import ModelKey

N, DIM = 3000, 32
KERNELS = ["numpy-float32", "torch-float16", "torch-bfloat16"]


def no_model() -> Any:
    raise AssertionError("the model was loaded for a query that needs none")


def triples(rows: list[vectors.Row], scores: list[float]) -> list[tuple[int, str, float]]:
    return [(r.image_id, r.path, s) for r, s in zip(rows, scores, strict=True)]


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[tuple[Path, Any, list[int], np.ndarray]]:
    path = tmp_path / "watcherd.db"
    conn, ids, matrix = library(path, N, DIM)
    # Exact copies under other ids: ties that only the image id can order.
    copies = add_photos(conn, [f"/photos/f1/copy{i}.jpg" for i in range(5)])
    store_vectors(conn, MODEL_A, copies, np.stack([matrix[10]] * 5))
    yield path, conn, ids, matrix
    conn.close()


def sources(path: Path) -> Iterator[tuple[str, Any]]:
    yield "scan", ScanSource(vectors.connect_readonly(path), MODEL_A)
    for kernel in KERNELS:
        yield kernel, SearchIndex(path, MODEL_A, kernel=kernel)


def queries(matrix: np.ndarray) -> list[np.ndarray]:
    mixed = matrix[3] + matrix[4] - matrix[5]
    return [unit_rows(1, DIM, 77)[0], matrix[10], (mixed / np.linalg.norm(mixed))]


@pytest.mark.parametrize("k", [1, 20, 10_000])
def test_scan_and_index_equal_brute_force(lib: tuple[Path, Any, list[int], np.ndarray],
                                          k: int) -> None:
    path, _, _, matrix = lib
    for name, source in sources(path):
        for q in queries(matrix):
            for min_score, under in ((None, None), (0.1, None), (None, "/photos/f1"),
                                     (0.2, "/photos/f2/sub1")):
                rows, scores, considered = source.top(q.astype(np.float32), k,
                                                      min_score=min_score, under=under)
                ref = reference(path, MODEL_A, q, k, min_score=min_score, under=under)
                assert_same_ranking(triples(rows, scores), ref, k)
            assert considered > 0, name


def test_ties_come_in_image_id_order(lib: tuple[Path, Any, list[int], np.ndarray]) -> None:
    path, _, ids, matrix = lib
    for name, source in sources(path):
        rows, scores, _ = source.top(matrix[10], 6)
        assert [r.image_id for r in rows] == sorted(r.image_id for r in rows), name
        assert rows[0].image_id == ids[10] and len(set(scores)) == 1


def test_searcher_negative_and_mixed_image_queries(
        lib: tuple[Path, Any, list[int], np.ndarray]) -> None:
    path, _, ids, matrix = lib
    for _, source in sources(path):
        searcher = Searcher(source, no_model)
        query = Query(images=[ids[3], f"/photos/f{4 % 4}/sub{4 % 3}/img00004.jpg"],
                      not_images=[ids[5]], n=15)
        want = matrix[3].astype(np.float64) + matrix[4] - matrix[5]
        got = searcher.search(query)
        assert got.model == MODEL_A
        ref = reference(path, MODEL_A, want / np.linalg.norm(want), 15)
        assert_same_ranking([(h.image_id, h.path, h.score) for h in got.hits], ref, 15)
        with pytest.raises(QueryError, match="positive"):
            searcher.search(Query(not_images=[ids[5]]))
        with pytest.raises(QueryError, match="cancel"):
            searcher.search(Query(images=[ids[5]], not_images=[ids[5]]))
        with pytest.raises(QueryError, match="not a live photo"):
            searcher.search(Query(images=[10**9]))


def test_deleted_rows_are_never_returned(lib: tuple[Path, Any, list[int], np.ndarray]) -> None:
    path, conn, _ids, matrix = lib
    q = matrix[10]
    index = SearchIndex(path, MODEL_A, kernel="torch-float16")
    before = [r.image_id for r in index.top(q, 10)[0]]
    gone = before[:3]
    discovery.mark_deleted(conn, [r[0] for r in conn.execute(
        f"SELECT path FROM images WHERE id IN ({','.join('?' * len(gone))})", gone)])
    # Even an index that has not refreshed since never returns them: the candidates are
    # checked against the database at query time.
    stale = [r.image_id for r in index.top(q, 10, refresh=False)[0]]
    assert not set(gone) & set(stale)
    for name, source in sources(path):
        got = [r.image_id for r in source.top(q, 10)[0]]
        assert not set(gone) & set(got), name
        assert got == [r[0] for r in reference(path, MODEL_A, q, 10)], name


def test_the_index_follows_new_deleted_moved_and_changed_rows(tmp_path: Path) -> None:
    path = tmp_path / "watcherd.db"
    conn, _ids, _matrix = library(path, 500, DIM)
    index = SearchIndex(path, MODEL_A, kernel="numpy-float32")
    assert index.refresh() == 0  # nothing committed since: free
    q = unit_rows(1, DIM, 5)[0]

    def check(under: str | None = None) -> list[int]:
        rows, scores, _ = index.top(q, 10, under=under)
        assert_same_ranking(triples(rows, scores), reference(path, MODEL_A, q, 10, under=under),
                            10)
        return [r.image_id for r in rows]

    # New: a photo whose vector is the query itself comes first.
    [new] = add_photos(conn, ["/photos/new/best.jpg"])
    store_vectors(conn, MODEL_A, [new], q[None, :])
    assert check()[0] == new
    # Moved: the same row under another folder; `under` follows it.
    discovery.move_path(conn, "/photos/new/best.jpg", "/photos/elsewhere/best.jpg")
    assert new in check("/photos/elsewhere") and new not in check("/photos/new")
    discovery.move_folder(conn, Path("/photos/elsewhere"), Path("/photos/again"))
    assert new in check("/photos/again")
    # Changed content: the old vector goes at once, the new one counts once stored.
    discovery.record_file(conn, "/photos/again/best.jpg", 1, 2.0, "other-content", discovery.Reuse(
        MODEL_A.model, MODEL_A.pretrained, (256,), "webp"))
    assert new not in check()
    store_vectors(conn, MODEL_A, [new], -q[None, :])
    assert new not in check()
    assert index.top(-q, 1)[0][0].image_id == new
    # Deleted, then restored (same content back at the same path).
    discovery.mark_deleted(conn, ["/photos/again/best.jpg"])
    assert new not in check() and new not in index
    discovery.record_file(conn, "/photos/again/best.jpg", 1, 3.0, "other-content", discovery.Reuse(
        MODEL_A.model, MODEL_A.pretrained, (256,), "webp"))
    assert index.top(-q, 1)[0][0].image_id == new
    # Changed and re-embedded between two looks: the vector held is replaced.
    discovery.record_file(conn, "/photos/again/best.jpg", 1, 4.0, "third-content", discovery.Reuse(
        MODEL_A.model, MODEL_A.pretrained, (256,), "webp"))
    store_vectors(conn, MODEL_A, [new], q[None, :])
    assert check()[0] == new
    # A whole folder deleted: many free slots, compacted away, results unchanged.
    discovery.mark_folder_deleted(conn, Path("/photos/f0"))
    discovery.mark_folder_deleted(conn, Path("/photos/f1"))
    check()
    assert len(index) == len(reference(path, MODEL_A, q, 10_000))


def test_a_vector_committed_late_with_an_old_stamp_is_not_missed(tmp_path: Path) -> None:
    """Writers stamp rows before their transaction may wait for the lock: a row can appear
    after a refresh with a stamp older than that refresh."""
    path = tmp_path / "watcherd.db"
    conn, _, _ = library(path, 50, DIM)
    index = SearchIndex(path, MODEL_A, kernel="numpy-float32")
    q = unit_rows(1, DIM, 8)[0]
    [late] = add_photos(conn, ["/photos/late.jpg"])
    old = schema.iso_ago(30)
    with schema.transaction(conn) as c:
        c.execute("INSERT INTO embeddings (image_id, model, pretrained, dim, vector, "
                  "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                  (late, MODEL_A.model, MODEL_A.pretrained, DIM, q.astype("<f4").tobytes(), old))
        c.execute("UPDATE images SET updated_at = ? WHERE id = ?", (old, late))
    assert index.top(q, 1)[0][0].image_id == late


def test_two_models_side_by_side(tmp_path: Path) -> None:
    path = tmp_path / "watcherd.db"
    conn, ids, _ = library(path, 800, DIM)
    other = unit_rows(800, 48, seed=9)  # another model: other vectors, another size
    store_vectors(conn, MODEL_B, ids, other)
    q = other[17]
    for source in (ScanSource(vectors.connect_readonly(path), MODEL_B),
                   SearchIndex(path, MODEL_B, kernel="auto")):
        rows, scores, considered = source.top(q, 20)
        assert considered == 800
        assert_same_ranking(triples(rows, scores), reference(path, MODEL_B, q, 20), 20)
        assert rows[0].image_id == ids[17]
    with pytest.raises(vectors.VectorError, match="48-value query for 32-value"):
        ScanSource(vectors.connect_readonly(path), MODEL_A).top(q, 5)


def test_choose_model(tmp_path: Path) -> None:
    path = tmp_path / "watcherd.db"
    conn, ids, _ = library(path, 30, DIM)
    store_vectors(conn, MODEL_B, ids[:10], unit_rows(10, 48, 1))
    b2 = ModelKey(MODEL_B.model, "laion2b_s34b_b79k")
    store_vectors(conn, b2, ids[:5], unit_rows(5, 48, 2))
    ro = vectors.connect_readonly(path)
    assert choose_model(ro, MODEL_A) == MODEL_A
    assert choose_model(ro, MODEL_A, model=MODEL_B.model, pretrained=b2.pretrained) == b2
    with pytest.raises(QueryError, match="several pretrained") as exc:
        choose_model(ro, MODEL_A, model=MODEL_B.model)
    assert "(10 photos)" in str(exc.value) and "(5 photos)" in str(exc.value)
    assert choose_model(ro, MODEL_B, model=MODEL_B.model) == MODEL_B  # the configured one
    with pytest.raises(QueryError) as exc:
        choose_model(ro, ModelKey("RN50", "openai"))
    message = str(exc.value)
    assert "'RN50' pretrained 'openai'" in message
    assert all(k.describe() in message for k in (MODEL_A, MODEL_B, b2))
    with pytest.raises(QueryError, match="no vectors of model 'nope'"):
        choose_model(ro, MODEL_A, model="nope")
    empty = tmp_path / "empty.db"
    schema.connect(empty).close()
    with pytest.raises(NoVectorsError, match="no photo has a vector yet"):
        choose_model(vectors.connect_readonly(empty), MODEL_A)


def test_index_memory_is_half_precision_when_chosen(tmp_path: Path) -> None:
    path = tmp_path / "watcherd.db"
    library(path, 2000, DIM)
    half = SearchIndex(path, MODEL_A, kernel="torch-float16").stats
    full = SearchIndex(path, MODEL_A, kernel="numpy-float32").stats
    assert half.vectors == full.vectors == 2000
    assert half.nbytes * 2 == full.nbytes
    assert kernels.pick_matrix(DIM) in KERNELS


def test_index_holds_no_more_rows_than_it_loaded_plus_a_little(tmp_path: Path) -> None:
    """The matrix is sized from a count before loading, not grown by halves chunk after chunk
    (which at a million vectors held a third more memory than the vectors need)."""
    path = tmp_path / "watcherd.db"
    n = 3 * vectors.CHUNK_ROWS + 100
    library(path, n, DIM)
    stats = SearchIndex(path, MODEL_A, kernel="numpy-float32").stats
    assert stats.vectors == n
    assert stats.nbytes <= (n + max(1024, n // 100)) * DIM * 4
