"""EXIF as Pillow parses it (IFD0, the Exif IFD, the GPS IFD) into a :class:`Found`: capture
times, position, camera and ImageDescription. Each part is read on its own, so a damaged one
(a bad IFD offset, a zero denominator) costs only its own fields, with a note."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from PIL import Image

from watcherd.metadata import dates, values
from watcherd.metadata.found import Found

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
MAKE, MODEL, DESCRIPTION = 0x010F, 0x0110, 0x010E
DATE_ORIGINAL, DATE_DIGITIZED = 0x9003, 0x9004
SUBSEC_ORIGINAL, SUBSEC_DIGITIZED = 0x9291, 0x9292
OFFSET_ORIGINAL, OFFSET_DIGITIZED = 0x9011, 0x9012
LENS_MODEL, FOCAL_LENGTH, F_NUMBER, EXPOSURE_TIME, ISO = 0xA434, 0x920A, 0x829D, 0x829A, 0x8827


def guarded(notes: list[str], what: str, read: Callable[[], None]) -> None:
    """Run one part of a reading; anything it raises becomes a note."""
    try:
        read()
    except (ValueError, ArithmeticError) as e:
        notes.append(f"{what}: {e}")
    except Exception as e:  # a hostile file must not stop the others
        notes.append(f"{what} unreadable ({type(e).__name__}: {e})")


def read(exif: Image.Exif, found: Found, notes: list[str]) -> None:
    """Everything the EXIF block says, into ``found``."""
    ifd0: Mapping[int, Any] = exif
    sub: dict[int, Any] = {}
    gps: dict[int, Any] = {}

    def load_sub() -> None:
        sub.update(exif.get_ifd(EXIF_IFD) if EXIF_IFD in exif else {})

    def load_gps() -> None:
        gps.update(exif.get_ifd(GPS_IFD) if GPS_IFD in exif else {})

    guarded(notes, "EXIF IFD", load_sub)
    guarded(notes, "GPS IFD", load_gps)
    guarded(notes, "EXIF dates", lambda: _dates(ifd0, sub, found, notes))
    guarded(notes, "EXIF camera", lambda: _camera(ifd0, sub, found))
    guarded(notes, "GPS position", lambda: position(gps, found, notes))
    guarded(notes, "GPS time", lambda: _gps_time(gps, found))
    desc = values.text(ifd0.get(DESCRIPTION))
    if desc:
        found.descriptions.append(desc)


def _dates(ifd0: Mapping[int, Any], sub: dict[int, Any], found: Found,
           notes: list[str]) -> None:
    for name, tag, subsec, zone in (
            ("DateTimeOriginal", DATE_ORIGINAL, SUBSEC_ORIGINAL, OFFSET_ORIGINAL),
            ("CreateDate", DATE_DIGITIZED, SUBSEC_DIGITIZED, OFFSET_DIGITIZED)):
        raw = sub.get(tag, ifd0.get(tag))
        try:
            stamp = dates.exif(raw, sub.get(subsec), sub.get(zone))
        except ValueError as e:
            notes.append(f"{name} {e}")
            continue
        if stamp is not None:
            found.stamps.append((name, stamp))


def _camera(ifd0: Mapping[int, Any], sub: dict[int, Any], found: Found) -> None:
    found.camera_make = values.text(ifd0.get(MAKE))
    found.camera_model = values.text(ifd0.get(MODEL))
    found.lens = values.text(sub.get(LENS_MODEL))
    found.focal_length = values.positive(sub.get(FOCAL_LENGTH))
    found.f_number = values.positive(sub.get(F_NUMBER))
    found.exposure_time = values.positive(sub.get(EXPOSURE_TIME))
    iso = sub.get(ISO)
    found.iso = values.integer(iso[0] if isinstance(iso, tuple) and iso else iso, 1, 10**7)


def _coordinate(value: Any) -> float:
    """Degrees from (deg, min, sec) rationals or one number; NaN when unreadable."""
    parts = value if isinstance(value, tuple) else (value,)
    if not 1 <= len(parts) <= 3:
        return math.nan
    total = 0.0
    for part, scale in zip(parts, (1, 60, 3600), strict=False):
        number = values.number(part)
        if number is None:
            return math.nan
        total += abs(number) / scale
    return total


def signed(degrees: float, ref: Any, negative: str) -> float:
    """``abs(degrees)`` made negative when the ref says S or W (a value already negative plus
    a ref is not negated twice)."""
    side = (values.text(ref) or "").upper()[:1]
    return -abs(degrees) if side == negative else abs(degrees)


def settle(found: Found, lat: float, lon: float, alt: float | None, notes: list[str]) -> None:
    """Keep a position only when it is a real one: not NaN, within range, not exactly 0,0."""
    if math.isnan(lat) or math.isnan(lon):
        notes.append("GPS position unreadable (zero denominator or bad value)")
        return
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        notes.append(f"GPS position {lat:.6g},{lon:.6g} out of range")
        return
    if lat == 0 and lon == 0:
        return
    lat, lon = round(lat, 7), round(lon, 7)  # ~1 cm; drops float noise from (d, m, s) sums
    found.latitude, found.longitude, found.altitude = lat, lon, alt


def position(gps: dict[int, Any], found: Found, notes: list[str]) -> None:
    if 2 not in gps or 4 not in gps:
        return
    lat = signed(_coordinate(gps[2]), gps.get(1), "S")
    lon = signed(_coordinate(gps[4]), gps.get(3), "W")
    alt = values.number(gps.get(6))
    if alt is not None:
        ref = gps.get(5)
        below = ref in (1, b"\x01", (1,)) or values.number(ref) == 1
        alt = -abs(alt) if below else abs(alt)
    settle(found, lat, lon, alt, notes)


def _gps_time(gps: dict[int, Any], found: Found) -> None:
    stamp = dates.gps(gps.get(29), gps.get(7))
    if stamp is not None:
        found.gps_stamp = ("GPSDateTime", stamp)
