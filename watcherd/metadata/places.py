"""Offline reverse geocoding: a GPS position's time zone, country, first-level region and
nearest populated place. No network, ever.

How (docs/metadata.md, "Places"):

1. The zone comes from tzfpy (:func:`watcherd.metadata.zones.zone_at`). ``Etc/*`` (or no zone)
   means at sea: the Place has the zone and nothing else.
2. The country is the zone's, from tzdata's ``zone.tab``: the boundary data keeps one zone per
   country (Europe/Vaduz, Europe/Busingen, Asia/Famagusta...), so nearly every zone maps to
   exactly one (the two that do not: :data:`SHARED_ZONES`). Borders are therefore the
   time-zone polygons' (simplified: a few hundred metres off).
3. The place is looked up among that country's GeoNames places only (so Windsor stays in
   Canada although Detroit is nearer): of the (at most 64) nearest within max(15 km, 1.5 times
   the nearest one's distance), the one that pulls hardest, population / distance² (distances
   under 1.5 km count as 1.5 km). That turns the neighbourhood entries GeoNames has
   (Intendente, Eifuku, Barrio San Luis) into their city, yet keeps a town's own name beside a
   bigger one (Kerkrade, not Heerlen; Manila, not Caloocan). The region is that place's
   GeoNames admin1 name.

The places (watcherd/data/places.tsv.gz, built by tools/build_places.py; GeoNames, CC-BY 4.0)
are loaded once per process, on the first lookup: about 0.4 s, 8 MB of arrays.
"""

from __future__ import annotations

import gzip
import importlib.resources
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from watcherd.metadata.zones import zone_at

EARTH_KM = 6371.0088
RADIUS_KM = 15.0  # places within this (or 1.5 times the nearest's distance)...
NEAREST = 64  # ...at most this many nearest ones, are candidates...
FLOOR_KM = 1.5  # ...and the one with most population / max(distance, this)² names the spot
#: Zones whose polygon covers more than one country: tzfpy's Asia/Bangkok covers northern
#: Vietnam (Hanoi) as well as Thailand, and Europe/Belgrade covers Kosovo, which GeoNames codes
#: XK. There the country whose nearest place is nearest wins (TH and VN share no border;
#: RS/XK is a nearest-town guess). Found by running every GeoNames place through tzfpy and
#: zone.tab (benchmarks/geocoding.py prints the disagreements): the other ones are a few
#: places within a few hundred metres of a border, and the disputed West Bank and Western
#: Sahara.
SHARED_ZONES = {"Asia/Bangkok": ("TH", "VN"), "Europe/Belgrade": ("RS", "XK")}


@dataclass(frozen=True)
class Place:
    zone: str | None  # IANA time zone ('Europe/Lisbon'; 'Etc/GMT+1' at sea), None if unknown
    country: str | None = None  # English name ('Portugal')
    country_code: str | None = None  # ISO 3166-1 alpha-2 ('PT')
    region: str | None = None  # first-level division ('Lisbon')
    place: str | None = None  # nearest populated place ('Lisbon')


def unit_vector(latitude: float, longitude: float) -> npt.NDArray[np.float64]:
    """The point on the unit sphere (so the antimeridian and the poles need no special case)."""
    lat, lon = math.radians(latitude), math.radians(longitude)
    return np.array([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon),
                     math.sin(lat)])


class Places:
    """The GeoNames places in compact arrays, one contiguous run of rows per country.

    ``xyz`` is float64: a float32 dot product cannot tell apart points less than ~2 km apart
    (1 - cos(angle) is below float32's resolution there), and it costs only 1.9 MB more."""

    def __init__(self, data: bytes, zone_tab: str) -> None:
        head, _, body = data.partition(b"\n\n")
        self.countries = dict(line.split("\t", 1) for line in head.decode().splitlines()
                              if line and not line.startswith("#"))
        self.zone_country = {fields[2]: fields[0] for line in zone_tab.splitlines()
                             if not line.startswith("#")
                             and len(fields := line.split("\t")) >= 3}
        columns = _Columns()
        for chunk in _chunks(body):  # a few thousand lines at a time: a small peak
            columns.add(chunk)
        lat, lon = (np.radians(np.concatenate(c)) for c in (columns.lat, columns.lon))
        self.xyz = np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon),
                                    np.sin(lat)])
        self.population = np.concatenate(columns.population)
        self.names = b"".join(columns.names)
        self.ends = np.cumsum(np.concatenate(columns.name_lengths), dtype=np.int64)
        self.region_index = np.concatenate(columns.region_index)
        self.regions = [region.decode() for region in columns.regions]
        self.runs = columns.runs

    def country_code(self, zone: str, latitude: float, longitude: float) -> str | None:
        """The ISO code of the country at a position in ``zone`` (None: no country's zone)."""
        shared = SHARED_ZONES.get(zone)
        if shared is None:
            return self.zone_country.get(zone)
        vector = unit_vector(latitude, longitude)
        return max(shared, key=lambda code: self._closest(code, vector))

    def _closest(self, code: str, vector: npt.NDArray[np.float64]) -> float:
        """The cosine of the angle to the country's nearest place (-2 if it has none)."""
        start, end = self.runs.get(code, (0, 0))
        return float((self.xyz[start:end] @ vector).max()) if end > start else -2.0

    def name(self, row: int) -> str:
        start = int(self.ends[row - 1]) if row else 0
        return self.names[start:int(self.ends[row])].decode()

    def region(self, row: int) -> str | None:
        return self.regions[int(self.region_index[row])] or None

    def nearest(self, country_code: str, latitude: float, longitude: float) -> int | None:
        """The row of the place that names a position in ``country_code``, None if the country
        has no places: of the 64 nearest within max(15 km, 1.5 times the nearest one's
        distance), the one with the most population / distance² (distance at least 1.5 km)."""
        start, end = self.runs.get(country_code, (0, 0))
        if start == end:
            return None
        cos = self.xyz[start:end] @ unit_vector(latitude, longitude)
        first = float(cos.max())
        limit = max(RADIUS_KM / EARTH_KM, 1.5 * math.acos(min(1.0, first)))
        near = np.flatnonzero(cos >= math.cos(min(limit, math.pi)))
        near = near[np.argsort(-cos[near], kind="stable")][:NEAREST]  # nearest first
        km = np.arccos(np.clip(cos[near], -1.0, 1.0)) * EARTH_KM
        pull = self.population[start + near] / np.maximum(km, FLOOR_KM) ** 2
        return start + int(near[int(np.argmax(pull))])  # ties (population 0): the nearest


def _chunks(body: bytes, size: int = 1 << 18) -> Iterator[bytes]:
    """``body`` in pieces of about ``size`` bytes, each ending at the end of a line."""
    start = 0
    while start < len(body):
        end = body.find(b"\n", start + size)
        end = len(body) if end < 0 else end
        if body[start:end].strip():
            yield body[start:end].strip(b"\n")
        start = end + 1


class _Columns:
    """The place lines' columns, parsed a chunk at a time."""

    def __init__(self) -> None:
        self.lat: list[npt.NDArray[np.float64]] = []
        self.lon: list[npt.NDArray[np.float64]] = []
        self.population: list[npt.NDArray[np.int32]] = []
        self.names: list[bytes] = []
        self.name_lengths: list[npt.NDArray[np.int64]] = []
        self.region_index: list[npt.NDArray[np.int32]] = []
        self.regions: dict[bytes, int] = {}
        self.runs: dict[str, tuple[int, int]] = {}
        self.rows = 0

    def add(self, chunk: bytes) -> None:
        flat = chunk.replace(b"\n", b"\t").split(b"\t")
        if len(flat) % 6:
            raise ValueError("places.tsv.gz: a line without exactly 6 fields")
        self.lat.append(np.array(flat[1::6]).astype(np.float64))
        self.lon.append(np.array(flat[2::6]).astype(np.float64))
        self.population.append(np.array(flat[3::6]).astype(np.int32))
        names = flat[4::6]
        self.names.append(b"".join(names))
        self.name_lengths.append(np.fromiter(map(len, names), np.int64, len(names)))
        regions = self.regions
        self.region_index.append(np.fromiter(
            (regions.setdefault(r, len(regions)) for r in flat[5::6]), np.int32, len(names)))
        for row, code in enumerate(flat[0::6], self.rows):
            start, _ = self.runs.get(code.decode(), (row, row))
            self.runs[code.decode()] = (start, row + 1)
        self.rows += len(names)


_lock = threading.Lock()
_places: Places | None = None


def places() -> Places:
    """The process's places table, loaded on first use."""
    global _places
    if _places is None:
        with _lock:
            if _places is None:
                data = importlib.resources.files("watcherd") / "data" / "places.tsv.gz"
                zone_tab = importlib.resources.files("tzdata") / "zoneinfo" / "zone.tab"
                _places = Places(gzip.decompress(data.read_bytes()),
                                 zone_tab.read_text(encoding="utf-8"))
    return _places


def valid(latitude: float, longitude: float) -> bool:
    """A position a camera could have meant: finite, in range, and not exactly (0, 0) (what a
    0/0 GPS rational reads as)."""
    return (math.isfinite(latitude) and math.isfinite(longitude) and -90 <= latitude <= 90
            and -180 <= longitude <= 180 and (latitude, longitude) != (0, 0))


def locate(latitude: float, longitude: float) -> Place | None:
    """Where (latitude, longitude) is; None for a position that is not a valid one."""
    if not valid(latitude, longitude):
        return None
    zone = zone_at(latitude, longitude)
    if zone is None or zone.startswith("Etc/"):
        return Place(zone=zone)
    table = places()
    code = table.country_code(zone, latitude, longitude)
    if code is None:
        return Place(zone=zone)
    country = table.countries.get(code)
    row = table.nearest(code, latitude, longitude)
    if row is None:
        return Place(zone=zone, country=country, country_code=code)
    return Place(zone=zone, country=country, country_code=code, region=table.region(row),
                 place=table.name(row))
