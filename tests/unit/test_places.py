"""Offline reverse geocoding (watcherd.metadata.places) on the real vendored data and tzfpy:
known towns, border pairs, islands across the antimeridian, the Arctic, the sea, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from watcherd.metadata import places
from watcherd.metadata.places import Place, locate

# name, lat, lon, country code, region (None: none), place (None: any)
KNOWN = [
    ("Lisbon", 38.7223, -9.1393, "PT", "Lisbon", "Lisbon"),
    ("Porto", 41.1496, -8.6110, "PT", "Porto", "Porto"),
    # Valença and Tui face each other across the Minho, 2 km apart. GeoNames spells the
    # populated Valença entry "Valenza".
    ("Valença", 42.0282, -8.6442, "PT", "Viana do Castelo", "Valenza"),
    ("Tui", 42.0475, -8.6447, "ES", "Galicia", "Tui"),
    ("Strasbourg", 48.5734, 7.7521, "FR", "Grand Est", "Strasbourg"),
    ("Kehl", 48.5722, 7.8158, "DE", "Baden-Wurttemberg", "Kehl"),
    ("Geneva", 46.2044, 6.1432, "CH", "Geneva", "Genève"),
    ("Basel", 47.5596, 7.5886, "CH", "Basel-City", "Basel"),
    ("El Paso", 31.7619, -106.4850, "US", "Texas", "El Paso"),
    ("Ciudad Juárez", 31.6904, -106.4245, "MX", "Chihuahua", "Ciudad Juárez"),
    ("Detroit", 42.3314, -83.0458, "US", "Michigan", "Detroit"),
    # Detroit's centre is nearer than Windsor's own: a plain nearest-city lookup says US.
    ("Windsor", 42.3149, -83.0364, "CA", "Ontario", "Windsor"),
    ("Tijuana", 32.5149, -117.0382, "MX", "Baja California", "Tijuana"),
    ("San Diego", 32.7157, -117.1611, "US", "California", "San Diego"),
    ("Nicosia", 35.1856, 33.3823, "CY", "Nicosia", "Nicosia"),
    ("Singapore", 1.2897, 103.8501, "SG", None, "Singapore"),
    ("Reykjavik", 64.1466, -21.9426, "IS", "Capital Region", "Reykjavík"),
    ("Honolulu", 21.3069, -157.8583, "US", "Hawaii", "Honolulu"),
    ("Ushuaia", -54.8019, -68.3030, "AR", "Tierra del Fuego", "Ushuaia"),
    ("Cape Town", -33.9249, 18.4241, "ZA", "Western Cape", "Cape Town"),
    ("Tokyo", 35.6762, 139.6503, "JP", "Tokyo", "Tokyo"),
    ("Auckland", -36.8485, 174.7633, "NZ", "Auckland", "Auckland"),
    ("Longyearbyen", 78.2232, 15.6267, "SJ", "Svalbard", "Longyearbyen"),
    # tzfpy gives northern Vietnam Asia/Bangkok (zone.tab: TH) and Kosovo Europe/Belgrade (RS)
    ("Hanoi", 21.0278, 105.8342, "VN", "Hanoi", "Hanoi"),
    ("Bangkok", 13.7563, 100.5018, "TH", "Bangkok", "Bangkok"),
    ("Pristina", 42.6629, 21.1655, "XK", "Pristina", "Pristina"),
    ("Belgrade", 44.7866, 20.4489, "RS", "Central Serbia", "Belgrade"),
]


@pytest.mark.parametrize(("name", "lat", "lon", "cc", "region", "place"), KNOWN,
                         ids=[k[0] for k in KNOWN])
def test_known_places(name: str, lat: float, lon: float, cc: str, region: str | None,
                      place: str | None) -> None:
    got = locate(lat, lon)
    assert got is not None and got.zone is not None
    assert got.country_code == cc, got
    assert got.country == places.places().countries[cc]
    assert got.region == region, got
    if place is not None:
        assert got.place == place, got


def test_country_names_are_common_english() -> None:
    assert locate(38.7223, -9.1393) == Place("Europe/Lisbon", "Portugal", "PT", "Lisbon",
                                             "Lisbon")
    seoul, london = locate(37.5665, 126.9780), locate(51.5074, -0.1278)
    assert seoul is not None and seoul.country == "South Korea"
    assert london is not None and london.country == "United Kingdom"


def test_taveuni_either_side_of_the_antimeridian() -> None:
    """Taveuni (Fiji) straddles 180°: both halves are Fiji's Northern division, and on both
    sides the place is the same (the sphere has no seam; GeoNames has no Taveuni village of
    1,000 people, so it is Labasa across the strait)."""
    east, west = locate(-16.85, 179.97), locate(-16.80, -179.93)
    assert east is not None and west is not None
    assert (east.country_code, east.region) == (west.country_code, west.region) == (
        "FJ", "Northern")
    assert east.zone == west.zone == "Pacific/Fiji"
    assert east.place == west.place


def test_nearest_is_exact_across_the_antimeridian_and_at_the_poles() -> None:
    table = places.places()
    a, b = places.unit_vector(-16.8, 179.999), places.unit_vector(-16.8, -179.999)
    assert math.degrees(math.acos(float(a @ b))) < 0.002
    assert np.allclose(places.unit_vector(90, 0), places.unit_vector(90, 123))
    row = table.nearest("FJ", -16.80, -179.93)
    assert row is not None and table.region(row) == "Northern"


def test_sea_has_a_zone_and_no_country() -> None:
    assert locate(38.7, -10.5) == Place(zone="Etc/GMT+1")  # 40 km off Cabo da Roca
    assert locate(90.0, 0.0) == Place(zone="Etc/GMT")  # the North Pole is sea ice
    assert locate(-30.0, -30.0) == Place(zone="Etc/GMT+2")


def test_the_south_pole_is_antarctica() -> None:
    pole = locate(-90.0, 0.0)
    assert pole is not None and pole.country_code == "AQ" and pole.country == "Antarctica"


@pytest.mark.parametrize(("lat", "lon"), [
    (0.0, 0.0), (math.nan, 10.0), (10.0, math.nan), (math.inf, 0.0), (0.0, -math.inf),
    (91.0, 0.0), (-90.0001, 0.0), (0.0, 180.5), (0.0, -181.0)])
def test_invalid_positions_are_none(lat: float, lon: float) -> None:
    assert locate(lat, lon) is None


def test_edges_of_the_range_are_valid() -> None:
    assert locate(0.0, 180.0) is not None and locate(0.0, -180.0) is not None
    assert locate(0.0, 0.0001) is not None  # only exactly (0, 0) is "no fix"


def test_loaded_once() -> None:
    assert places.places() is places.places()
    table = places.places()
    assert len(table.population) > 150_000
    assert table.xyz.dtype == np.float64 and table.xyz.shape == (len(table.population), 3)
    assert np.allclose(np.linalg.norm(table.xyz, axis=1), 1.0)
    start, end = table.runs["PT"]
    assert {table.name(r) for r in range(start, end)} >= {"Lisbon", "Porto", "Valenza"}


def test_most_populous_place_nearby_beats_a_neighbourhood_entry() -> None:
    """GeoNames has populated neighbourhoods (Intendente in Lisbon, Eifuku in Tokyo): the
    city a few km away wins over the entry that is nearest."""
    table = places.places()
    start, end = table.runs["PT"]
    xyz = table.xyz[start:end]
    nearest = start + int(np.argmax(xyz @ places.unit_vector(38.7223, -9.1393)))
    assert table.name(nearest) != "Lisbon"
    assert table.name(table.nearest("PT", 38.7223, -9.1393) or 0) == "Lisbon"


@pytest.mark.parametrize(("lat", "lon", "cc", "place"), [
    (50.8659, 6.0709, "NL", "Kerkrade"),  # Heerlen (twice its size) is 6 km away
    (43.4832, -1.5586, "FR", "Biarritz"),  # Bayonne, 7 km
    (14.5995, 120.9842, "PH", "Manila"),  # Caloocan City, 5.6 km, a little more populous
    (4.7110, -74.0721, "CO", "Bogotá"),  # 11 km from Bogotá's point; Barrio San Luis is at 7
])
def test_a_town_keeps_its_name_beside_a_bigger_one(lat: float, lon: float, cc: str,
                                                    place: str) -> None:
    got = locate(lat, lon)
    assert got is not None and (got.country_code, got.place) == (cc, place)
