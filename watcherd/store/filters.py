"""SQL for search's metadata filters: which live photos match a set of filters
(:class:`watcherd.search.filters.Filters`, read here through :class:`Spec`: plain values), and
the matching photos newest ``taken_at`` first.

Everything SQL can decide exactly is one WHERE over ``metadata`` (indexes ``metadata_taken_at``,
``metadata_place``, ``metadata_latitude``, ``metadata_camera``, and the ``metadata_keywords``
table); text that must be matched case- and accent-insensitively (place names, cameras,
keywords) is first resolved in Python against the distinct values stored (SQLite's ``lower()``
knows ASCII only), and then selected by those values. ``near`` is a bounding box in
SQL and the exact great-circle distance in Python.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from watcherd.store.schema import I_FACE_SQL, folder_range
from watcherd.textfold import fold

__all__ = ["EARTH_KM", "Listing", "Spec", "Vocabulary", "km_between", "matching_ids",
           "newest"]

EARTH_KM = 6371.0088  # mean radius


class NearSpec(Protocol):
    @property
    def lat(self) -> float: ...

    @property
    def lon(self) -> float: ...

    @property
    def km(self) -> float: ...


class Spec(Protocol):
    """What the photos must match (None: not filtered on)."""

    @property
    def taken(self) -> tuple[str, str] | None: ...  # taken_at in [lo, hi)

    @property
    def place(self) -> str | None: ...

    @property
    def near(self) -> NearSpec | None: ...

    @property
    def camera(self) -> str | None: ...

    @property
    def keyword(self) -> str | None: ...


@dataclass(frozen=True)
class Listing:
    rows: list[tuple[int, str, str | None]]  # (image id, path, taken_at), newest first
    matching: int  # live photos that match


def km_between(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine, mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


_Where = tuple[list[str], list[object]]


_PlaceRow = tuple[str | None, str | None, str | None, str, str, str]


class Vocabulary:
    """The distinct stored places and keywords, folded: what a place or a keyword filter is
    resolved against. Kept by a long-lived connection's owner (the warm index, the server's
    connections); each part is read when first needed and again only when another connection
    has committed since (``PRAGMA data_version``, free). A one-shot search reads what it needs
    once."""

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._places: list[_PlaceRow] = []
        self._keywords: dict[str, list[str]] = {}  # folded -> values as stored
        self._cameras: list[tuple[str | None, str | None, str, str]] = []

    def _stale(self, conn: sqlite3.Connection, part: str) -> bool:
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        if self._versions.get(part) == version:
            return False
        self._versions[part] = version
        return True

    def places(self, conn: sqlite3.Connection) -> list[_PlaceRow]:
        """(country_code, region, place, and the folded country, region, place) of each
        distinct stored place (from the covering index ``metadata_place``)."""
        if self._stale(conn, "places"):
            country: dict[str | None, str] = {}
            places = []
            for cc, region, place in conn.execute(
                    "SELECT DISTINCT country_code, region, place FROM metadata"):
                if cc not in country:  # one seek per code (country is not in the index)
                    found = conn.execute("SELECT country FROM metadata WHERE country_code IS ? "
                                         "AND country IS NOT NULL LIMIT 1", (cc,)).fetchone()
                    country[cc] = fold(found[0]) if found else ""
                places.append((cc, region, place, country[cc], fold(region or ""),
                               fold(place or "")))
            self._places = places
        return self._places

    def keywords(self, conn: sqlite3.Connection, text: str) -> list[str]:
        """The stored keywords equal to ``text``, folded (``metadata_keywords``' distinct
        keywords: its primary key's prefix)."""
        if self._stale(conn, "keywords"):
            keywords: dict[str, list[str]] = {}
            for (value,) in conn.execute("SELECT DISTINCT keyword FROM metadata_keywords"):
                keywords.setdefault(fold(value), []).append(value)
            self._keywords = keywords
        return self._keywords.get(fold(text), [])

    def cameras(self, conn: sqlite3.Connection, text: str) -> list[tuple[str | None, str | None]]:
        """The stored (make, model) pairs whose make or model holds ``text``, folded (from the
        covering index ``metadata_camera``)."""
        if self._stale(conn, "cameras"):
            self._cameras = [(make, model, fold(make or ""), fold(model or "")) for make, model
                             in conn.execute("SELECT DISTINCT camera_make, camera_model FROM "
                                             "metadata WHERE camera_make IS NOT NULL OR "
                                             "camera_model IS NOT NULL")]
        want = fold(text)
        return [(make, model) for make, model, make_f, model_f in self._cameras
                if want in make_f or want in model_f]


def _place(conn: sqlite3.Connection, text: str, vocabulary: Vocabulary) -> _Where | None:
    """The place terms, resolved against the distinct stored places; None: none matches."""
    want, code = fold(text), text.strip().casefold()
    codes: set[str | None] = set()
    regions: set[tuple[str | None, str | None]] = set()
    places: set[tuple[str | None, str | None, str | None]] = set()
    for cc, region, place, country_f, region_f, place_f in vocabulary.places(conn):
        if (cc is not None and cc.casefold() == code) or country_f == want:
            codes.add(cc)
        elif region_f == want:
            regions.add((cc, region))
        elif place_f == want:
            places.add((cc, region, place))
    terms: list[str] = []
    params: list[object] = []
    for cc in codes:
        terms.append("m.country_code IS ?")
        params.append(cc)
    for cc, region in regions:
        if cc not in codes:
            terms.append("(m.country_code IS ? AND m.region IS ?)")
            params += [cc, region]
    for cc, region, place in places:
        if cc not in codes and (cc, region) not in regions:
            terms.append("(m.country_code IS ? AND m.region IS ? AND m.place IS ?)")
            params += [cc, region, place]
    return (["(" + " OR ".join(terms) + ")"], params) if terms else None


def _keyword(conn: sqlite3.Connection, text: str, vocabulary: Vocabulary) -> _Where | None:
    """Photos with one of their keywords equal to ``text`` (folded); None: none has it."""
    values = vocabulary.keywords(conn, text)
    if not values:
        return None
    marks = ",".join("?" * len(values))
    return ([f"m.image_id IN (SELECT image_id FROM metadata_keywords WHERE keyword IN "
             f"({marks}))"], list(values))


def _camera(conn: sqlite3.Connection, text: str, vocabulary: Vocabulary) -> _Where | None:
    """Photos whose camera make or model holds ``text`` (folded); None: no camera does."""
    pairs = vocabulary.cameras(conn, text.strip())
    if not pairs:
        return None
    terms = " OR ".join("(m.camera_make IS ? AND m.camera_model IS ?)" for _ in pairs)
    return ([f"({terms})"], [v for pair in pairs for v in pair])


def _box(lat: float, lon: float, km: float) -> _Where:
    """A latitude/longitude box holding every point within ``km`` (a little more)."""
    angle = km / EARTH_KM
    dlat = math.degrees(angle) + 1e-9
    terms = ["m.latitude IS NOT NULL", "m.latitude BETWEEN ? AND ?", "m.longitude IS NOT NULL"]
    params: list[object] = [lat - dlat, lat + dlat]
    cos_lat = math.cos(math.radians(lat))
    if lat + dlat >= 90 or lat - dlat <= -90 or math.sin(angle) >= cos_lat:
        return terms, params  # a pole is in reach: every longitude
    dlon = math.degrees(math.asin(math.sin(angle) / cos_lat)) + 1e-9
    lo, hi = lon - dlon, lon + dlon
    if lo < -180 or hi > 180:  # across the antimeridian
        terms.append("(m.longitude >= ? OR m.longitude <= ?)")
        params += [lo + 360, hi] if lo < -180 else [lo, hi - 360]
    else:
        terms.append("m.longitude BETWEEN ? AND ?")
        params += [lo, hi]
    return terms, params


def _where(conn: sqlite3.Connection, spec: Spec, vocabulary: Vocabulary | None
           ) -> _Where | None:
    """The WHERE terms over ``metadata m`` (``near``: its box only); None: nothing matches."""
    vocabulary = vocabulary or Vocabulary()
    terms: list[str] = []
    params: list[object] = []
    if spec.taken is not None:
        terms.append("m.taken_at >= ? AND m.taken_at < ?")
        params += list(spec.taken)
    if spec.near is not None:
        box_terms, box_params = _box(spec.near.lat, spec.near.lon, spec.near.km)
        terms += box_terms
        params += box_params
    for resolve, text in ((_place, spec.place), (_keyword, spec.keyword),
                          (_camera, spec.camera)):
        if text is not None:
            found = resolve(conn, text, vocabulary)
            if found is None:
                return None
            terms += found[0]
            params += found[1]
    return terms, params


def _near(spec: Spec, lat: float | None, lon: float | None) -> bool:
    near = spec.near
    return near is None or (lat is not None and lon is not None
                            and km_between(near.lat, near.lon, lat, lon) <= near.km)


def matching_ids(conn: sqlite3.Connection, spec: Spec, vocabulary: Vocabulary | None = None
                 ) -> np.ndarray:
    """The ids (sorted int64) of the photos whose metadata matches every filter of ``spec``
    (live or not: the caller's search reads live rows only). Run it in the caller's
    transaction for one snapshot; ``vocabulary``: the connection's, kept between queries."""
    where = _where(conn, spec, vocabulary)
    if where is None:
        return np.empty(0, np.int64)
    terms, params = where
    where_sql = " WHERE " + " AND ".join(terms) if terms else ""
    if spec.near is None:  # the ids alone: often from an index without the table
        ids = [r[0] for r in conn.execute(f"SELECT m.image_id FROM metadata m{where_sql}",
                                          params)]
    else:
        ids = [r[0] for r in conn.execute("SELECT m.image_id, m.latitude, m.longitude FROM "
                                          f"metadata m{where_sql}", params)
               if _near(spec, r[1], r[2])]
    return np.sort(np.array(ids, np.int64))


#: Above this many matching photos a listing walks ``metadata_taken_at`` newest first and stops
#: at n (the matches are dense); at or below, it selects them all and sorts them (few).
DENSE = 2000


def _listed(conn: sqlite3.Connection, spec: Spec, terms: list[str], params: list[object],
            order: str, walk: bool) -> Iterator[tuple[int, str, str | None]]:
    sql = ("SELECT m.image_id, i.path, m.taken_at, m.latitude, m.longitude FROM metadata m "
           + ("INDEXED BY metadata_taken_at " if walk else "")
           + "JOIN images i ON i.id = m.image_id WHERE i.deleted_at IS NULL AND "
           + f"{I_FACE_SQL} AND "
           + " AND ".join(terms) + f" ORDER BY {order}")
    for r in conn.execute(sql, params):
        if _near(spec, r[3], r[4]):
            yield int(r[0]), str(r[1]), r[2]


def newest(conn: sqlite3.Connection, spec: Spec, n: int, under: str | None = None,
           vocabulary: Vocabulary | None = None) -> Listing:
    """The first ``n`` live photos that match ``spec`` (below ``under`` if given), newest
    ``taken_at`` first, then by id (highest first); those without ``taken_at`` last, by id
    (highest first). Run it in a transaction for one snapshot."""
    where = _where(conn, spec, vocabulary)
    if where is None:
        return Listing([], 0)
    terms, params = where
    if under is not None:
        terms = [*terms, "i.path >= ? AND i.path < ?"]
        params = [*params, *folder_range(under)]
    matching = 0
    if spec.near is None:
        count_sql = ("SELECT count(*) FROM metadata m JOIN images i ON i.id = m.image_id "
                     f"WHERE i.deleted_at IS NULL AND {I_FACE_SQL}"
                     + "".join(" AND " + t for t in terms))
        matching = int(conn.execute(count_sql, params).fetchone()[0])
    rows: list[tuple[int, str, str | None]] = []
    seen = 0
    for nulls, order in ((False, "m.taken_at DESC, m.image_id DESC"),
                         (True, "m.image_id DESC")):
        more = [*terms, "m.taken_at IS NULL" if nulls else "m.taken_at IS NOT NULL"]
        walk = not nulls and matching > DENSE
        for row in _listed(conn, spec, more, params, order, walk):
            seen += 1
            if len(rows) < n:
                rows.append(row)
            elif spec.near is None:
                break
        if len(rows) >= n and spec.near is None:
            break
    return Listing(rows, matching if spec.near is None else seen)
