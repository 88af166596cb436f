"""Which stored model answers a query: the configured one by default, or the one asked for."""

from __future__ import annotations

import os
import sqlite3

from watcherd.media.identity import identify
from watcherd.search.ranking import QueryError
from watcherd.store import db, vectors
from watcherd.store.vectors import ModelKey

__all__ = ["NoVectorsError", "choose_model", "normalise_model"]


class NoVectorsError(Exception):
    """The library has no vectors at all yet (nothing embedded): not the user's mistake."""


def normalise_model(model: str) -> str:
    """``local-dir:`` paths are stored absolute; accept them relative to the current folder."""
    prefix = "local-dir:"
    if model.startswith(prefix):
        return prefix + os.path.abspath(os.path.expanduser(model[len(prefix):]))
    return model


def _identity(conn: sqlite3.Connection, model: str,
              pretrained: str | None) -> tuple[str, str | None]:
    """A ``local-dir:`` folder or a checkpoint file named on the command line stands for the
    identity of its weights (what ``embeddings`` records); one that cannot be read stays as
    given (vectors stored before schema 6 are keyed by the path)."""
    if not (model.startswith("local-dir:") or (pretrained and os.path.isfile(pretrained))):
        return model, pretrained
    try:
        found = identify(model, pretrained, db.Fingerprints(conn))
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
