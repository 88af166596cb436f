"""Reading a photo's metadata from its bytes (headers only: no pixel is decoded). A video's is
read from its container's tags (:mod:`watcherd.metadata.video`) and assembled the same way."""

from __future__ import annotations

import warnings
from datetime import tzinfo

from watcherd.metadata import (
    capture,
    containers,
    describe,
    exif,
    iptc,
    motion,
    places,
    reading,
    xmp,
)
from watcherd.metadata.fields import Metadata
from watcherd.metadata.found import Found, combine, merge
from watcherd.metadata.sidecar import MAX_SIDECAR_BYTES

MAX_ERROR = 500  # characters of Metadata.error
MAX_WARNINGS = 2  # of Pillow's, about one EXIF block


def extract(data: bytes, *, mtime: float | None, sidecar: bytes | None = None,
            local_zone: tzinfo | None = None) -> Metadata:
    """Everything ``data`` (a whole image file) and its XMP ``sidecar`` say; never raises for
    anything wrong with the bytes (``Metadata.error`` says what could not be read). ``mtime``
    (the file's, epoch seconds) is the capture time's last resort; instants become local time
    in the GPS position's zone, else ``local_zone`` (default: the server's)."""
    notes: list[str] = []
    try:
        own = read_file(data, notes)
    except Exception as e:  # the sections guard themselves; this is the last net
        notes.append(f"unreadable ({type(e).__name__}: {e})")
        own = Found()
    codec = fps = None
    if reading.kind(data) == "JPEG":  # an Android motion photo: a JPEG with its clip appended
        try:
            codec, fps = motion.read(data, notes)
        except Exception as e:
            notes.append(f"motion photo unreadable ({type(e).__name__}: {e})")
    return assemble(own, notes, sidecar=sidecar, mtime=mtime, local_zone=local_zone,
                    video_codec=codec, fps=fps)


def assemble(own: Found, notes: list[str], *, sidecar: bytes | None, mtime: float | None,
             local_zone: tzinfo | None, video_codec: str | None = None,
             fps: float | None = None) -> Metadata:
    """The Metadata of what a file says (``own``) and its sidecar says (it wins field by
    field), the capture time resolved, the place looked up; ``notes`` become its error."""
    side = read_sidecar(sidecar, notes) if sidecar is not None else None
    found, stamps = merge(own, side)
    try:
        taken = capture.resolve(stamps, found.latitude, found.longitude, mtime, local_zone)
    except Exception as e:
        notes.append(f"capture time unreadable ({type(e).__name__})")
        taken = capture.Taken()
    where = _place(found.latitude, found.longitude)
    return Metadata(
        taken_at=taken.at, taken_offset=taken.offset, taken_source=taken.source,
        latitude=found.latitude, longitude=found.longitude, altitude=found.altitude,
        country=where.country, country_code=where.country_code, region=where.region,
        place=where.place,
        camera_make=found.camera_make, camera_model=found.camera_model, lens=found.lens,
        focal_length=found.focal_length, f_number=found.f_number,
        exposure_time=found.exposure_time, iso=found.iso,
        rating=found.rating, title=found.title,
        description=describe.first_real(found.descriptions, found.camera_make,
                                        found.camera_model),
        keywords=found.keywords,
        video_codec=video_codec, fps=fps,
        error=_error(notes))


def read_file(data: bytes, notes: list[str]) -> Found:
    """What the file's own EXIF, XMP and IPTC say, combined. Pillow's warnings about damaged
    EXIF ("Corrupt EXIF data", "Tag data larger than file") become notes."""
    with warnings.catch_warnings(record=True) as pillow_said:
        warnings.simplefilter("always")
        blocks, parsed = reading.blocks(data)
        notes.extend(blocks.notes)
        from_exif, from_xmp = Found(), Found()
        if parsed is None and blocks.exif:
            raw = blocks.exif

            def parse() -> None:
                nonlocal parsed
                parsed = containers.open_exif(raw)

            exif.guarded(notes, "EXIF", parse)
        if parsed is not None:
            exif.read(parsed, from_exif, notes)
    notes.extend(f"EXIF damaged ({w.message})" for w in pillow_said[:MAX_WARNINGS])
    if blocks.xmp is not None:
        xmp.read(blocks.xmp, from_xmp, notes)
    found_iptc = iptc.Iptc()
    if blocks.iptc:
        try:
            found_iptc = iptc.read(blocks.iptc)
        except Exception as e:
            notes.append(f"IPTC unreadable ({type(e).__name__})")
    return combine(from_exif, from_xmp, found_iptc.caption, found_iptc.keywords)


def read_sidecar(sidecar: bytes, notes: list[str]) -> Found | None:
    """What an XMP sidecar says; None (with a note) when it is too large to read."""
    if len(sidecar) > MAX_SIDECAR_BYTES:
        notes.append(f"XMP sidecar of {len(sidecar) / 1e6:.1f} MB ignored "
                     f"(limit {MAX_SIDECAR_BYTES / 1e6:.1f} MB)")
        return None
    found = Found()
    xmp.read(sidecar, found, notes, where="XMP sidecar")
    return found


def _place(latitude: float | None, longitude: float | None) -> places.Place:
    """Country, code, region and place from the offline geocoder; all None if it fails."""
    nowhere = places.Place(zone=None)
    if latitude is None or longitude is None:
        return nowhere
    try:
        where = places.locate(latitude, longitude)
    except Exception:  # NotImplementedError until it lands, or a broken table
        return nowhere
    return where if isinstance(where, places.Place) else nowhere


def _error(notes: list[str]) -> str | None:
    if not notes:
        return None
    line = "; ".join(" ".join(n.split()) for n in dict.fromkeys(notes))
    return line if len(line) <= MAX_ERROR else line[:MAX_ERROR - 1] + "…"
