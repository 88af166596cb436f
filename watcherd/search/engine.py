"""A query, as a person writes it, into ranked photos.

:class:`Searcher` turns the parts of a :class:`Query` (texts, photos, their negations) into one
vector, ``normalize(sum of positive vectors - sum of negative vectors)``, and asks a source (a
:class:`~watcherd.search.full_scan.ScanSource` or a :class:`~watcherd.search.index.SearchIndex`) for
the exact best matches.

* A text part goes through the model's own text tower (:meth:`Embedder.encode_text`).
* A photo part is an image id, or a path: a live photo with a vector uses its stored vector (no
  model needed, so no torch); any other image file is embedded on the fly exactly as the
  embedding worker does it (same decode, JPEG draft size, colour conversion, preprocess).

The model is loaded only when a part needs it, once per Searcher: a long-lived process keeps
its Searcher and pays for torch and the text tower once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from watcherd.search.filters import Filters
from watcherd.search.ranking import QueryError, combine
from watcherd.store.vectors import ModelKey, Row

if TYPE_CHECKING:
    from watcherd.media.options import Options

__all__ = ["DEFAULT_N", "Encoder", "Hit", "Query", "QueryError", "Results", "Searcher",
           "Source", "embed_image_bytes", "hits_json"]

#: Results per query unless asked otherwise (the CLI's -n and the API's n).
DEFAULT_N = 20

ImageRef = str | int  # a path, or an image id


@dataclass(frozen=True)
class Query:
    texts: Sequence[str] = ()
    images: Sequence[ImageRef] = ()
    not_texts: Sequence[str] = ()
    not_images: Sequence[ImageRef] = ()
    n: int = DEFAULT_N
    min_score: float | None = None
    under: str | None = None  # only photos below this folder (an absolute path)
    exclude: Sequence[int] = field(default=())  # image ids never returned
    filters: Filters = field(default_factory=Filters)  # only photos that match (exact)

    @property
    def listing(self) -> bool:
        """No query part but filters: the matching photos, newest taken_at first."""
        return not (self.texts or self.images or self.not_texts or self.not_images) and bool(
            self.filters)


@dataclass(frozen=True)
class Hit:
    image_id: int
    path: str
    score: float | None  # None in a listing (no query part)
    taken_at: str | None = None  # a listing's order (metadata.taken_at)
    shot: tuple[tuple[int, str], ...] = ()  # a face's RAW and clip: (id, path)


@dataclass(frozen=True)
class Results:
    model: ModelKey  # which stored model answered
    hits: list[Hit]  # best first
    considered: int  # live photos with a vector of that model that were ranked
    note: str | None = None  # why that model and not the configured one (during a re-embed)


def hits_json(hits: Sequence[Hit]) -> list[dict[str, Any]]:
    """Hits as `watcherd search --json` prints them and /api/search answers them (the score
    rounded to 6 places, in both); a listing's hits have score null and their taken_at."""
    out: list[dict[str, Any]] = [
        {"image_id": h.image_id, "path": h.path, "score": round(h.score, 6)}
        if h.score is not None else
        {"image_id": h.image_id, "path": h.path, "score": None, "taken_at": h.taken_at}
        for h in hits]
    for item, h in zip(out, hits, strict=True):
        if h.shot:  # the RAW and the clip listed with their face
            item["shot"] = [{"image_id": i, "path": path} for i, path in h.shot]
    return out


class Source(Protocol):
    key: ModelKey

    def top(self, query: np.ndarray, k: int, *, min_score: float | None = None,
            under: str | None = None, exclude: Iterable[int] = (),
            filters: Filters | None = None) -> tuple[list[Row], list[float], int]:
        """The exact best ``k`` among the live photos (below ``under``, not in ``exclude``,
        matching ``filters``): the filters restrict the photos ranked, never the ranked list."""

    def vector_of(self, image_id: int) -> np.ndarray | None: ...

    def image_at(self, paths: list[str]) -> int | None: ...

    def members(self, ids: Sequence[int]) -> dict[int, list[tuple[int, str]]]:
        """The other files of each face's shot (a RAW, a Live Photo's clip)."""


class Encoder(Protocol):
    """What :class:`watcherd.media.embeddings.Embedder` offers search."""

    dim: int
    input_size: int

    def encode_text(self, texts: Sequence[str]) -> np.ndarray: ...

    def preprocess(self, image: Any) -> Any: ...

    def encode(self, batch: Sequence[Any]) -> np.ndarray: ...


def embed_image_bytes(encoder: Encoder, data: bytes, *, max_pixels: int,
                      path: str = "", options: Options | None = None) -> np.ndarray:
    """One image file's vector, the embedding worker's way: decode (JPEG draft-decoded to the
    model's input size, EXIF orientation, colour profile to sRGB; a RAW or a video at ``path``
    as the workers take them), preprocess, encode. Raises watcherd.media.images.ImageError for
    bytes that are no usable image."""
    from watcherd.media.options import Options
    from watcherd.media.sources import pixels

    decoded = pixels(path, data, options or Options(max_pixels=max_pixels),
                     draft_size=encoder.input_size).decoded
    return np.asarray(encoder.encode([encoder.preprocess(decoded.image)])[0], np.float32)


class Searcher:
    """Answers queries from ``source``; ``load_encoder`` builds the model when a query first
    needs it (a text, or an image file that is not an indexed photo)."""

    def __init__(self, source: Source, load_encoder: Callable[[], Encoder], *,
                 max_pixels: int = 100_000_000, options: Options | None = None) -> None:
        self.source = source
        self._load_encoder = load_encoder
        self._encoder: Encoder | None = None
        self.max_pixels = max_pixels
        # how a RAW or a video given as a query is decoded: as the configured workers do
        self.options = options

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = self._load_encoder()
        return self._encoder

    def search(self, query: Query) -> Results:
        if query.n < 1:
            raise QueryError(f"the number of results must be at least 1, got {query.n}")
        if query.min_score is not None and not -1.0 <= query.min_score <= 1.0:
            raise QueryError(f"the minimum score is a cosine, between -1 and 1; got "
                             f"{query.min_score}")
        vector = self.vector(query)
        rows, scores, considered = self.source.top(
            vector, query.n, min_score=query.min_score, under=query.under,
            exclude=query.exclude, filters=query.filters or None)
        shots = self.source.members([r.image_id for r in rows])
        hits = [Hit(r.image_id, r.path, s, shot=tuple(shots.get(r.image_id, ())))
                for r, s in zip(rows, scores, strict=True)]
        return Results(self.source.key, hits, considered)

    def vector(self, query: Query) -> np.ndarray:
        """The query's unit vector: normalize(sum of positives - sum of negatives)."""
        if not (query.texts or query.images):
            raise QueryError("a query needs at least one positive part: text or --image"
                             + (" (--not and --not-image only say what to avoid)"
                                if query.not_texts or query.not_images else
                                " (or no query at all, and a filter such as --taken)"))
        for text in (*query.texts, *query.not_texts):
            if not text.strip():
                raise QueryError("empty text in the query")
        texts = [*query.texts, *query.not_texts]
        text_vectors = self.encoder.encode_text(texts) if texts else np.empty((0, 0))
        positive = [*text_vectors[:len(query.texts)],
                    *(self._image_vector(ref) for ref in query.images)]
        negative = [*text_vectors[len(query.texts):],
                    *(self._image_vector(ref) for ref in query.not_images)]
        if len({len(v) for v in (*positive, *negative)}) > 1:
            raise QueryError("the query's parts have vectors of different sizes (a model "
                             "changed under the same name?)")
        return combine(positive, negative)

    def _image_vector(self, ref: ImageRef) -> np.ndarray:
        if isinstance(ref, int):
            vector = self.source.vector_of(ref)
            if vector is None:
                raise QueryError(f"photo #{ref} is not a live photo with a vector of model "
                                 f"{self.source.key.describe()}")
            return vector
        candidates = list(dict.fromkeys([os.path.abspath(ref), os.path.realpath(ref)]))
        image_id = self.source.image_at(candidates)
        if image_id is not None and (vector := self.source.vector_of(image_id)) is not None:
            return vector
        return self._embed_file(ref)

    def _embed_file(self, path: str) -> np.ndarray:
        import io

        from PIL import Image

        from watcherd.formats import kind_of
        from watcherd.media.images import ImageError

        kind = kind_of(path)
        try:  # a video is opened by its path, never read whole
            data = Path(path).read_bytes() if kind != "video" else b""
            if kind == "video":
                Path(path).stat()
        except OSError as exc:
            raise QueryError(f"cannot read image {path}: {exc.strerror or exc}") from None
        try:  # a look at the header first: no need to load the model for a text file
            if kind == "photo":
                Image.open(io.BytesIO(data))
        except Exception:
            raise QueryError(f"cannot use image {path}: not an image") from None
        try:
            return embed_image_bytes(self.encoder, data, max_pixels=self.max_pixels, path=path,
                                     options=self.options)
        except FileNotFoundError:
            raise QueryError(f"cannot read image {path}: no such file") from None
        except ImageError as exc:
            raise QueryError(f"cannot use image {path}: {exc}") from None
