"""Damaged and hostile files (the research's mkhostile.py): extract never raises, keeps what
it can reach, says what it could not read in one line, and lets no NaN or huge value out."""

from __future__ import annotations

import math
import tracemalloc

import pytest

from tests import metadatafiles as mf
from watcherd.metadata import containers, values
from watcherd.metadata.extract import extract
from watcherd.metadata.fields import Metadata
from watcherd.metadata.sidecar import MAX_SIDECAR_BYTES


def _finite(md: Metadata) -> None:
    for name in ("latitude", "longitude", "altitude", "focal_length", "f_number",
                 "exposure_time"):
        value = getattr(md, name)
        assert value is None or math.isfinite(value), name
    assert md.error is None or "\n" not in md.error


@pytest.mark.parametrize("kind", ["offsets", "loop", "count", "huge", "truncated",
                                  "zero-denominators"])
def test_damaged_exif_never_raises(kind: str) -> None:
    md = extract(mf.hostile(mf.read("full.jpg"), kind), mtime=0)
    _finite(md)
    assert md.title == "My title" or kind == "truncated"  # XMP follows EXIF: cut away
    said = {"offsets": "EXIF damaged (Corrupt EXIF data", "loop": None,
            "count": "EXIF damaged (Corrupt EXIF data", "huge": "Skipping tag 271",
            "truncated": "JPEG segment 0xE1 truncated",
            "zero-denominators": "GPS position unreadable"}[kind]
    assert md.error == said if said is None else said in (md.error or "")


def test_bad_ifd_offsets_keep_ifd0() -> None:
    md = extract(mf.hostile(mf.read("full.jpg"), "offsets"), mtime=0)
    assert (md.camera_make, md.latitude, md.iso) == ("Canon", None, None)
    assert md.taken_source == "XMP:DateTimeOriginal"  # the EXIF IFD was out of reach


def test_ifd_loop_read_once() -> None:
    md = extract(mf.hostile(mf.read("full.jpg"), "loop"), mtime=0)
    assert md.camera_make == "Canon" and md.latitude == -38.72


def test_truncated_file_keeps_what_is_there() -> None:
    md = extract(mf.hostile(mf.read("full.jpg"), "truncated"), mtime=0)
    assert md.error is not None and "truncated" in md.error
    assert md.camera_make == "Canon"  # IFD0 lies within the first 300 bytes


def test_zero_denominators_are_no_position_not_nan() -> None:
    md = extract(mf.hostile(mf.read("full.jpg"), "zero-denominators"), mtime=0)
    assert (md.latitude, md.longitude, md.altitude) == (None, None, None)
    assert md.error is not None and "GPS position unreadable" in md.error
    assert md.camera_make == "Canon" and md.taken_source == "DateTimeOriginal"


def test_gps_null_island_is_unknown() -> None:
    md = extract(mf.read("null_island.jpg"), mtime=0)
    assert (md.latitude, md.longitude, md.altitude) == (None, None, None)
    assert md.error is None


def test_fifty_megabyte_xmp_in_png_is_skipped_and_exif_still_read() -> None:
    tracemalloc.start()
    try:
        data = mf.png_with_xmp(mf.read("full.png"), mf.big_xmp(50))
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        md = extract(data, mtime=0)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert md.error is not None and "XMP packet of 50 MB skipped (limit 1 MB)" in md.error
    assert md.camera_make == "Canon" and md.taken_source == "DateTimeOriginal"
    assert md.keywords == ()
    assert peak < 5_000_000  # the packet was never copied, let alone parsed


def test_compressed_xmp_bomb_is_not_inflated_past_the_limit() -> None:
    data = mf.png_with_xmp(mf.read("full.png"), mf.big_xmp(20), compressed=True)
    md = extract(data, mtime=0)
    assert md.error is not None and "skipped (limit 1 MB)" in md.error
    assert md.camera_model == "Canon EOS R5"


def test_billion_laughs_refused() -> None:
    md = extract(mf.png_with_xmp(mf.read("full.png"), mf.billion_laughs()), mtime=0)
    assert md.error is not None and "XMP unreadable (DTDForbidden)" in md.error
    assert md.camera_make == "Canon"


def test_xmp_that_is_not_xml() -> None:
    md = extract(mf.png_with_xmp(mf.read("full.png"), b"<x:xmpmeta>oops"), mtime=0)
    assert md.error is not None and "XMP unreadable (ParseError)" in md.error


def test_sidecar_too_large_ignored_with_a_note() -> None:
    huge = mf.read("IMG_0001.xmp") + b" " * MAX_SIDECAR_BYTES
    md = extract(mf.read("full.jpg"), mtime=0, sidecar=huge)
    assert md.title == "My title"
    assert md.error is not None and "XMP sidecar of 1.0 MB ignored" in md.error


def test_truncated_png_chunk_noted() -> None:
    data = mf.read("full.png")
    md = extract(data[:60], mtime=0)
    assert md.error is not None and "truncated" in md.error


@pytest.mark.parametrize("cut", [10, 100, 1000, 3000])
def test_any_truncation_of_any_format_never_raises(cut: int) -> None:
    for name in ("full.jpg", "full.png", "full.webp", "full.tif", "full.heic", "full.avif",
                 "xmp_only.gif", "fake.dng"):
        _finite(extract(mf.read(name)[:cut], mtime=0))


def test_gif_xmp_without_trailer() -> None:
    data = mf.read("xmp_only.gif")
    cut = data[:data.index(containers.GIF_TRAILER)]
    md = extract(cut, mtime=0)
    assert md.error is not None and "trailer" in md.error


def test_strings_sanitised() -> None:
    assert values.text(b"  Canon\x00\x00  ") == "Canon"
    assert values.text("a\x07b\x1bc\r\nd") == "abc\nd"
    assert values.text("x" * 2000) == "x" * values.MAX_TEXT
    assert values.text("   ") is None
    assert values.number("1/0") is None and values.number(float("inf")) is None
    assert values.integer("4.0", -1, 5) == 4 and values.integer(7, -1, 5) is None
