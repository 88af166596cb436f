"""Which stored model answers by default (search.models.pick) on a real database: the quick path
for a library with one stored model gives what counting every model's photos gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.searchlib import MODEL_A, MODEL_B, library, store_vectors, unit_rows
from watcherd.search.model_choice import NoVectorsError, best_covering, pick
from watcherd.store import discovery, vectors


def counted(conn: object, key: vectors.ModelKey) -> object:
    return best_covering(vectors.stored_models(conn), key)  # type: ignore[arg-type]


def test_one_stored_model_without_counting(tmp_path: Path) -> None:
    conn, ids, _ = library(tmp_path / "w.db", 30, key=MODEL_A)
    raw = conn  # type: ignore[attr-defined]
    assert vectors.model_keys(raw) == [MODEL_A]
    assert pick(raw, MODEL_A) == counted(raw, MODEL_A) and pick(raw, MODEL_A).note is None
    # configured B, only A stored: A answers, and the note says why
    assert pick(raw, MODEL_B) == counted(raw, MODEL_B) and pick(raw, MODEL_B).key == MODEL_A
    store_vectors(conn, MODEL_B, ids[:10], unit_rows(10, 48, seed=1))
    assert vectors.model_keys(raw) == sorted([MODEL_A, MODEL_B])
    for key in (MODEL_A, MODEL_B):
        assert pick(raw, key) == counted(raw, key)
    assert pick(raw, MODEL_B).key == MODEL_A and pick(raw, MODEL_B).note


def test_every_photo_of_the_one_model_deleted(tmp_path: Path) -> None:
    conn, _, _ = library(tmp_path / "w.db", 5, key=MODEL_A)
    paths = [r[0] for r in conn.execute("SELECT path FROM images")]  # type: ignore[attr-defined]
    discovery.mark_deleted(conn, paths)  # type: ignore[arg-type]
    raw = conn  # type: ignore[attr-defined]
    assert vectors.model_keys(raw) == [MODEL_A] and not vectors.has_live_vectors(raw, MODEL_A)
    with pytest.raises(NoVectorsError):
        pick(raw, MODEL_A)
