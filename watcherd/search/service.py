"""The one search function ``watcherd search`` (in-process) and ``watcherd serve`` both call:
choose the stored model that answers, search its vectors through a source (a one-shot
:class:`~watcherd.search.full_scan.ScanSource` or a warm
:class:`~watcherd.search.index.SearchIndex`), and say which model answered (with a note when
it is not the configured one). The model itself (torch) is loaded only if a part of the query
needs it, by :func:`load_encoder`."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from watcherd.search.engine import Encoder, Query, Results, Searcher, Source
from watcherd.search.model_choice import pick
from watcherd.store.filters import Vocabulary
from watcherd.store.vectors import ModelKey, StoredModel

if TYPE_CHECKING:
    from watcherd.media.options import Options


class ModelUnavailable(Exception):
    """The model a query needs (a text, or an image file that is not indexed) could not be
    loaded; str() is the reason."""


def load_encoder(model: str, pretrained: str, device: str, precision: str, *,
                 text_only: bool = False) -> Encoder:
    """The open_clip model, for the texts (and, unless ``text_only``, image files) of
    queries. Raises :class:`ModelUnavailable`."""
    from watcherd.media.embeddings import Embedder, ModelLoadError

    try:
        embedder = Embedder(model, pretrained or None, device, precision)
    except ModelLoadError as exc:
        raise ModelUnavailable(str(exc)) from exc
    if text_only:
        embedder.drop_image_tower()
    return embedder


def search(conn: sqlite3.Connection, query: Query, *, configured: ModelKey,
           model: str | None = None, pretrained: str | None = None,
           source: Callable[[ModelKey], Source], encoder: Callable[[ModelKey], Encoder],
           max_pixels: int, stored: list[StoredModel] | None = None,
           options: Options | None = None,
           vocabulary: Vocabulary | None = None) -> Results:
    """``query`` against one stored model's vectors: ``model``/``pretrained`` if given, else the
    ``configured`` one unless another covers more live photos (``stored``: coverage counts
    already at hand). Raises QueryError (bad input), NoVectorsError, ModelUnavailable.

    A query with filters and no query part lists the matching photos, newest taken_at first
    (:mod:`watcherd.search.listing`): no model is chosen or loaded. ``vocabulary``: the places
    and keywords of ``conn``, kept by a long-lived caller."""
    if query.listing:
        from watcherd.search.listing import newest

        return newest(conn, query, configured, vocabulary)
    choice = pick(conn, configured, model, pretrained, stored=stored)
    searcher = Searcher(source(choice.key), lambda: encoder(choice.key), max_pixels=max_pixels,
                        options=options)
    return dataclasses.replace(searcher.search(query), note=choice.note)
