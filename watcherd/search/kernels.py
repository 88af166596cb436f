"""The fast, approximate pass of search: where vectors live in memory and how they are scored.

Three ways, picked at run time by measuring them on this machine (never by assuming what the
CPU can do: on one AMD EPYC torch's float16 matrix-*vector* product runs at memory speed while
its float16 matrix-*matrix* product is ~300x slower than float32, and bfloat16 is the reverse):

* ``numpy-float32``: numpy/BLAS, 4 bytes a value; always available, nearly exact.
* ``torch-float16`` / ``torch-bfloat16``: half the memory (2 bytes a value) through torch's CPU
  kernels, which accumulate in float32.

Each comes with a proven bound on how far its scores can be from the exact ones
(:func:`error_bound`); :mod:`watcherd.search.ranking` keeps every candidate within that bound and
re-scores them exactly, so the choice changes speed and memory, never the results. torch is
imported only when a half-precision kernel is asked for or measured.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np

__all__ = ["KERNELS", "Matrix", "error_bound", "make_matrix", "pair_scorer", "pick_matrix"]

Kernel = Literal["numpy-float32", "torch-float16", "torch-bfloat16"]
KERNELS: tuple[Kernel, ...] = ("numpy-float32", "torch-float16", "torch-bfloat16")
_UNIT_ROUNDOFF = {"numpy-float32": 2.0**-24, "torch-float16": 2.0**-11,
                  "torch-bfloat16": 2.0**-8}
_F32 = 2.0**-24


def error_bound(kernel: Kernel, dim: int) -> float:
    """Largest possible |computed - exact| for the dot product of two unit vectors.

    float32: the summation error of ``dim`` products, at most ``dim * 2**-24`` (any order).
    Half types: rounding both vectors to half (each product off by at most ``2u + u**2``
    relative, so the sum by at most that much, since sum|x_i y_i| <= 1 for unit vectors),
    the float32 summation, the final rounding of the result to half (``u`` for |s| <= 1), and
    twice the float32 term again for values that fall below half's normal range.
    """
    if kernel == "numpy-float32":
        return 1.01 * dim * _F32
    u = _UNIT_ROUNDOFF[kernel]
    return (2 * u + u * u) + 1.01 * u + 3.03 * dim * _F32


class Matrix(Protocol):
    """Rows of vectors in memory (one per slot) that can be scored against a query."""

    kernel: Kernel
    error: float

    @property
    def nbytes(self) -> int: ...

    def resize(self, capacity: int) -> None: ...

    def put(self, slots: np.ndarray, vectors: np.ndarray) -> None: ...

    def move(self, src: np.ndarray, dst: np.ndarray) -> None: ...

    def scores(self, query: np.ndarray, n: int) -> np.ndarray: ...


class NumpyMatrix:
    """float32 rows, scored with BLAS (sgemv)."""

    kernel: Kernel = "numpy-float32"

    def __init__(self, capacity: int, dim: int) -> None:
        self.dim = dim
        self.error = error_bound(self.kernel, dim)
        self.data = np.zeros((capacity, dim), np.float32)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def resize(self, capacity: int) -> None:
        grown = np.zeros((capacity, self.dim), np.float32)
        keep = min(capacity, len(self.data))
        grown[:keep] = self.data[:keep]
        self.data = grown

    def put(self, slots: np.ndarray, vectors: np.ndarray) -> None:
        self.data[slots] = vectors

    def move(self, src: np.ndarray, dst: np.ndarray) -> None:
        self.data[dst] = self.data[src]

    def scores(self, query: np.ndarray, n: int) -> np.ndarray:
        return self.data[:n] @ np.asarray(query, np.float32)


class TorchMatrix:
    """float16 or bfloat16 rows in a torch tensor, scored with torch's CPU matrix-vector
    product (float32 accumulation)."""

    def __init__(self, capacity: int, dim: int, kernel: Kernel) -> None:
        import torch

        self._torch = torch
        self.kernel = kernel
        self.dim = dim
        self.error = error_bound(kernel, dim)
        self.dtype = torch.float16 if kernel == "torch-float16" else torch.bfloat16
        self.data = torch.zeros((capacity, dim), dtype=self.dtype)

    @property
    def nbytes(self) -> int:
        return int(self.data.element_size() * self.data.nelement())

    def resize(self, capacity: int) -> None:
        grown = self._torch.zeros((capacity, self.dim), dtype=self.dtype)
        keep = min(capacity, self.data.shape[0])
        grown[:keep] = self.data[:keep]
        self.data = grown

    def put(self, slots: np.ndarray, vectors: np.ndarray) -> None:
        torch = self._torch
        self.data[torch.from_numpy(np.asarray(slots, np.int64))] = torch.from_numpy(
            np.require(vectors, np.float32, ["C", "W"])).to(self.dtype)

    def move(self, src: np.ndarray, dst: np.ndarray) -> None:
        torch = self._torch
        self.data[torch.from_numpy(np.asarray(dst, np.int64))] = self.data[
            torch.from_numpy(np.asarray(src, np.int64))]

    def scores(self, query: np.ndarray, n: int) -> np.ndarray:
        torch = self._torch
        q = torch.from_numpy(np.require(query, np.float32, ["C", "W"])).to(self.dtype)
        with torch.inference_mode():
            out: np.ndarray = (self.data[:n] @ q).float().numpy()
        return out


def make_matrix(kernel: Kernel, capacity: int, dim: int) -> Matrix:
    if kernel == "numpy-float32":
        return NumpyMatrix(capacity, dim)
    return TorchMatrix(capacity, dim, kernel)


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _sample(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    m = np.random.default_rng(seed).standard_normal((rows, dim), dtype=np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m


def _best_time(fn: Callable[[], Any], runs: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def measure_matrices(dim: int, rows: int = 65_536) -> dict[Kernel, float | None]:
    """Seconds per full scan of ``rows`` vectors for each kernel on this machine; None for a
    kernel that is unavailable or whose results break its error bound (a broken build)."""
    sample = _sample(rows, dim)
    query = sample[7] * 0.6 + sample[8] * 0.8
    query /= np.linalg.norm(query)
    exact = sample.astype(np.float64) @ query.astype(np.float64)
    out: dict[Kernel, float | None] = {}
    for kernel in KERNELS:
        if kernel != "numpy-float32" and not _torch_available():
            out[kernel] = None
            continue
        matrix = make_matrix(kernel, rows, dim)
        matrix.put(np.arange(rows), sample)
        if float(np.abs(matrix.scores(query, rows) - exact).max()) > matrix.error / 2:
            out[kernel] = None
            continue
        out[kernel] = _best_time(functools.partial(matrix.scores, query, rows))
    return out


def pick_matrix(dim: int, prefer: str = "auto") -> Kernel:
    """The kernel for a search index: ``prefer`` names one of :data:`KERNELS`, or ``"auto"``:
    the fastest half-precision kernel that works here and is at most 1.25x slower than float32
    (half the memory is worth that), else ``numpy-float32``."""
    if prefer != "auto":
        if prefer not in KERNELS:
            raise ValueError(f"unknown kernel {prefer!r} (auto, {', '.join(KERNELS)})")
        return prefer
    if not _torch_available():
        return "numpy-float32"
    times = measure_matrices(dim)
    base = times["numpy-float32"] or float("inf")
    halves = [(t, k) for k, t in times.items() if k != "numpy-float32" and t is not None]
    if halves and min(halves)[0] <= 1.25 * base:
        return min(halves)[1]
    return "numpy-float32"


# ------------------------------------------------------------------- all pairs (duplicates)

PairScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _numpy_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a @ b.T


def _torch_pairs(kernel: Kernel) -> PairScorer:
    import torch

    dtype = torch.float16 if kernel == "torch-float16" else torch.bfloat16

    def score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(a).to(dtype)
            y = torch.from_numpy(b).to(dtype)
            out: np.ndarray = (x @ y.T).float().numpy()
        return out

    return score


def pair_scorer(kernel: Kernel) -> PairScorer:
    """A function (a, b) -> a @ b.T (float32 result) computed with ``kernel``."""
    return _numpy_pairs if kernel == "numpy-float32" else _torch_pairs(kernel)


def measure_pairs(dim: int, block: int) -> dict[Kernel, float | None]:
    """Seconds per (block x block) score block for each kernel here; None when unavailable or
    outside its error bound."""
    a, b = _sample(block, dim, 1), _sample(block, dim, 2)
    exact = a.astype(np.float64) @ b.astype(np.float64).T
    out: dict[Kernel, float | None] = {}
    for kernel in KERNELS:
        if kernel != "numpy-float32" and not _torch_available():
            out[kernel] = None
            continue
        score = pair_scorer(kernel)
        started = time.perf_counter()
        first = score(a, b)
        if time.perf_counter() - started > 20 * (out.get("numpy-float32") or 1.0):
            out[kernel] = None  # a slow path (no hardware support): not worth timing again
            continue
        if float(np.abs(first - exact).max()) > error_bound(kernel, dim) / 2:
            out[kernel] = None
            continue
        out[kernel] = _best_time(functools.partial(score, a, b), runs=2)
    return out
