"""What one source says (the file's EXIF, IPTC and XMP, or an XMP sidecar) before the sources
are merged: the sidecar wins field by field."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from watcherd.metadata.dates import Stamp


@dataclass
class Found:
    """``stamps``: capture times in this source's order of trust, named as ``taken_source``;
    ``gps_stamp`` the GPS time (trusted after every other date); ``descriptions`` in order of
    trust, placeholders not yet removed."""

    stamps: list[tuple[str, Stamp]] = field(default_factory=list)
    gps_stamp: tuple[str, Stamp] | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    focal_length: float | None = None
    f_number: float | None = None
    exposure_time: float | None = None
    iso: int | None = None
    rating: int | None = None
    title: str | None = None
    descriptions: list[str] = field(default_factory=list)
    keywords: tuple[str, ...] = ()

    def fill(self, other: Found) -> None:
        """Take from ``other`` every plain field this one lacks (a less trusted source)."""
        for f in fields(self):
            if f.name in _SCALARS and getattr(self, f.name) is None:
                setattr(self, f.name, getattr(other, f.name))


_SCALARS = frozenset({
    "camera_make", "camera_model", "lens", "focal_length", "f_number", "exposure_time", "iso",
    "rating", "title"})


def merge(file: Found, sidecar: Found | None) -> tuple[Found, list[tuple[str, Stamp]]]:
    """The sidecar's fields over the file's, and every capture time in the order tried: the
    sidecar's dates, the file's, then the GPS times (sidecar first)."""
    if sidecar is None:
        gps = [file.gps_stamp] if file.gps_stamp else []
        return file, file.stamps + gps
    out = Found(**{f.name: getattr(sidecar, f.name) for f in fields(sidecar)})
    out.fill(file)
    if out.latitude is None:
        out.latitude, out.longitude, out.altitude = file.latitude, file.longitude, file.altitude
    out.descriptions = sidecar.descriptions + file.descriptions
    out.keywords = sidecar.keywords or file.keywords
    gps = [s for s in (sidecar.gps_stamp, file.gps_stamp) if s]
    return out, sidecar.stamps + file.stamps + gps


def combine(exif: Found, xmp: Found, caption: str | None, keywords: tuple[str, ...]) -> Found:
    """One file's sources as one: EXIF first for camera and position (XMP fills the gaps),
    dates EXIF then XMP, descriptions XMP then IPTC then EXIF, keywords XMP then IPTC."""
    out = exif
    out.fill(xmp)
    out.stamps = exif.stamps + xmp.stamps
    out.gps_stamp = exif.gps_stamp or xmp.gps_stamp
    if out.latitude is None:
        out.latitude, out.longitude, out.altitude = xmp.latitude, xmp.longitude, xmp.altitude
    out.descriptions = xmp.descriptions + ([caption] if caption else []) + exif.descriptions
    seen = dict.fromkeys(xmp.keywords + keywords)
    out.keywords = tuple(seen)
    return out
