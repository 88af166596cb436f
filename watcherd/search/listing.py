"""A query with filters and no query part: the matching live photos, newest ``taken_at``
first (those without one last), as :class:`~watcherd.search.engine.Results` with no scores.
No model and no vectors are needed: a photo still waiting for its vector is listed too."""

from __future__ import annotations

import sqlite3

from watcherd.search.engine import Hit, Query, Results
from watcherd.search.ranking import QueryError
from watcherd.store import filters as filter_sql
from watcherd.store.vectors import ModelKey, shot_members

__all__ = ["newest"]


def newest(conn: sqlite3.Connection, query: Query, key: ModelKey,
           vocabulary: filter_sql.Vocabulary | None = None) -> Results:
    """``query.n`` matching photos of a listing query (:attr:`Query.listing`); ``key``: the
    model named in the answer (the configured one: none was used); ``vocabulary``: the
    connection's, kept between queries."""
    if query.n < 1:
        raise QueryError(f"the number of results must be at least 1, got {query.n}")
    if query.min_score is not None:
        raise QueryError("a minimum score needs a query (text or --image) to score against")
    conn.execute("BEGIN")
    try:
        found = filter_sql.newest(conn, query.filters, query.n + len(query.exclude),
                                  query.under, vocabulary)
    finally:
        conn.execute("COMMIT")
    skip = set(query.exclude)
    rows = [r for r in found.rows if r[0] not in skip][:query.n]
    shots = shot_members(conn, [r[0] for r in rows])
    hits = [Hit(i, path, None, taken, tuple(shots.get(i, ()))) for i, path, taken in rows]
    return Results(key, hits, found.matching)
