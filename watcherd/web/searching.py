"""One search request, as the API and the page both take it: parameters in, Results or an
:class:`~watcherd.web.params.BadRequest` / :class:`Unavailable` with a reason out; and one
duplicates request (/api/duplicates) the same way."""

from __future__ import annotations

import sqlite3
import time

from starlette.datastructures import QueryParams

from watcherd.search import filters as f
from watcherd.search.duplicates import Duplicates, find_duplicates
from watcherd.search.engine import Query, Results
from watcherd.search.model_choice import Choice, NoVectorsError, pick
from watcherd.search.ranking import QueryError
from watcherd.search.service import ModelUnavailable
from watcherd.store.vectors import VectorError
from watcherd.web import params as p
from watcherd.web.library import Library

FILTER_PARAMS = ("taken", "place", "near", "camera", "keyword")
SEARCH_PARAMS = ("q", "image", "not", "not_image", "n", "min_score", "under", "model",
                 *FILTER_PARAMS)
DUPLICATES_PARAMS = ("threshold", "model", "pretrained")


class Unavailable(Exception):
    """The search cannot be answered now (no vectors, no model, database trouble): 503/404."""

    def __init__(self, reason: str, status: int = 503) -> None:
        super().__init__(reason)
        self.status = status


def filters(qp: QueryParams) -> f.Filters:
    """The metadata filters of a request (taken, place, near, camera, keyword)."""
    for name in FILTER_PARAMS:
        if len(qp.getlist(name)) > 1:
            raise p.BadRequest(f"{name} is given more than once")
    try:
        return f.parse(**{name: qp.get(name) for name in FILTER_PARAMS})
    except f.FilterError as exc:
        raise p.BadRequest(exc.as_parameter()) from None


def parse(qp: QueryParams, *, allowed: tuple[str, ...] = SEARCH_PARAMS,
          default_n: int = 20) -> tuple[Query, str | None]:
    p.only(qp, allowed)
    texts = p.texts(qp, "q")
    not_texts = p.texts(qp, "not")
    images = [p.image_id(v, "image") for v in qp.getlist("image") if v != ""]
    not_images = [p.image_id(v, "not_image") for v in qp.getlist("not_image") if v != ""]
    p.check_parts(texts, not_texts, images, not_images)
    wanted = filters(qp)
    if not (texts or images) and (not_texts or not_images or not wanted):
        raise p.BadRequest("a search needs q (text) or image (a photo id), or with neither "
                           "a filter (taken, place, near, camera, keyword)")
    query = Query(texts=(" ".join(texts),) if texts else (), images=tuple(images),
                  not_texts=tuple(not_texts), not_images=tuple(not_images),
                  n=p.opt_int(qp, "n", default_n, 1, p.MAX_N),
                  min_score=p.score(qp, "min_score"), under=p.folder(qp), filters=wanted)
    return query, p.model(qp)


def run(lib: Library, query: Query, model: str | None) -> tuple[Results, float]:
    started = time.perf_counter()
    try:
        results = lib.search(query, model)
    except QueryError as exc:
        raise p.BadRequest(str(exc)) from None
    except NoVectorsError as exc:
        raise Unavailable(str(exc), 404) from None
    except ModelUnavailable as exc:
        raise Unavailable(f"cannot load the model for a text query: {exc}") from None
    except (VectorError, sqlite3.Error) as exc:
        raise Unavailable(f"database: {exc}") from None
    return results, time.perf_counter() - started


def duplicates_choice(lib: Library, model: str | None, pretrained: str | None) -> Choice:
    """The stored model to compare, as `watcherd duplicates` picks it (coverage counted now)."""
    try:
        return pick(lib.conn(), lib.configured_key(), model, pretrained)
    except QueryError as exc:
        raise p.BadRequest(str(exc)) from None
    except NoVectorsError as exc:
        raise Unavailable(str(exc), 404) from None
    except sqlite3.Error as exc:
        raise Unavailable(f"database: {exc}") from None


def duplicates(lib: Library, choice: Choice, threshold: float) -> Duplicates:
    try:
        return find_duplicates(lib.conn(), choice.key, threshold)
    except QueryError as exc:
        raise p.BadRequest(str(exc)) from None
    except (VectorError, sqlite3.Error) as exc:
        raise Unavailable(f"database: {exc}") from None


def kind_of(query: Query) -> str:
    if query.listing:
        return "listing"
    return "text" if query.texts or query.not_texts else "image"
