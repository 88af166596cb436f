"""Queries with the real model (a tiny random-weight open_clip model on disk): text vectors as
open_clip computes them, image files embedded as the embedding worker does it, mixed and
negative queries against the numpy reference."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.helpers import jpeg, scene_image, write_config
from tests.searchlib import assert_same_ranking, embed_stored, open_clip_text, reference
from watcherd import config
from watcherd.media.embeddings import Embedder, from_blob
from watcherd.media.identity import ModelIdentity
from watcherd.search.engine import Query, QueryError, Searcher, embed_image_bytes
from watcherd.search.full_scan import ScanSource
from watcherd.search.index import SearchIndex
from watcherd.store import discovery, schema, vectors
from watcherd.store.vectors import ModelKey
from watcherd.worker import tasks

open_clip = pytest.importorskip("open_clip")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> dict[str, Any]:
    """A library of 24 JPEG photos in two folders, embedded by the worker's own code, in fp32:
    these tests compare query vectors with open_clip's own to 1e-5."""
    tmp = tmp_path_factory.mktemp("engine")
    cfg = config.load(write_config(tmp, model=tiny_model, embeddings={"precision": "fp32"}))
    conn = schema.connect(cfg.database.path)
    items = []
    for i in range(24):
        folder = tmp / "photos" / ("beach" if i % 2 else "city")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"p{i:02d}.jpg"
        path.write_bytes(jpeg(scene_image(640, 480, 100 + i), quality=90))
        data = path.read_bytes()
        rec = discovery.record_file(conn, str(path), len(data), 1.0,
                                    hashlib.sha256(data).hexdigest(),
                                    discovery.Reuse(tiny_model, "", (64,), "webp"))
        items.append((rec.id, hashlib.sha256(data).hexdigest()))
    holder = tasks.EmbedderHolder()
    holder.load(cfg)
    assert embed_stored(cfg, holder, items) == 24
    outside = tmp / "outside.jpg"  # an image file that is not in the library
    outside.write_bytes(jpeg(scene_image(1200, 900, 7), quality=90))
    key = ModelKey(*holder.key or ("", ""))
    return {"cfg": cfg, "conn": conn, "db": cfg.database.path, "key": key,
            "embedder": holder.embedder, "outside": outside, "tmp": tmp}


def searchers(p: dict[str, Any]) -> list[Searcher]:
    load = lambda: p["embedder"]  # noqa: E731 - the model already loaded by the fixture
    return [Searcher(ScanSource(vectors.connect_readonly(p["db"]), p["key"]), load),
            Searcher(SearchIndex(p["db"], p["key"]), load)]


def hits(results: Any) -> list[tuple[int, str, float]]:
    return [(h.image_id, h.path, h.score) for h in results.hits]


def test_text_mixed_and_negative_queries_equal_the_reference(photos: dict[str, Any],
                                                             tiny_model: str) -> None:
    cake, car, dog = open_clip_text(tiny_model, ["a birthday cake with candles",
                                                 "the red car at the beach", "a dog"])
    stored = vectors.vector_of(vectors.connect_readonly(photos["db"]), photos["key"], 3)
    assert stored is not None
    cases = [
        (Query(texts=["a birthday cake with candles"], n=10), cake),
        (Query(texts=["the red car at the beach"], not_texts=["a dog"], n=10), car - dog),
        (Query(texts=["a birthday cake with candles"], images=[3], not_texts=["a dog"], n=10),
         cake + stored - dog),
        (Query(texts=["a dog"], n=5, under=str(photos["tmp"] / "photos" / "beach")), dog),
    ]
    for searcher in searchers(photos):
        for query, want in cases:
            want = want / np.linalg.norm(want)
            np.testing.assert_allclose(searcher.vector(query), want, atol=1e-5)
            ref = reference(photos["db"], photos["key"], want, query.n + 5, under=query.under)
            assert_same_ranking(hits(searcher.search(query)), ref, query.n, tie=1e-5)


def test_an_image_file_not_in_the_library_is_embedded_like_the_worker(
        photos: dict[str, Any]) -> None:
    conn = photos["conn"]
    outside: Path = photos["outside"]
    vectors_used = []
    for searcher in searchers(photos):
        query = Query(images=[str(outside)], n=8)
        vectors_used.append(searcher.vector(query))
        ref = reference(photos["db"], photos["key"], vectors_used[-1], 13)
        assert_same_ranking(hits(searcher.search(query)), ref, 8, tie=1e-5)
    # The same file, recorded and embedded by the worker's own code:
    target = photos["tmp"] / "photos" / "city" / "late.jpg"
    target.write_bytes(outside.read_bytes())
    data = target.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    rec = discovery.record_file(conn, str(target), len(data), 1.0, sha,
                                discovery.Reuse(photos["key"].model, photos["key"].pretrained,
                                                (64,), "webp"))
    try:
        assert embed_stored(photos["cfg"], _holder(photos), [(rec.id, sha)]) == 1
        worker = from_blob(conn.execute("SELECT vector FROM embeddings WHERE image_id = ?",
                                        (rec.id,)).fetchone()[0])
        for on_the_fly in vectors_used:
            assert float(worker @ on_the_fly) >= 0.99999
    finally:
        discovery.mark_deleted(conn, [str(target)])


def _holder(photos: dict[str, Any]) -> tasks.EmbedderHolder:
    holder = tasks.EmbedderHolder()
    holder.embedder = photos["embedder"]
    holder.identity = ModelIdentity(photos["key"].model, photos["key"].pretrained)
    return holder


def test_an_indexed_photo_by_path_needs_no_model(photos: dict[str, Any]) -> None:
    def no_model() -> Embedder:
        raise AssertionError("model loaded")

    path = str(photos["tmp"] / "photos" / "city" / "p04.jpg")
    for searcher in searchers(photos):
        searcher._load_encoder = no_model  # type: ignore[method-assign]
        searcher._encoder = None
        got = searcher.search(Query(images=[path], n=3))
        assert got.hits[0].path == path and got.hits[0].score == pytest.approx(1.0, abs=1e-6)


def test_bad_input_is_a_query_error_before_any_model_loads(photos: dict[str, Any],
                                                         tmp_path: Path) -> None:
    def no_model() -> Embedder:
        raise AssertionError("model loaded")

    text_file = tmp_path / "notes.jpg"
    text_file.write_text("not a photo")
    searcher = Searcher(ScanSource(vectors.connect_readonly(photos["db"]), photos["key"]),
                        no_model)
    for query, reason in [(Query(), "positive part"),
                          (Query(not_texts=["a dog"]), "only say what to avoid"),
                          (Query(texts=["  "]), "empty text"),
                          (Query(images=[str(tmp_path / "missing.jpg")]), "No such file"),
                          (Query(images=[str(text_file)]), "not an image"),
                          (Query(images=[3], n=0), "at least 1"),
                          (Query(images=[3], min_score=2.0), "between -1 and 1")]:
        with pytest.raises(QueryError, match=reason):
            searcher.search(query)


def test_embed_image_bytes_matches_open_clip_for_a_png(photos: dict[str, Any],
                                                       tiny_model: str) -> None:
    """No JPEG draft, no colour profile: exactly open_clip's encode_image(preprocess(img))."""
    image = scene_image(300, 200, 3)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    net, _, preprocess = open_clip.create_model_and_transforms(tiny_model)
    net.eval()
    with torch.no_grad():
        ref = torch.nn.functional.normalize(
            net.encode_image(preprocess(image).unsqueeze(0)).float(), dim=-1)[0].numpy()
    got = embed_image_bytes(photos["embedder"], buf.getvalue(), max_pixels=10**8)
    assert float(got @ ref) >= 0.999
