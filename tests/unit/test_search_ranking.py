"""The arithmetic of search (watcherd.search.ranking, kernels): exact top-k from approximate
scores, ties broken by id, query vectors from positive and negative parts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.searchlib import unit_rows
from watcherd.search import kernels
from watcherd.search.ranking import Candidates, QueryError, combine, exact_top


def brute_force(ids: np.ndarray, m: np.ndarray, q: np.ndarray, k: int,
                min_score: float | None = None) -> list[tuple[int, float]]:
    """Every score exactly rounded (math.fsum), sorted by score then id."""
    q64 = q.astype(np.float64)
    scores = [math.fsum(row.astype(np.float64) * q64) for row in m]
    pairs = [(int(i), s) for i, s in zip(ids, scores, strict=True)
             if min_score is None or s >= min_score]
    return sorted(pairs, key=lambda p: (-p[1], p[0]))[:k]


def same(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> bool:
    return [i for i, _ in got] == [i for i, _ in want] and all(
        abs(a - b) < 1e-9 for (_, a), (_, b) in zip(got, want, strict=True))


def select(ids: np.ndarray, m: np.ndarray, q: np.ndarray, approx: np.ndarray, k: int,
           error: float, min_score: float | None = None, chunk: int = 997
           ) -> list[tuple[int, float]]:
    """Candidates fed in chunks (as a scan does), then the exact re-score."""
    cand = Candidates(k, error, min_score)
    for s in range(0, len(ids), chunk):
        cand.add(ids[s:s + chunk], approx[s:s + chunk])
    keep = cand.ids()
    pos = {int(i): n for n, i in enumerate(ids)}
    rows = np.array([pos[int(i)] for i in keep], np.int64)
    return exact_top(keep, m[rows] if len(rows) else np.empty((0, m.shape[1])), q, k, min_score)


@pytest.mark.parametrize("k", [1, 5, 20, 500, 10_000])
def test_exact_top_k_from_scores_off_by_up_to_the_bound(k: int) -> None:
    rng = np.random.default_rng(k)
    m = unit_rows(6000, 48, seed=k)
    # Ties: exact copies of some rows under other ids, and a cluster of near-equal scores.
    m[100:140] = m[7]
    m[200:260] = m[8] * 0.999 + m[9] * 0.001
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    ids = rng.permutation(50_000)[:6000].astype(np.int64)
    q = m[7] * 0.7 + unit_rows(1, 48, 99)[0] * 0.3
    q = (q / np.linalg.norm(q)).astype(np.float32)
    error = 5e-3
    exact = (m.astype(np.float64) @ q.astype(np.float64)).astype(np.float32)
    # The worst case the bound allows: every score pushed as far as it may go, either way.
    approx = (exact + rng.choice([-error, error], size=len(exact)) * 0.999).astype(np.float32)
    assert same(select(ids, m, q, approx, k, error), brute_force(ids, m, q, k))


def test_an_error_larger_than_declared_does_change_the_result() -> None:
    """The check above is not vacuous: declaring too small a bound loses true results."""
    rng = np.random.default_rng(1)
    m = unit_rows(5000, 48, seed=1)
    ids = np.arange(5000, dtype=np.int64)
    q = m[3]
    exact = (m.astype(np.float64) @ q.astype(np.float64)).astype(np.float32)
    approx = (exact + rng.uniform(-0.05, 0.05, len(exact))).astype(np.float32)
    assert not same(select(ids, m, q, approx, 20, 1e-4), brute_force(ids, m, q, 20))
    assert same(select(ids, m, q, approx, 20, 0.05), brute_force(ids, m, q, 20))


def test_ties_are_broken_by_image_id() -> None:
    v = unit_rows(1, 16, 0)[0]
    m = np.stack([v] * 6)
    ids = np.array([42, 7, 99, 3, 18, 5], np.int64)
    got = exact_top(ids, m, v, 4)
    assert [i for i, _ in got] == [3, 5, 7, 18]
    assert len({s for _, s in got}) == 1


def test_min_score_cuts_exactly() -> None:
    m = unit_rows(3000, 32, seed=4)
    ids = np.arange(3000, dtype=np.int64)
    q = m[0]
    exact = (m.astype(np.float64) @ q.astype(np.float64)).astype(np.float32)
    for min_score in (0.2, 0.35, 1.0, 1.5):
        got = select(ids, m, q, exact, 100, 1e-5, min_score)
        assert same(got, brute_force(ids, m, q, 100, min_score))
        assert all(s >= min_score for _, s in got)


def test_combine_positive_minus_negative() -> None:
    a, b, c = unit_rows(3, 16, 5)
    got = combine([a, b], [c])
    want = a.astype(np.float64) + b - c
    np.testing.assert_allclose(got, want / np.linalg.norm(want), atol=1e-6)
    assert got.dtype == np.float32
    np.testing.assert_allclose(combine([a]), a, atol=1e-6)
    with pytest.raises(QueryError, match="positive"):
        combine([], [c])
    with pytest.raises(QueryError, match="cancel"):
        combine([a], [a])


@pytest.mark.parametrize("kernel", kernels.KERNELS)
def test_each_kernel_stays_within_its_error_bound(kernel: kernels.Kernel) -> None:
    if kernel != "numpy-float32":
        pytest.importorskip("torch")
    dim = 512
    m = unit_rows(20_000, dim, seed=6)
    m[:50] = m[50]  # scores of exactly 1.0, where half precision rounds most coarsely
    q = m[50]
    matrix = kernels.make_matrix(kernel, len(m), dim)
    matrix.put(np.arange(len(m)), m)
    err = np.abs(matrix.scores(q, len(m)) - m.astype(np.float64) @ q.astype(np.float64))
    assert err.max() <= matrix.error, (kernel, err.max(), matrix.error)
    # ...and the bound is not absurdly loose either (the candidates it keeps cost time).
    assert matrix.error < 0.02


def test_pick_matrix_measures_or_obeys() -> None:
    assert kernels.pick_matrix(32, "numpy-float32") == "numpy-float32"
    assert kernels.pick_matrix(32, "auto") in kernels.KERNELS
    with pytest.raises(ValueError):
        kernels.pick_matrix(32, "int4")


@pytest.mark.parametrize("kernel", ["torch-float16", "torch-bfloat16"])
def test_half_kernels_within_bound_on_worst_case_rounding(kernel: kernels.Kernel) -> None:
    """Every stored value just below a rounding midpoint, all errors the same way: the
    largest error a half-precision copy can make, and still within the bound."""
    torch = pytest.importorskip("torch")
    dtype = torch.float16 if kernel == "torch-float16" else torch.bfloat16
    dim = 512
    q = torch.from_numpy(unit_rows(1, dim, 11)[0]).to(dtype)  # representable in half
    up = torch.nextafter(q.abs(), torch.tensor(float("inf"), dtype=dtype))
    x = (q.abs().float() + 0.49 * (up.float() - q.abs().float())) * torch.sign(q.float())
    matrix = kernels.make_matrix(kernel, 1, dim)
    matrix.put(np.array([0]), x.numpy()[None, :])
    exact = float(x.double() @ q.double())
    err = abs(float(matrix.scores(q.float().numpy(), 1)[0]) - exact)
    assert err <= matrix.error
    assert err > matrix.error / 8  # the construction does get close to the bound
