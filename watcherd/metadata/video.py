"""A video's metadata, from its container's tags as FFmpeg reports them (``VideoInfo.tags`` of
:mod:`watcherd.media.video`: container tags, then the video stream's, keys lower-case). This
module takes plain values and never imports ``watcherd.media``.

What is read (in order of trust for each field):

- capture time: ``com.apple.quicktime.creationdate`` (an iPhone's local time with its offset,
  ``taken_source`` ``'QuickTime:CreationDate'``), then ``creation_time`` (an instant in UTC:
  ``'QuickTime:CreateDate'`` in an MP4/MOV family file, which is exiftool's name for it, else
  ``'CreationTime'``; placed in the GPS position's zone, else the local one, as every instant
  is), then the file's mtime. A creation time before 1971 is a zero (QuickTime counts from
  1904, some cameras write 0) and is skipped.
- position: ``com.apple.quicktime.location.iso6709``, else ``location`` (``©xyz``, Android's
  and ffmpeg's), as ISO 6709 (``+48.8584+002.2945+035.000/``; degrees, or DDMM/DDMMSS forms),
  altitude included; country and place by the offline geocoder.
- camera: ``com.apple.quicktime.make``/``model``, Android's ``com.android.manufacturer``/
  ``model``, or plain ``make``/``model``.
- title and description: QuickTime's ``com.apple.quicktime.title``/``description``, or the
  plain ``title``/``description`` tags (camera placeholders dropped).
- ``video_codec`` and ``fps``: as given.

An XMP sidecar wins field by field, as for photos (:func:`watcherd.metadata.extract.assemble`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import tzinfo

from watcherd.metadata import dates, exif, values
from watcherd.metadata.dates import Stamp
from watcherd.metadata.extract import assemble
from watcherd.metadata.fields import Metadata
from watcherd.metadata.found import Found

CREATION_DATE = "com.apple.quicktime.creationdate"
CREATION_TIME = "creation_time"
LOCATIONS = ("com.apple.quicktime.location.iso6709", "location", "location-eng")
MAKES = ("com.apple.quicktime.make", "com.android.manufacturer", "make")
MODELS = ("com.apple.quicktime.model", "com.android.model", "model")
TITLES = ("com.apple.quicktime.title", "title")
DESCRIPTIONS = ("com.apple.quicktime.description", "description")
EARLIEST_YEAR = 1971  # before: a zero creation time (1904 or 1970), not a date

_ISO6709 = re.compile(r"([+-]\d+(?:\.\d*)?)([+-]\d+(?:\.\d*)?)([+-]\d+(?:\.\d*)?)?"
                      r"(?:CRS[^/]*)?/?")


def extract_video(tags: Mapping[str, str], *, codec: str | None = None, fps: float | None = None,
                  mtime: float | None, sidecar: bytes | None = None,
                  local_zone: tzinfo | None = None) -> Metadata:
    """A video's Metadata from its tags (keys lower-case), ``codec`` and ``fps`` (as
    :func:`watcherd.media.video.probe` reports them) and its XMP ``sidecar``; never raises
    for anything in the tags (``Metadata.error`` says what could not be read). ``mtime`` is
    the capture time's last resort; instants become local time in the GPS position's zone,
    else ``local_zone`` (default: the server's)."""
    notes: list[str] = []
    try:
        own = read_tags(tags, notes)
    except Exception as e:  # the parts guard themselves; this is the last net
        notes.append(f"tags unreadable ({type(e).__name__}: {e})")
        own = Found()
    return assemble(own, notes, sidecar=sidecar, mtime=mtime, local_zone=local_zone,
                    video_codec=values.text(codec), fps=values.positive(fps))


def read_tags(tags: Mapping[str, str], notes: list[str]) -> Found:
    """What the tags say, as a :class:`Found` (a source, like a photo's EXIF)."""
    tags = {str(k).lower(): v for k, v in tags.items()}
    found = Found()
    exif.guarded(notes, "QuickTime:CreationDate", lambda: _creation_date(tags, found))
    exif.guarded(notes, "creation_time", lambda: _creation_time(tags, found))
    exif.guarded(notes, "location", lambda: _location(tags, found, notes))
    found.camera_make = _first(tags, MAKES)
    found.camera_model = _first(tags, MODELS)
    found.title = _first(tags, TITLES)
    found.descriptions = [d for d in (values.text(tags.get(k)) for k in DESCRIPTIONS) if d]
    return found


def _first(tags: Mapping[str, str], keys: tuple[str, ...]) -> str | None:
    return next((text for text in (values.text(tags.get(k)) for k in keys) if text), None)


def _creation_date(tags: Mapping[str, str], found: Found) -> None:
    stamp = dates.xmp(tags.get(CREATION_DATE))
    if stamp is not None and not stamp.timeless:
        found.stamps.append(("QuickTime:CreationDate", stamp))


def _creation_time(tags: Mapping[str, str], found: Found) -> None:
    """``creation_time``: UTC, whether or not it says so (FFmpeg writes ``…Z``); FFmpeg's
    ``.000000`` is no sub-second precision (QuickTime stores whole seconds)."""
    stamp = dates.xmp(tags.get(CREATION_TIME))
    if stamp is None or stamp.timeless or stamp.local.year < EARLIEST_YEAR:
        return
    if not stamp.instant and stamp.offset not in (None, "+00:00"):
        # an offset other than UTC: the wall clock as written, with its offset
        found.stamps.append((_create_date_name(tags), stamp))
        return
    instant = Stamp(stamp.local, "+00:00", millis=stamp.local.microsecond != 0, instant=True)
    found.stamps.append((_create_date_name(tags), instant))


def _create_date_name(tags: Mapping[str, str]) -> str:
    """exiftool's name for it in an ISO BMFF file (MP4, MOV, M4V, 3GP: FFmpeg reports their
    ``major_brand``), a neutral one otherwise (Matroska, AVI)."""
    return "QuickTime:CreateDate" if "major_brand" in tags else "CreationTime"


def _location(tags: Mapping[str, str], found: Found, notes: list[str]) -> None:
    raw = next((values.text(tags.get(k)) for k in LOCATIONS if values.text(tags.get(k))), None)
    if raw is None:
        return
    lat, lon, alt = iso6709(raw)
    exif.settle(found, lat, lon, alt, notes)


def iso6709(text: str) -> tuple[float, float, float | None]:
    """``'+48.8584+002.2945+035.000/'`` → (48.8584, 2.2945, 35.0). Latitude and longitude in
    decimal degrees, or as ±DDMM[.M], ±DDMMSS[.S] (longitude ±DDDMM...); ValueError for
    anything else."""
    m = _ISO6709.fullmatch(text.strip().replace(" ", ""))
    if m is None:
        raise ValueError(f"{text!r} is not an ISO 6709 position")
    lat, lon = _angle(m[1], 2), _angle(m[2], 3)
    alt = float(m[3]) if m[3] else None
    return lat, lon, alt


def _angle(text: str, degree_digits: int) -> float:
    """One ISO 6709 angle: its integer part has ``degree_digits`` (decimal degrees; fewer is
    taken as degrees too), two more (DDMM) or four more (DDMMSS)."""
    sign = -1.0 if text[0] == "-" else 1.0
    whole, _, fraction = text[1:].partition(".")
    frac = float("0." + fraction) if fraction else 0.0
    extra = len(whole) - degree_digits
    if extra <= 0:
        return sign * (int(whole) + frac)
    if extra == 2:
        degrees, minutes = int(whole[:-2]), int(whole[-2:]) + frac
        if minutes >= 60:
            raise ValueError(f"{text!r}: minutes {minutes} >= 60")
        return sign * (degrees + minutes / 60)
    if extra == 4:
        degrees, minutes, seconds = int(whole[:-4]), int(whole[-4:-2]), int(whole[-2:]) + frac
        if minutes >= 60 or seconds >= 60:
            raise ValueError(f"{text!r}: minutes or seconds >= 60")
        return sign * (degrees + minutes / 60 + seconds / 3600)
    raise ValueError(f"{text!r} is not an ISO 6709 angle")
