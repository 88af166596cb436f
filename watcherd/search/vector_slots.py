"""The in-memory half of :class:`~watcherd.search.index.SearchIndex`: its vectors, one matrix
row (a *slot*) per photo held, with the photo's id and folder, and the approximate scoring that
picks the candidates of a query.

Kept apart from the index, which decides what goes in and out (it follows the database) and
checks the candidates against the stored rows, because this part is plain array bookkeeping:
no database, no lock (the index holds one around every call). Freed slots are reused; after
many deletions the live ones are moved down over them (:meth:`VectorSlots.remove`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from watcherd.search import kernels
from watcherd.search.ranking import Candidates
from watcherd.store import vectors
from watcherd.store.vectors import ModelKey

MIN_CAPACITY = 1024


class VectorSlots:
    """The vectors held for model ``key`` by slot, each slot's image id and folder, and the
    free slots. ``kernel`` chooses the matrix (:func:`kernels.pick_matrix`)."""

    def __init__(self, key: ModelKey, kernel: str) -> None:
        self.key = key
        self._kernel_choice = kernel
        self.matrix: kernels.Matrix | None = None
        self.dim = 0
        self._n = 0  # slots in use (live or free)
        self._slot_ids = np.full(0, -1, np.int64)  # image id per slot, -1: free
        self._slot_folder = np.zeros(0, np.int32)
        self._slot_of = np.full(0, -1, np.int64)  # slot per image id, -1: not held
        self._free: list[int] = []
        self._folders: list[str] = []
        self._folder_ids: dict[str, int] = {}

    def clear(self) -> None:
        """Hold nothing (before a reload); the next vector makes a new matrix."""
        self.matrix = None
        self._n = 0
        self._slot_of = np.full(0, -1, np.int64)
        self._free = []
        self._folders, self._folder_ids = [], {}

    def __len__(self) -> int:
        return self._n - len(self._free)

    def slot(self, image_id: int) -> int:
        """The slot of ``image_id``, -1 when it is not held."""
        return int(self._slot_of[image_id]) if 0 <= image_id < len(self._slot_of) else -1

    def reserve(self, dim: int, expected: int) -> None:
        """At a load's first vector: the matrix for ``dim``-value vectors, sized once for the
        ``expected`` count, not grown by halves while loading (at a million vectors growth left
        up to a third of the matrix unused: 1.38 GiB held instead of 0.96)."""
        if self.matrix is None:
            self._ensure_matrix(dim)
            self._grow(expected + max(MIN_CAPACITY, expected // 100))

    def refile(self, image_id: int, folder: str) -> bool:
        """Note the (maybe new) folder of a held photo; False when it is not held."""
        slot = self.slot(image_id)
        if slot < 0:
            return False
        self._slot_folder[slot] = self._folder_id(folder)
        return True

    def _ensure_matrix(self, dim: int) -> kernels.Matrix:
        if self.matrix is None:
            self.dim = dim
            kernel = kernels.pick_matrix(dim, self._kernel_choice)
            self.matrix = kernels.make_matrix(kernel, MIN_CAPACITY, dim)
            self._slot_ids = np.full(MIN_CAPACITY, -1, np.int64)
            self._slot_folder = np.zeros(MIN_CAPACITY, np.int32)
        elif dim != self.dim:
            raise vectors.VectorError(
                f"model {self.key.describe()}: a {dim}-value vector among {self.dim}-value ones")
        return self.matrix

    def _folder_id(self, folder: str) -> int:
        fid = self._folder_ids.get(folder)
        if fid is None:
            fid = self._folder_ids[folder] = len(self._folders)
            self._folders.append(folder)
        return fid

    def upsert(self, ids: np.ndarray, matrix: np.ndarray, folders: list[str]) -> None:
        """Hold these vectors (rows of ``matrix``) for these image ids, in these folders."""
        if len(ids) == 0:
            return
        m = self._ensure_matrix(matrix.shape[1])
        top = int(ids.max())
        if top >= len(self._slot_of):
            grown = np.full(max(top + 1, 2 * len(self._slot_of)), -1, np.int64)
            grown[:len(self._slot_of)] = self._slot_of
            self._slot_of = grown
        slots = self._slot_of[ids].copy()
        new = np.flatnonzero(slots < 0)
        if len(new):
            reuse = [self._free.pop() for _ in range(min(len(new), len(self._free)))]
            fresh = len(new) - len(reuse)
            if self._n + fresh > len(self._slot_ids):
                self._grow(self._n + fresh)
            slots[new] = np.concatenate([np.array(reuse, np.int64),
                                         np.arange(self._n, self._n + fresh, dtype=np.int64)])
            self._n += fresh
            self._slot_of[ids[new]] = slots[new]
            self._slot_ids[slots[new]] = ids[new]
        m.put(slots, matrix)
        self._slot_folder[slots] = [self._folder_id(f) for f in folders]

    def _grow(self, needed: int) -> None:
        capacity = max(needed, int(len(self._slot_ids) * 1.5), MIN_CAPACITY)
        assert self.matrix is not None
        self.matrix.resize(capacity)
        for name, fill in (("_slot_ids", -1), ("_slot_folder", 0)):
            old = getattr(self, name)
            grown = np.full(capacity, fill, old.dtype)
            grown[:len(old)] = old
            setattr(self, name, grown)

    def remove(self, ids: Iterable[int]) -> list[int]:
        """Free the slots of these image ids; the ids that were held."""
        removed = []
        for image_id in ids:
            if 0 <= image_id < len(self._slot_of) and (slot := int(self._slot_of[image_id])) >= 0:
                self._slot_of[image_id] = -1
                self._slot_ids[slot] = -1
                self._free.append(slot)
                removed.append(image_id)
        if len(self._free) > max(MIN_CAPACITY, self._n // 4):
            self._compact()
        return removed

    def _compact(self) -> None:
        """Move live slots down over the free ones (after many deletions)."""
        assert self.matrix is not None
        live = np.flatnonzero(self._slot_ids[:self._n] >= 0)
        dst = np.arange(len(live))
        moving = live != dst
        self.matrix.move(live[moving], dst[moving])
        ids = self._slot_ids[live]
        self._slot_folder[:len(live)] = self._slot_folder[live]
        self._slot_ids[:len(live)] = ids
        self._slot_ids[len(live):self._n] = -1
        self._slot_of[ids] = dst
        self._n = len(live)
        self._free = []

    def held(self, ids: np.ndarray) -> np.ndarray:
        """A mask over the slots in use: True at the slots of these image ids (int64)."""
        ids = ids[(ids >= 0) & (ids < len(self._slot_of))]
        slots = self._slot_of[ids]
        mask = np.zeros(self._n, bool)
        mask[slots[slots >= 0]] = True
        return mask

    def candidates(self, query: np.ndarray, k: int, min_score: float | None,
                   under: str | None, exclude: set[int], only: np.ndarray | None = None
                   ) -> tuple[np.ndarray, int]:
        """The image ids that may belong to the best ``k`` for ``query`` by the matrix's
        approximate scores (within its error bound), among the photos held in folders under
        ``under``, not in ``exclude`` and (``only`` given) among those ids; and how many photos
        were considered. ``only`` restricts the photos ranked, so the top k is that of the
        matching photos, exact."""
        assert self.matrix is not None
        n = self._n
        scores = self.matrix.scores(query, n)
        allowed = self._slot_ids[:n] >= 0
        if only is not None:
            allowed &= self.held(only)
        if under is not None:
            prefix = under.rstrip("/") + "/"
            wanted = [i for i, f in enumerate(self._folders) if f.startswith(prefix)]
            allowed &= np.isin(self._slot_folder[:n], np.array(wanted, np.int32))
        for image_id in exclude:
            if (slot := self.slot(image_id)) >= 0:
                allowed[slot] = False
        considered = int(allowed.sum())
        found = Candidates(k, self.matrix.error, min_score)
        found.add(self._slot_ids[:n][allowed], scores[allowed])
        return found.ids(), considered
