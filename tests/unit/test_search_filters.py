"""Metadata filters: the SPEC parsing (pure), each filter's selection on a real watcherd
database against the same selection done plainly in Python, the exactness of a filtered
search (the top k of the matching photos, never a filtered global top k) through the one-shot
scan and the warm index, and the listing (no query part) newest taken first."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch  # noqa: F401 - at collection: its first import runs ldconfig (a subprocess)

from tests.helpers import put_metadata
from tests.searchlib import MODEL_A, add_photos, library, reference, store_vectors, unit_rows
from watcherd.search import filters as f
from watcherd.search import service
from watcherd.search.engine import Query, QueryError, Searcher
from watcherd.search.full_scan import ScanSource
from watcherd.search.index import SearchIndex
from watcherd.store import filters as filter_sql
from watcherd.store import vectors
from watcherd.textfold import fold

N, DIM = 600, 16
PLACES = [("France", "FR", "Île-de-France", "Paris", 48.8566, 2.3522),
          ("France", "FR", "Provence-Alpes-Côte d'Azur", "Nice", 43.7102, 7.2620),
          ("Germany", "DE", "Bayern", "München", 48.1372, 11.5756),
          ("Japan", "JP", "Tokyo", "Tokyo", 35.6895, 139.6917),
          ("Fiji", "FJ", "Northern", "Labasa", -16.43, 179.37),
          ("Fiji", "FJ", "Western", "Nadi", -17.80, 177.42),
          ("Samoa", "WS", "Tuamasaga", "Apia", -13.83, -171.76),
          ("Côte d'Ivoire", "CI", "Abidjan", "Abidjan", 5.36, -4.01)]
CAMERAS = [("Canon", "Canon EOS R5"), ("NIKON CORPORATION", "NIKON Z 6"), ("Apple", "iPhone 12"),
           (None, None)]
WORDS = ["beach", "Sunset", "été", "dog", "family", "café"]


# ----------------------------------------------------------------------------- parsing

@pytest.mark.parametrize(("spec", "lo", "hi"), [
    ("2019", "2019", "2020"),
    ("2019-06", "2019-06", "2019-07"),
    ("2019-12", "2019-12", "2020-01"),
    ("2019-06-01", "2019-06-01", "2019-06-02"),
    ("2020-02-29", "2020-02-29", "2020-03-01"),
    ("2019-12-31", "2019-12-31", "2020-01-01"),
    ("2019-06-01..2019-08-31", "2019-06-01", "2019-09-01"),
    ("2019-06..2019-08", "2019-06", "2019-09"),
    ("2018..2019-02", "2018", "2019-03"),
    (" 2019-06 .. 2019-06 ", "2019-06", "2019-07"),
    ("9999-12", "9999-12", "9999-13"),
])
def test_taken_specs(spec: str, lo: str, hi: str) -> None:
    assert f.parse_taken(spec) == (lo, hi)


@pytest.mark.parametrize(("spec", "reason"), [
    ("19", "expected YYYY"), ("2019-6", "expected YYYY"), ("2019-13", "no month 13"),
    ("2019-02-30", "no day 2019-02-30"), ("2019-08..2019-06", "2019-08 is after 2019-06"),
    ("2019..2020..2021", "one range at most"), ("last year", "expected YYYY"),
    ("2019-06-01T10:00", "expected YYYY"), ("0000", "no year"), ("2019..", "expected YYYY"),
])
def test_bad_taken_names_the_option(spec: str, reason: str) -> None:
    with pytest.raises(f.FilterError) as caught:
        f.parse(taken=spec)
    assert str(caught.value).startswith(f"--taken {spec}: ") and reason in str(caught.value)
    assert caught.value.as_parameter().startswith(f"taken={spec}: ")


@pytest.mark.parametrize(("spec", "near"), [
    ("48.85,2.35", f.Near(48.85, 2.35, 1.0)),
    (" -33.9 , 151.2 , 2.5 ", f.Near(-33.9, 151.2, 2.5)),
    ("90,180,1", f.Near(90, 180, 1)),
])
def test_near_specs(spec: str, near: f.Near) -> None:
    assert f.parse_near(spec) == near


@pytest.mark.parametrize(("spec", "reason"), [
    ("48.85", "expected LAT,LON"), ("1,2,3,4", "expected LAT,LON"), ("a,b", "numbers"),
    ("91,0", "latitude 91"), ("0,-181", "longitude -181"), ("0,0,0", "more than 0"),
    ("0,0,-1", "more than 0"), ("nan,0", "finite"), ("0,0,inf", "finite"),
])
def test_bad_near_names_the_option(spec: str, reason: str) -> None:
    with pytest.raises(f.FilterError) as caught:
        f.parse(near=spec)
    assert str(caught.value).startswith(f"--near {spec}: ") and reason in str(caught.value)


def test_blank_filters_are_no_filters_and_text_is_checked() -> None:
    assert not f.parse(taken=" ", place="", near=None, camera="  ", keyword=None)
    assert f.parse(place=" Paris ") == f.Filters(place="Paris")
    with pytest.raises(f.FilterError, match="--camera"):
        f.parse(camera="x" * 201)
    with pytest.raises(f.FilterError, match="--place"):
        f.parse(place="\u0301")  # a combining mark alone: nothing to match


def test_fold() -> None:
    assert fold("  Île-de-France ") == "ile-de-france"
    assert fold("MÜNCHEN") == fold("munchen") == "munchen"
    assert fold("Straße") == "strasse"
    assert fold("Côte  d'Ivoire") == "cote d'ivoire"


# ----------------------------------------------------------------------------- a library

def _fields(rng: np.random.Generator, i: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if i % 9:
        day = dt.datetime(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 6 * 365)),
                                                     seconds=int(rng.integers(0, 86400)))
        out["taken_at"] = day.isoformat() + (".250" if i % 4 == 0 else "")
    if i % 7:
        country, code, region, place, lat, lon = PLACES[int(rng.integers(len(PLACES)))]
        out.update(country=country, country_code=code, region=region, place=place,
                   latitude=lat + float(rng.normal(0, 0.05)),
                   longitude=((lon + float(rng.normal(0, 0.05)) + 180) % 360) - 180)
    make, model = CAMERAS[int(rng.integers(len(CAMERAS)))]
    out.update(camera_make=make, camera_model=model)
    if i % 5:
        picked = rng.choice(len(WORDS), size=int(rng.integers(1, 3)), replace=False)
        out["keywords"] = [WORDS[int(k)] for k in picked]
    if i % 50 == 3:
        out["keywords"] = "not json ["
    return out


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[tuple[Path, Any, list[int], np.ndarray]]:
    path = tmp_path / "watcherd.db"
    conn, ids, matrix = library(path, N, DIM, seed=3)
    rng = np.random.default_rng(11)
    for n, image_id in enumerate(ids):
        if n % 13 != 5:  # some photos have no metadata row at all
            put_metadata(conn, image_id, **_fields(rng, n))
    yield path, conn, ids, matrix
    conn.close()  # type: ignore[attr-defined]


def _rows(path: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM metadata")]
    conn.close()
    return rows


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The central angle from unit vectors (a different formula from the product's)."""
    def unit(lat: float, lon: float) -> np.ndarray:
        a, b = math.radians(lat), math.radians(lon)
        return np.array([math.cos(a) * math.cos(b), math.cos(a) * math.sin(b), math.sin(a)])
    u, v = unit(lat1, lon1), unit(lat2, lon2)
    return 6371.0088 * math.atan2(float(np.linalg.norm(np.cross(u, v))), float(u @ v))


def _keywords(r: dict[str, Any]) -> list[str]:
    try:
        words = json.loads(r["keywords"] or "[]")
    except ValueError:
        return []
    return [w for w in words if isinstance(w, str)]


def _days(spec: str) -> tuple[dt.date, dt.date]:
    """The first and the last day of a SPEC, by the calendar."""
    def span(part: str) -> tuple[dt.date, dt.date]:
        nums = [int(x) for x in part.strip().split("-")]
        if len(nums) == 3:
            return dt.date(*nums), dt.date(*nums)
        if len(nums) == 2:
            days = calendar.monthrange(nums[0], nums[1])[1]
            return dt.date(nums[0], nums[1], 1), dt.date(nums[0], nums[1], days)
        return dt.date(nums[0], 1, 1), dt.date(nums[0], 12, 31)
    start, _, end = spec.partition("..")
    return span(start)[0], span(end or start)[1]


def _expected(rows: list[dict[str, Any]], **given: str) -> set[int]:
    """The selection done plainly, row by row."""
    want = f.parse(**given)
    out = set()
    for r in rows:
        ok = True
        if want.taken is not None:
            first, last = _days(given["taken"])
            ok &= r["taken_at"] is not None and first <= dt.date.fromisoformat(
                r["taken_at"][:10]) <= last
        if want.place is not None:
            names = {fold(v) for v in (r["country"], r["region"], r["place"]) if v}
            ok &= fold(want.place) in names or (r["country_code"] or "").lower() == \
                want.place.lower()
        if want.near is not None:
            ok &= r["latitude"] is not None and _km(want.near.lat, want.near.lon, r["latitude"],
                                                    r["longitude"]) <= want.near.km
        if want.camera is not None:
            ok &= any(want.camera.lower() in (v or "").lower()
                      for v in (r["camera_make"], r["camera_model"]))
        if want.keyword is not None:
            ok &= fold(want.keyword) in {fold(w) for w in _keywords(r)}
        if ok:
            out.add(r["image_id"])
    return out


SELECTIONS = [
    {"taken": "2017"}, {"taken": "2019-06"}, {"taken": "2016-02-29"},
    {"taken": "2016-11..2017-02"}, {"taken": "2015-03-05..2015-03-20"},
    {"place": "france"}, {"place": "FR"}, {"place": "fr"}, {"place": "ile-de-france"},
    {"place": "MUNCHEN"}, {"place": "Cote d'Ivoire"}, {"place": "tokyo"}, {"place": "Atlantis"},
    {"near": "48.8566,2.3522,10"}, {"near": "48.8566,2.3522"}, {"near": "-17,178.5,300"},
    {"near": "-14,-172,200"}, {"near": "-15,179.9,800"}, {"near": "-14,-178,800"},
    {"camera": "canon"}, {"camera": "eos r"}, {"camera": "Z 6"}, {"camera": "iphone"},
    {"camera": "100%"},
    {"keyword": "sunset"}, {"keyword": "ETE"}, {"keyword": "cafe"}, {"keyword": "nothing"},
    {"taken": "2016..2018", "place": "France", "camera": "nikon"},
    {"place": "fj", "keyword": "beach", "near": "-17,178.5,400"},
]


@pytest.mark.parametrize("given", SELECTIONS, ids=lambda g: ",".join(f"{k}={v}"
                                                                     for k, v in g.items()))
def test_each_filter_selects_what_plain_python_selects(lib: Any, given: dict[str, str]) -> None:
    path, *_ = lib
    got = filter_sql.matching_ids(vectors.connect_readonly(path), f.parse(**given))
    want = _expected(_rows(path), **given)
    assert set(got.tolist()) == want
    assert got.tolist() == sorted(want)
    if given in ({"place": "france"}, {"taken": "2017"}, {"near": "-17,178.5,300"}):
        assert want  # the library has some, so the check means something
    if given == {"near": "-14,-178,800"}:  # across the antimeridian: both sides
        longitudes = {r["image_id"]: r["longitude"] for r in _rows(path)}
        assert {longitudes[i] > 0 for i in want} == {True, False}


# ----------------------------------------------------------------------------- exactness

def test_a_filtered_search_is_the_top_k_of_the_matching_photos(tmp_path: Path) -> None:
    """The best matches overall are all outside the filter: a global top k filtered afterwards
    would return nothing, the exact answer returns k matching photos."""
    path = tmp_path / "watcherd.db"
    conn, ids, matrix = library(path, 2000, DIM, seed=5)
    q = unit_rows(1, DIM, seed=99)[0]
    order = np.argsort(-(matrix @ q))
    best, rest = order[:200], order[200:]
    for n in best:  # the 200 best: taken in 2001
        put_metadata(conn, ids[n], taken_at="2001-05-05T10:00:00", place="Paris",
                     country_code="FR", country="France")
    for n in rest[::3]:  # every third of the others: 2019, in Nice
        put_metadata(conn, ids[n], taken_at="2019-07-01T10:00:00", place="Nice",
                     country_code="FR", country="France")
    k = 25
    wanted = {ids[n] for n in rest[::3]}
    ref = [r for r in reference(path, MODEL_A, q, 2000) if r[0] in wanted][:k]
    assert not {r[0] for r in reference(path, MODEL_A, q, 100)} & wanted  # post-filter: none
    filters = f.parse(taken="2019", place="nice")
    sources = [ScanSource(vectors.connect_readonly(path), MODEL_A),
               *(SearchIndex(path, MODEL_A, kernel=kernel)
                 for kernel in ("numpy-float32", "auto"))]
    for source in sources:
        rows, scores, considered = source.top(q, k, filters=filters)
        assert [(r.image_id, r.path) for r in rows] == [(i, p) for i, p, _ in ref]
        assert np.allclose(scores, [s for _, _, s in ref], atol=1e-5)
        assert considered == len(wanted)
        # and with a folder on top (AND), and photos excluded
        under = "/photos/f1"
        rows, _, _ = source.top(q, k, filters=filters, under=under, exclude=[ref[0][0]])
        sub = [r for r in reference(path, MODEL_A, q, 2000, under=under)
               if r[0] in wanted and r[0] != ref[0][0]][:k]
        assert [r.image_id for r in rows] == [r[0] for r in sub]
    # a filter that matches nothing: nothing, not an error
    rows, _, considered = sources[1].top(q, k, filters=f.parse(place="Tokyo"))
    assert rows == [] and considered == 0


def test_the_warm_index_follows_metadata_changes(tmp_path: Path) -> None:
    path = tmp_path / "watcherd.db"
    conn, ids, matrix = library(path, 300, DIM, seed=6)
    index = SearchIndex(path, MODEL_A)
    filters = f.parse(keyword="late")
    assert index.top(matrix[7], 5, filters=filters)[0] == []
    put_metadata(conn, ids[7], keywords=["late"])
    rows, _, _ = index.top(matrix[7], 5, filters=filters)
    assert [r.image_id for r in rows] == [ids[7]]
    place = f.parse(place="reykjavik")
    assert index.top(matrix[8], 5, filters=place)[0] == []
    put_metadata(conn, ids[8], country="Iceland", country_code="IS", place="Reykjavík")
    rows, _, _ = index.top(matrix[8], 5, filters=place)
    assert [r.image_id for r in rows] == [ids[8]]


# ----------------------------------------------------------------------------- listing

def _listing_reference(path: Path, want: set[int]) -> list[int]:
    rows = {r["image_id"]: r["taken_at"] for r in _rows(path) if r["image_id"] in want}
    dated = sorted((i for i in rows if rows[i] is not None), key=lambda i: (rows[i], i),
                   reverse=True)
    return dated + sorted((i for i in rows if rows[i] is None), reverse=True)


def _no_model(key: Any) -> Any:
    raise AssertionError("a listing loaded a model")


@pytest.mark.parametrize("given", [{"place": "France"}, {"camera": "canon"},
                                   {"near": "48.8566,2.3522,20"}, {"taken": "2016..2017"}])
@pytest.mark.parametrize("dense", [0, 10**9], ids=["walk-taken-index", "select-and-sort"])
def test_with_no_query_the_matching_photos_newest_taken_first(
        lib: Any, given: dict[str, str], dense: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filter_sql, "DENSE", dense)  # both plans give the same answer
    path, conn, ids, _ = lib
    # deleted photos are never listed
    conn.execute("UPDATE images SET deleted_at = '2024-01-01T00:00:00Z' WHERE id = ?", (ids[1],))
    want = _expected(_rows(path), **given) - {ids[1]}
    ro = vectors.connect_readonly(path)
    for n in (5, 1000):
        results = service.search(ro, Query(n=n, filters=f.parse(**given)), configured=MODEL_A,
                                 source=_no_model, encoder=_no_model, max_pixels=1)
        assert [h.image_id for h in results.hits] == _listing_reference(path, want)[:n]
        assert results.considered == len(want)
        assert all(h.score is None for h in results.hits)
    if "taken" not in given:  # photos without a date are listed too, last
        assert any(r["taken_at"] is None for r in _rows(path) if r["image_id"] in want)


def test_listing_rules() -> None:
    assert Query(filters=f.parse(taken="2019")).listing
    assert not Query(texts=("x",), filters=f.parse(taken="2019")).listing
    assert not Query().listing
    searcher = Searcher(ScanSource(None, MODEL_A), _no_model)  # type: ignore[arg-type]
    with pytest.raises(QueryError, match=r"positive part.*filter"):
        searcher.search(Query())
    with pytest.raises(QueryError, match="only say what to avoid"):
        searcher.search(Query(not_texts=("x",), filters=f.parse(taken="2019")))


def test_a_listing_takes_no_minimum_score(lib: Any) -> None:
    path, *_ = lib
    with pytest.raises(QueryError, match="minimum score needs a query"):
        service.search(vectors.connect_readonly(path),
                       Query(min_score=0.1, filters=f.parse(taken="2019")),
                       configured=MODEL_A, source=_no_model, encoder=_no_model, max_pixels=1)


def test_a_filter_on_photos_without_vectors(tmp_path: Path) -> None:
    """A photo with metadata but no vector yet is listed, and is not ranked by a search."""
    path = tmp_path / "watcherd.db"
    conn, ids, matrix = library(path, 50, DIM, seed=8)
    (late,) = add_photos(conn, ["/photos/f0/late.jpg"])
    for image_id in (*ids[:3], late):
        put_metadata(conn, image_id, keywords=["x"],
                     taken_at=f"2020-01-0{1 + image_id % 9}T00:00:00")
    filters = f.parse(keyword="x")
    listed = service.search(vectors.connect_readonly(path), Query(filters=filters),
                            configured=MODEL_A, source=_no_model, encoder=_no_model,
                            max_pixels=1)
    assert {h.image_id for h in listed.hits} == {*ids[:3], late}
    rows, _, considered = ScanSource(vectors.connect_readonly(path), MODEL_A).top(
        matrix[0], 10, filters=filters)
    assert {r.image_id for r in rows} == set(ids[:3]) and considered == 3
    store_vectors(conn, MODEL_A, [late], unit_rows(1, DIM, 1))
    rows, _, considered = ScanSource(vectors.connect_readonly(path), MODEL_A).top(
        matrix[0], 10, filters=filters)
    assert considered == 4
