"""Offline reverse geocoding (watcherd.metadata.places): what it costs and how often it is right,
on the known positions in benchmarks/geocoding_points.tsv (capitals, border towns, coasts,
islands, open sea; hand-written coordinates and expectations).

    .venv/bin/python benchmarks/geocoding.py [--points FILE] [--rounds 20]

Prints, in one fresh process: the time and memory (RSS growth) of tzfpy's first lookup and of
loading the places table; the per-photo cost of locate() (p50/p99 µs over every point, --rounds
times, and the zone lookup alone); then, per kind, how many points got the right country,
region and place (of those with an expectation), and every miss; and how many of all GeoNames'
155k places get their own country back, and how often a random GeoNames town looked up 1 km
off its point is named after itself. Names are compared without
case or accents ("Reykjavik" = "Reykjavík"). Run it alone: the machine's load shows in the
figures.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402  (before the RSS baseline: every worker has it loaded)

from watcherd.metadata import places, zones  # noqa: E402


@dataclass(frozen=True)
class Point:
    name: str
    lat: float
    lon: float
    cc: str
    region: str
    place: str
    kind: str


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def read_points(path: Path) -> list[Point]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = csv.DictReader((line for line in f if not line.startswith("#")), delimiter="\t")
        return [Point(r["name"], float(r["lat"]), float(r["lon"]), r["cc"], r["region"],
                      r["place"], r["kind"]) for r in rows]


def fold(text: str | None) -> str:
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def load_costs() -> None:
    base = rss_mb()
    t = time.perf_counter()
    zones.zone_at(38.7223, -9.1393)
    zone_s, zone_mb = time.perf_counter() - t, rss_mb() - base
    base = rss_mb()
    t = time.perf_counter()
    table = places.places()
    load_s, load_mb = time.perf_counter() - t, rss_mb() - base
    arrays = sum(a.nbytes for a in (table.xyz, table.population, table.ends, table.region_index))
    print(f"tzfpy first lookup: {zone_s * 1000:.0f} ms, RSS +{zone_mb:.1f} MB")
    print(f"places table load:  {load_s * 1000:.0f} ms, RSS +{load_mb:.1f} MB "
          f"({len(table.population)} places; arrays {arrays / 2**20:.1f} MB, names "
          f"{len(table.names) / 2**20:.1f} MB, {len(table.regions)} regions)")


def percentiles(label: str, micros: list[float]) -> None:
    q = np.percentile(micros, [50, 99])
    print(f"{label:26} p50 {q[0]:6.1f} µs   p99 {q[1]:6.1f} µs   mean "
          f"{statistics.fmean(micros):6.1f} µs")


def lookup_costs(points: list[Point], rounds: int) -> None:
    whole: list[float] = []
    zone: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for p in points:
            t = clock()
            places.locate(p.lat, p.lon)
            whole.append((clock() - t) / 1000)
            t = clock()
            zones.zone_at(p.lat, p.lon)
            zone.append((clock() - t) / 1000)
    print(f"lookups: {len(points)} points x {rounds} rounds")
    percentiles("locate() (per photo)", whole)
    percentiles("zone_at() alone (tzfpy)", zone)


def accuracy(points: list[Point]) -> None:
    score: dict[str, list[int]] = defaultdict(lambda: [0] * 6)  # n, cc, n_region, ..., place
    misses: list[str] = []
    for p in points:
        got = places.locate(p.lat, p.lon)
        got_cc = got.country_code if got else None
        s = score[p.kind]
        s[0] += 1
        s[1] += (got_cc or "") == p.cc
        shown = (f"{got_cc} / {got.region} / {got.place} ({got.zone})" if got else "None")
        if (got_cc or "") != p.cc:
            misses.append(f"  country  {p.kind:7} {p.name:24} want {p.cc or 'sea':3} got {shown}")
        for i, want, have in ((2, p.region, got and got.region),
                              (4, p.place, got and got.place)):
            if want:
                s[i] += 1
                s[i + 1] += fold(want) == fold(have or "")
                if fold(want) != fold(have or ""):
                    what = "region" if i == 2 else "place"
                    misses.append(f"  {what:8} {p.kind:7} {p.name:24} want {want!r:26} "
                                  f"got {shown}")
    print(f"\n{'kind':8} {'points':>6} {'country':>12} {'region':>12} {'place':>12}")
    total = [0] * 6
    for kind in sorted(score):
        s = score[kind]
        total = [a + b for a, b in zip(total, s, strict=True)]
        print(f"{kind:8} {s[0]:6} {s[1]:8}/{s[0]:<3} {s[3]:8}/{s[2]:<3} {s[5]:8}/{s[4]:<3}")
    print(f"{'all':8} {total[0]:6} {total[1]:8}/{total[0]:<3} {total[3]:8}/{total[2]:<3} "
          f"{total[5]:8}/{total[4]:<3}")
    print("\nmisses:" if misses else "\nno misses")
    print("\n".join(sorted(misses)))


def geonames_agreement() -> None:
    """Every GeoNames place through locate(): how often the country is the place's own (the
    disagreements are places at borders, zones shared by countries, disputed areas)."""
    table = places.places()
    lat = np.degrees(np.arcsin(np.clip(table.xyz[:, 2], -1, 1)))
    lon = np.degrees(np.arctan2(table.xyz[:, 1], table.xyz[:, 0]))
    wrong: dict[tuple[str, str], int] = defaultdict(int)
    for code, (start, end) in table.runs.items():
        for row in range(start, end):
            got = places.locate(float(lat[row]), float(lon[row]))
            got_cc = (got.country_code if got else None) or "sea"
            if got_cc != code:
                wrong[(code, got_cc)] += 1
    n, bad = len(lat), sum(wrong.values())
    print(f"\nall {n} GeoNames places: country = GeoNames' own for {n - bad} "
          f"({100 * (n - bad) / n:.2f} %); disagreements (GeoNames -> got: count):")
    top = sorted(wrong.items(), key=lambda kv: -kv[1])
    print("  " + ", ".join(f"{a}->{b}: {c}" for (a, b), c in top[:25]))


def town_check(per_band: int = 1500) -> None:
    """Random GeoNames places, each looked up 1 km from its own point in a random direction:
    how often locate() names the place itself (a photo taken in a town, named after a bigger
    neighbour or a neighbourhood entry, counts as a miss; about the place rule only)."""
    table = places.places()
    rng = np.random.default_rng(7)
    lat = np.degrees(np.arcsin(np.clip(table.xyz[:, 2], -1, 1)))
    lon = np.degrees(np.arctan2(table.xyz[:, 1], table.xyz[:, 0]))
    print(f"\n{per_band} random GeoNames places per band, looked up 1 km off their point:")
    for low, high in ((100_000, 10**9), (20_000, 100_000), (1_000, 20_000)):
        rows = np.flatnonzero((table.population >= low) & (table.population < high))
        ok = 0
        for row in rng.choice(rows, min(per_band, len(rows)), replace=False):
            bearing, step = rng.uniform(0, 2 * np.pi), 1.0 / 111.2
            got = places.locate(float(lat[row] + step * np.cos(bearing)), float(
                lon[row] + step * np.sin(bearing) / max(0.05, np.cos(np.radians(lat[row])))))
            ok += got is not None and got.place == table.name(int(row))
        n = min(per_band, len(rows))
        print(f"  population {low:>7}-{min(high, 99_999_999):<8}: names the place itself "
              f"{ok}/{n} ({100 * ok / n:.0f} %)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=Path, default=ROOT / "benchmarks" / "geocoding_points.tsv")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--no-geonames", action="store_true",
                    help="skip the checks on GeoNames' own places (15 s or so)")
    args = ap.parse_args()
    points = read_points(args.points)
    load_costs()
    lookup_costs(points, args.rounds)
    accuracy(points)
    if not args.no_geonames:
        geonames_agreement()
        town_check()


if __name__ == "__main__":
    main()
