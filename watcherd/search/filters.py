"""Metadata filters as a person writes them (``--taken 2019-06``, ``--near 48.85,2.35,5``) into
a frozen :class:`Filters`: pure parsing, no database, standard library only (``watcherd
search`` checks them before it asks a running server). The SQL that selects the matching photos is
:mod:`watcherd.store.filters`; the engine restricts the exact search to them.

* ``taken``: ``2019``, ``2019-06``, ``2019-06-01``, or ``FROM..TO`` of those, inclusive; held
  as a half-open text range ``[lo, hi)`` over ``metadata.taken_at`` (local wall-clock text
  ``YYYY-MM-DDTHH:MM:SS[.fff]``, so text order is time order).
* ``place``: a country, region or place name (case- and accent-insensitive) or an ISO code.
* ``near``: ``LAT,LON[,KM]``, within KM (default 1) of the point, great-circle distance.
* ``camera``: a substring of the make or the model, case-insensitive.
* ``keyword``: one of the photo's keywords (case-insensitive).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass

from watcherd.textfold import fold

__all__ = ["DEFAULT_KM", "FilterError", "Filters", "Near", "parse", "parse_near",
           "parse_taken"]

DEFAULT_KM = 1.0
MAX_KM = 20_038.0  # half the Earth's circumference: everything
_MAX_TEXT = 200
_DAY = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


class FilterError(ValueError):
    """A filter that cannot be read: the option (``taken``), the value given and why; str()
    says it as the command line has it (``--taken 2019-13: no month 13``)."""

    def __init__(self, option: str, value: str, reason: str) -> None:
        self.option, self.value, self.reason = option, value, reason
        super().__init__(f"--{option} {value}: {reason}")

    def as_parameter(self) -> str:
        """The reason as the HTTP API says it (``taken=2019-13: no month 13``)."""
        return f"{self.option}={self.value}: {self.reason}"


@dataclass(frozen=True)
class Near:
    lat: float
    lon: float
    km: float = DEFAULT_KM


@dataclass(frozen=True)
class Filters:
    """What the photos must match (all of it); every field None: no filter."""

    taken: tuple[str, str] | None = None  # taken_at >= [0] and < [1]
    place: str | None = None  # as given (stripped)
    near: Near | None = None
    camera: str | None = None
    keyword: str | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.taken, self.place, self.near, self.camera,
                                           self.keyword))


def _bounds(part: str, spec: str) -> tuple[str, str]:
    """[first, after last) of one date of 1, 2 or 3 fields, as taken_at text."""
    m = _DAY.fullmatch(part)
    if m is None:
        raise FilterError("taken", spec, "expected YYYY, YYYY-MM or YYYY-MM-DD, or FROM..TO "
                          "of those")
    year = int(m[1])
    month = int(m[2]) if m[2] else None
    day = int(m[3]) if m[3] else None
    if not 1 <= year <= 9999:
        raise FilterError("taken", spec, f"no year {m[1]}")
    if month is not None and not 1 <= month <= 12:
        raise FilterError("taken", spec, f"no month {m[2]}")
    if day is not None:
        try:
            first = dt.date(year, month or 1, day)
        except ValueError:
            raise FilterError("taken", spec, f"no day {part}") from None
        after = first + dt.timedelta(days=1) if first < dt.date.max else None
        return part, after.isoformat() if after else "9999-12-32"
    if month is not None:
        after_month = (f"{year + 1:04d}-01" if month == 12 else f"{year:04d}-{month + 1:02d}")
        return part, after_month if year < 9999 or month < 12 else "9999-13"
    return part, f"{year + 1:04d}" if year < 9999 else "9999-13"


def parse_taken(spec: str) -> tuple[str, str]:
    """``2019``, ``2019-06``, ``2019-06-01`` or ``FROM..TO`` (inclusive) -> [lo, hi) text."""
    text = spec.strip()
    if text.count("..") > 1:
        raise FilterError("taken", spec, "one range at most: FROM..TO")
    if ".." in text:
        start, end = (s.strip() for s in text.split(".."))
        lo, hi = _bounds(start, spec)[0], _bounds(end, spec)[1]
        if lo >= hi:
            raise FilterError("taken", spec, f"{start} is after {end}")
        return lo, hi
    return _bounds(text, spec)


def parse_near(spec: str) -> Near:
    """``LAT,LON`` or ``LAT,LON,KM`` (degrees, S/W negative; kilometres)."""
    parts = [s.strip() for s in spec.split(",")]
    if len(parts) not in (2, 3):
        raise FilterError("near", spec, "expected LAT,LON or LAT,LON,KM")
    try:
        values = [float(s) for s in parts]
    except ValueError:
        raise FilterError("near", spec, "LAT, LON and KM are numbers") from None
    if not all(math.isfinite(v) for v in values):
        raise FilterError("near", spec, "LAT, LON and KM are finite numbers")
    lat, lon = values[0], values[1]
    km = values[2] if len(values) == 3 else DEFAULT_KM
    if not -90 <= lat <= 90:
        raise FilterError("near", spec, f"latitude {parts[0]} is not within -90..90")
    if not -180 <= lon <= 180:
        raise FilterError("near", spec, f"longitude {parts[1]} is not within -180..180")
    if not 0 < km <= MAX_KM:
        raise FilterError("near", spec, f"KM must be more than 0 (and at most {MAX_KM:g})")
    return Near(lat, lon, km)


def _text(option: str, value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if len(text) > _MAX_TEXT or "\x00" in text:
        raise FilterError(option, value[:40], f"not a {option} (at most {_MAX_TEXT} characters)")
    if not fold(text):
        raise FilterError(option, value, "nothing to match (only marks or spaces)")
    return text


def parse(*, taken: str | None = None, place: str | None = None, near: str | None = None,
          camera: str | None = None, keyword: str | None = None) -> Filters:
    """The filters as given (None or blank: not filtered on). Raises FilterError."""
    return Filters(
        taken=parse_taken(taken) if taken is not None and taken.strip() else None,
        place=_text("place", place),
        near=parse_near(near) if near is not None and near.strip() else None,
        camera=_text("camera", camera),
        keyword=_text("keyword", keyword))
