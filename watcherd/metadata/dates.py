"""Dates as photos write them: EXIF ``2024:06:15 14:30:45`` with its sub-seconds (``'123'`` is
.123 s) and offset (``'+02:00'``); XMP ISO 8601 that may stop at the year or the month and may end
in ``Z`` or an offset; GPS date and time (UTC). Zero dates (``0000:00:00 00:00:00``), blanks and
``'    :  '`` offsets are absent (None); anything else that is not a date raises ValueError."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from watcherd.metadata import values

_DATE = re.compile(
    r"(\d{4})(?:[:-](\d{1,2})(?:[:-](\d{1,2})(?:[ T](\d{1,2}):(\d{2})"
    r"(?::(\d{2})(?:[.,](\d+))?)?)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?")
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")
_ABSENT = re.compile(r"[0:\s.\-T+Z]*")  # zeros, separators and blanks only


@dataclass(frozen=True)
class Stamp:
    """A capture time. ``local`` is naive: the wall clock as written, or UTC when ``instant``
    (GPS time, mtime, an XMP date in ``Z``: it is placed in a zone later). ``millis``: the
    sub-seconds are known; ``timeless``: an XMP date without a time of day."""

    local: datetime
    offset: str | None = None
    millis: bool = False
    instant: bool = False
    timeless: bool = False

    def iso(self) -> str:
        base = self.local.strftime("%Y-%m-%dT%H:%M:%S")
        if len(base) != 19:  # strftime pads years below 1000 differently on some libcs
            base = f"{self.local.year:04d}" + base[base.index("-"):]
        return f"{base}.{self.local.microsecond // 1000:03d}" if self.millis else base


def _absent(raw: str | None) -> bool:
    return raw is None or _ABSENT.fullmatch(raw) is not None


def offset(value: object) -> str | None:
    """``'+02:00'`` (also ``'+0200'``) as ``'+02:00'``; None when blank; ValueError when garbage
    or beyond ±14:00."""
    raw = values.text(value)
    if raw is None or not raw.strip(" :"):
        return None
    m = _OFFSET.fullmatch(raw)
    if m is None or int(m[2]) * 60 + int(m[3]) > 14 * 60 or int(m[3]) >= 60:
        raise ValueError(f"offset {raw!r} is not one")
    return f"{m[1]}{m[2]}:{m[3]}"


def _millis(digits: str | None) -> int | None:
    if not digits or not digits.isdigit():
        return None
    return int((digits + "00")[:3])


def _build(m: re.Match[str], subsec: str | None, raw: str) -> Stamp:
    year, month, day, hour, minute, second = (int(g) if g else None for g in m.groups()[:6])
    ms = _millis(m[7]) if m[7] else _millis(subsec)
    try:
        local = datetime(year or 0, month or 1, day or 1, hour or 0, minute or 0, second or 0,
                         (ms or 0) * 1000)
    except ValueError:
        raise ValueError(f"{raw!r} is not a date") from None
    zone = m[8]
    if zone == "Z":
        return Stamp(local, "+00:00", ms is not None, instant=True)
    return Stamp(local, offset(zone) if zone else None, ms is not None, timeless=hour is None)


def exif(value: object, subsec: object = None, zone: object = None) -> Stamp | None:
    """An EXIF date and time with its sub-seconds and offset tags; None when absent."""
    raw = values.text(value)
    if _absent(raw) or raw is None:
        return None
    m = _DATE.fullmatch(raw)
    if m is None or m[6] is None:
        raise ValueError(f"{raw!r} is not a date")
    stamp = _build(m, values.text(subsec), raw)
    if stamp.offset is None:
        # a bad offset tag does not make the date wrong: the offset is only unknown
        with contextlib.suppress(ValueError):
            stamp = Stamp(stamp.local, offset(zone), stamp.millis)
    return stamp


def xmp(value: object) -> Stamp | None:
    """An XMP date (``2024``, ``2024-06``, ``2024-06-15``, ``2024-06-15T14:30``, with seconds,
    fractions, ``Z`` or an offset); None when absent."""
    raw = values.text(value)
    if _absent(raw) or raw is None:
        return None
    m = _DATE.fullmatch(raw)
    if m is None:
        raise ValueError(f"{raw!r} is not a date")
    return _build(m, None, raw)


def gps(datestamp: object, timestamp: object) -> Stamp | None:
    """GPSDateStamp (``'2024:06:15'``) and GPSTimeStamp (three rationals) as a UTC instant."""
    raw = values.text(datestamp)
    if _absent(raw) or raw is None or not isinstance(timestamp, tuple) or len(timestamp) != 3:
        return None
    m = re.fullmatch(r"(\d{4})[:-](\d{2})[:-](\d{2})", raw)
    parts = [values.number(v) for v in timestamp]
    if m is None or None in parts:
        raise ValueError(f"GPS date/time {raw!r} {timestamp!r} is not one")
    h, mi, s = (float(p) for p in parts if p is not None)
    try:
        day = datetime(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise ValueError(f"GPS date {raw!r} is not a date") from None
    if not (0 <= h < 24 and 0 <= mi < 60 and 0 <= s < 61):
        raise ValueError(f"GPS time {h}:{mi}:{s} is not a time")
    seconds = round((h * 3600 + mi * 60 + s) * 1000) / 1000
    local = day + timedelta(seconds=seconds)
    return Stamp(local, "+00:00", millis=seconds != int(seconds), instant=True)
