"""Which stored model answers a query: the configured one by default, or the one asked for."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass

from watcherd.media.identity import identify
from watcherd.media.identity import normalise_model as normalise_model
from watcherd.search.ranking import QueryError
from watcherd.store import settings, vectors
from watcherd.store.vectors import ModelKey

__all__ = ["Choice", "NoVectorsError", "best_covering", "choose_model", "normalise_model",
           "pick"]


class NoVectorsError(Exception):
    """The library has no vectors at all yet (nothing embedded): not the user's mistake."""


def _identity(conn: sqlite3.Connection, model: str,
              pretrained: str | None) -> tuple[str, str | None]:
    """A ``local-dir:`` folder or a checkpoint file named on the command line stands for the
    identity of its weights (what ``embeddings`` records); one that cannot be read stays as
    given (vectors stored before schema 6 are keyed by the path)."""
    if not (model.startswith("local-dir:") or (pretrained and os.path.isfile(pretrained))):
        return model, pretrained
    try:
        found = identify(model, pretrained, settings.Fingerprints(conn))
    except OSError:
        return model, pretrained
    return found.model, found.pretrained


def _listing(stored: list[vectors.StoredModel]) -> str:
    return "; ".join(f"{m.key.describe()} ({m.photos} photos)" for m in stored)


def _missing(conn: sqlite3.Connection, what: str) -> Exception:
    stored = vectors.stored_models(conn)
    if not stored:
        return NoVectorsError("no photo has a vector yet (embedding is still pending or "
                              "failing: see `watcherd status`)")
    return QueryError(f"no vectors of {what}; vectors are stored for: {_listing(stored)} "
                      "(choose one with --model and --pretrained)")


@dataclass(frozen=True)
class Choice:
    key: ModelKey
    note: str | None = None  # why another model than the configured one answers


def best_covering(stored: list[vectors.StoredModel], configured: ModelKey) -> Choice | None:
    """During a re-embed (a model change), search must not get worse: the configured model
    answers once it covers at least as many live photos as any stored model; until then the
    model that covers the most does, and the note says so. None: no vectors at all."""
    if not stored:
        return None
    best = max(stored, key=lambda m: m.photos)  # stored is most photos first; ties: first
    mine = next((m.photos for m in stored if m.key == configured), 0)
    if mine >= best.photos:
        return Choice(configured)
    return Choice(best.key, f"the configured model {configured.describe()} covers {mine} "
                  f"photos so far; searching with {best.key.describe()} ({best.photos} photos) "
                  "until it covers as many (choose one with --model)")


def pick(conn: sqlite3.Connection, default: ModelKey, model: str | None = None,
         pretrained: str | None = None, *,
         stored: list[vectors.StoredModel] | None = None) -> Choice:
    """:func:`choose_model`, and with neither ``model`` nor ``pretrained`` the stored model
    that covers the library best (see :func:`best_covering`; ``stored``: the coverage counts
    if the caller keeps them, else counted now)."""
    if model is None and pretrained is None:
        if stored is None and vectors.model_keys(conn) == [default] and \
                vectors.has_live_vectors(conn, default):
            return Choice(default)  # the one stored model covers best: no need to count
        choice = best_covering(vectors.stored_models(conn) if stored is None else stored,
                               default)
        if choice is None:
            raise _missing(conn, f"the configured model {default.describe()}")
        return choice
    return Choice(choose_model(conn, default, model, pretrained))


def choose_model(conn: sqlite3.Connection, default: ModelKey, model: str | None = None,
                 pretrained: str | None = None) -> ModelKey:
    """The stored model to search: ``default`` (the configured one) unless ``model`` and/or
    ``pretrained`` say otherwise. ``model`` alone picks its one stored ``pretrained``.

    Raises QueryError (naming the models that have vectors) when the choice has none or is
    ambiguous, NoVectorsError when no model has any.
    """
    if model is None:
        key = ModelKey(default.model, default.pretrained if pretrained is None else pretrained)
        if vectors.has_vectors(conn, key):
            return key
        raise _missing(conn, f"the configured model {key.describe()}")
    model, pretrained = _identity(conn, normalise_model(model), pretrained)
    if pretrained is not None:
        key = ModelKey(model, pretrained)
        if vectors.has_vectors(conn, key):
            return key
        raise _missing(conn, f"model {key.describe()}")
    stored = vectors.stored_models(conn)
    same = [m.key for m in stored if m.key.model == model]
    if len(same) == 1:
        return same[0]
    if len(same) > 1:
        if default in same:
            return default
        raise QueryError(f"model {model!r} is stored with several pretrained weights; choose "
                         f"one with --pretrained: {_listing([m for m in stored if m.key in same])}")
    raise _missing(conn, f"model {model!r}")
