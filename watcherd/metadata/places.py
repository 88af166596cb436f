"""Offline reverse geocoding: a GPS position's time zone, country, first-level region and
nearest populated place. No network, ever.

(Interface stub: the implementation lands with the places table.)"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    zone: str | None  # IANA time zone ('Europe/Lisbon'; 'Etc/GMT+1' at sea), None if unknown
    country: str | None = None  # English name ('Portugal')
    country_code: str | None = None  # ISO 3166-1 alpha-2 ('PT')
    region: str | None = None  # first-level division ('Lisbon')
    place: str | None = None  # nearest populated place ('Lisbon')


def locate(latitude: float, longitude: float) -> Place | None:
    """Where (latitude, longitude) is; None for a position that is not a valid one."""
    raise NotImplementedError
