"""What the server holds warm: one :class:`SearchIndex` per stored model asked for (the
configured one built at start), the text model, and read-only connections (one per thread).

Nothing here writes to the database: every connection is opened with ``mode=ro``."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from watcherd import models
from watcherd.config import Config
from watcherd.media.options import Options
from watcherd.search import service
from watcherd.search.engine import Encoder, Query, Results
from watcherd.search.index import SearchIndex
from watcherd.search.service import ModelUnavailable, load_encoder
from watcherd.store import browse, vectors
from watcherd.store.filters import Vocabulary
from watcherd.store.vectors import ModelKey


@dataclass(frozen=True)
class Tile:
    image_id: int
    path: str
    score: float | None
    mtime: float | None
    has_thumb: bool
    taken: str | None = None  # metadata.taken_at, in a listing by it
    media_type: str = "photo"
    duration: float | None = None  # a video's, seconds
    badge: str | None = None  # "RAW+JPEG" or "LIVE" on a shot's face


#: How long the web server keeps the count of photos per stored model (which model answers
#: by default during a re-embed).
COVERAGE_TTL_S = 10.0


class Library:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.db_path = cfg.database.path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._indexes: dict[ModelKey, SearchIndex] = {}
        self._coverage: tuple[float, list[vectors.StoredModel]] = (0.0, [])
        self._encoders: dict[ModelKey, Encoder] = {}
        self._encoder_errors: dict[ModelKey, str] = {}
        self._encode_lock = threading.Lock()
        self.conn()  # fail now, at start, on a missing or unreadable database
        self.default_key = models.configured_key(cfg, self.conn())
        self.roots = [os.path.realpath(p) for p in cfg.watch.paths]

    # ------------------------------------------------------------------------ connections
    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = vectors.connect_readonly(self.db_path)
            self._local.conn = c
        return c

    def vocabulary(self) -> Vocabulary:
        """The stored places and keywords the filters resolve against, per connection."""
        v = getattr(self._local, "vocabulary", None)
        if v is None:
            v = self._local.vocabulary = Vocabulary()
        return v

    def warm(self) -> None:
        """Build the configured model's index and load the text model (both optional: an empty
        database or a model that will not load still leaves the page and the status working)."""
        if vectors.has_vectors(self.conn(), self.default_key):
            self.index(self.default_key)
        with contextlib.suppress(ModelUnavailable):
            self.encoder()

    # ---------------------------------------------------------------------------- search
    def index(self, key: ModelKey) -> SearchIndex:
        with self._lock:
            idx = self._indexes.get(key)
            if idx is None:
                idx = self._indexes[key] = SearchIndex(self.db_path, key)
            return idx

    def encoder(self, key: ModelKey | None = None) -> Encoder:
        """The text model of ``key`` (default: the configured model), loaded once."""
        key = key or self.configured_key()
        with self._encode_lock:
            if key in self._encoders:
                return self._encoders[key]
            if key in self._encoder_errors:
                raise ModelUnavailable(self._encoder_errors[key])
            e = self.cfg.embeddings
            model, pretrained = models.loadable(self.cfg, self.conn(), key)
            try:  # text only: the API's image queries use stored vectors
                embedder = load_encoder(model, pretrained, e.device, e.precision, text_only=True)
            except ModelUnavailable as exc:
                self._encoder_errors[key] = str(exc)
                raise
            self._encoders[key] = _Serialised(embedder)
            return self._encoders[key]

    def coverage(self) -> list[vectors.StoredModel]:
        """Live photos per stored model (a full count: kept for ``COVERAGE_TTL_S``)."""
        with self._lock:
            at, stored = self._coverage
            if time.monotonic() - at > COVERAGE_TTL_S or at == 0.0:
                stored = vectors.stored_models(self.conn())
                self._coverage = (time.monotonic(), stored)
            return stored

    def configured_key(self) -> ModelKey:
        """Computed again per query: the watcher may relabel vectors while the server runs."""
        self.default_key = models.configured_key(self.cfg, self.conn())
        return self.default_key

    @property
    def model_loaded(self) -> str | None:
        if not self._encoders:
            return None
        e = self.cfg.embeddings
        return f"{e.model} ({e.pretrained})" if e.pretrained else e.model

    def search(self, query: Query, model: str | None = None) -> Results:
        return service.search(self.conn(), query, configured=self.configured_key(), model=model,
                              source=self.index, encoder=self.encoder,
                              max_pixels=self.cfg.images.max_pixels, stored=self.coverage(),
                              options=Options.of(self.cfg.images.max_pixels,
                                                 self.cfg.thumbnails.sizes,
                                                 self.cfg.raw.prefer_embedded_preview),
                              vocabulary=self.vocabulary())

    # --------------------------------------------------------------------------- browsing
    def image(self, image_id: int) -> dict[str, Any] | None:
        return browse.image(self.conn(), image_id)

    def metadata(self, image_id: int) -> dict[str, Any] | None:
        return browse.metadata(self.conn(), image_id)

    def timeline(self) -> list[tuple[str, int]]:
        return browse.timeline(self.conn())

    def thumbnail(self, image_id: int, size: int) -> tuple[bytes, str, str] | None:
        """(data, format, created_at) of a live photo's thumbnail."""
        return browse.thumbnail(self.conn(), image_id, size)

    def newest(self, offset: int, limit: int, under: str | None) -> list[Tile]:
        rows = browse.newest(self.conn(), offset, limit, under)
        return self.tiles([(r[0], r[1], None, r[2], None) for r in rows])

    def tiles(self, found: Sequence[tuple[int, str, float | None, float | None, str | None]]
              ) -> list[Tile]:
        """Tiles of (id, path, score, mtime, taken) with what each shows: a thumbnail, ▶ and
        the duration of a video, the badge of a shot."""
        facts = browse.tile_facts(self.conn(), [f[0] for f in found])
        out = []
        for image_id, path, score, mtime, taken in found:
            got = facts.get(image_id) or browse.TileFacts(False)
            out.append(Tile(image_id, path, score, mtime, got.has_thumb, taken, got.media_type,
                            got.duration, got.badge))
        return out

    def inside_roots(self, path: str) -> str | None:
        """The real path of ``path`` if it lies inside a watched folder, else None."""
        real = os.path.realpath(path)
        for root in self.roots:
            if real == root or real.startswith(root.rstrip("/") + "/"):
                return real
        return None

    def index_stats(self) -> dict[str, Any]:
        with self._lock:
            return {k.describe(): {"vectors": len(i), "load_s": round(i.stats.load_s, 3)}
                    for k, i in self._indexes.items()}


class _Serialised:
    """The text model behind a lock: torch runs one query's tower at a time (it uses the cores
    itself), and a lazily loaded model is built once."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.dim = inner.dim
        self.input_size = inner.input_size

    def encode_text(self, texts: Sequence[str]) -> Any:
        with self._lock:
            return self._inner.encode_text(texts)

    def preprocess(self, image: Any) -> Any:
        return self._inner.preprocess(image)

    def encode(self, batch: Sequence[Any]) -> Any:
        with self._lock:
            return self._inner.encode(batch)


def timed(fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    return fn(), time.perf_counter() - started
