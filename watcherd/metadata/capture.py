"""The capture time: the most trusted date found, written as the local wall clock it was
recorded in, with its UTC offset when known or inferable. A time without a zone is never
shifted; an instant (GPS time, an XMP date in Z, the file's mtime) is placed in the GPS
position's zone, else in the given local zone (default: the server's)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from watcherd.metadata import zones
from watcherd.metadata.dates import Stamp


@dataclass(frozen=True)
class Taken:
    at: str | None = None
    offset: str | None = None
    source: str | None = None


def _place_instant(utc: datetime, zone: str | None, local_zone: tzinfo | None,
                   ) -> tuple[datetime, str | None]:
    if zone is None and local_zone is not None:
        local = utc.replace(tzinfo=UTC).astimezone(local_zone)
        return local.replace(tzinfo=None), zones.format_offset(local.utcoffset())
    return zones.local_of_instant(utc, zone)


def _zone(latitude: float | None, longitude: float | None) -> str | None:
    if latitude is None or longitude is None:
        return None
    try:
        return zones.zone_at(latitude, longitude)
    except Exception:  # a lookup failure leaves the zone unknown
        return None


def resolve(stamps: list[tuple[str, Stamp]], latitude: float | None, longitude: float | None,
            mtime: float | None, local_zone: tzinfo | None = None) -> Taken:
    """The first of ``stamps`` (in order of trust), else ``mtime`` (source ``'mtime'``)."""
    if not stamps and mtime is not None and math.isfinite(mtime):
        try:
            when = datetime.fromtimestamp(mtime, UTC).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):
            return Taken()
        stamps = [("mtime", Stamp(when, "+00:00", when.microsecond != 0, instant=True))]
    if not stamps:
        return Taken()
    source, stamp = stamps[0]
    if stamp.instant:
        zone = _zone(latitude, longitude)
        local, offset = _place_instant(stamp.local, zone, local_zone)
        local = local.replace(microsecond=local.microsecond // 1000 * 1000)
        return Taken(Stamp(local, millis=stamp.millis).iso(), offset, source)
    offset = stamp.offset
    if offset is None and not stamp.timeless:  # the zone lookup only when it is needed
        zone = _zone(latitude, longitude)
        offset = zones.offset_at_local(zone, stamp.local) if zone else None
    return Taken(stamp.iso(), offset, source)
