"""Time zones offline: the IANA zone of a GPS position (tzfpy: the timezone-boundary-builder
polygons, simplified; a few hundred metres off near a border; ``Etc/GMT±N`` at sea) and the UTC
offset a zone had at a local or a UTC moment (zoneinfo, with tzdata's database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tzfpy


def zone_at(latitude: float, longitude: float) -> str | None:
    """The IANA zone at a position (tzfpy takes longitude first), None if it knows none."""
    return tzfpy.get_tz(longitude, latitude) or None


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def format_offset(delta: timedelta | None) -> str | None:
    """``timedelta(hours=2)`` → ``'+02:00'``; seconds are dropped (no zone has them now)."""
    if delta is None:
        return None
    minutes = int(delta.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def offset_at_local(zone: str, local: datetime) -> str | None:
    """The offset of ``zone`` at the naive local wall-clock time ``local`` (the first of two at
    a DST fold, the one before the gap in a DST gap), or None for an unknown zone."""
    tz = _zone(zone)
    return None if tz is None else format_offset(local.replace(tzinfo=tz, fold=0).utcoffset())


def local_of_instant(instant: datetime, zone: str | None) -> tuple[datetime, str | None]:
    """An instant (aware, or naive UTC) as the naive wall-clock time in ``zone`` and its
    offset; with no (known) zone, in the server's zone."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    tz = _zone(zone) if zone else None
    local = instant.astimezone(tz) if tz is not None else instant.astimezone()
    return local.replace(tzinfo=None), format_offset(local.utcoffset())
