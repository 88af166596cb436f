"""The reader on every format, against exiftool: files written by exiftool
(tests/metadatafiles.py) read back by ``extract`` and compared with ``exiftool -j -n``."""

from __future__ import annotations

from typing import Any

import pytest
from PIL import Image, ImageFile

from tests import metadatafiles as mf
from watcherd.metadata import containers
from watcherd.metadata.extract import extract
from watcherd.metadata.fields import Metadata

FULL = ["full.jpg", "full.png", "full.webp", "full.tif", "full.heic", "full.avif"]
REF = mf.reference()

#: Metadata field -> exiftool (-j -n) tag names, first present wins.
EXIFTOOL = {
    "camera_make": ("Make",), "camera_model": ("Model",), "lens": ("LensModel", "Lens"),
    "focal_length": ("FocalLength",), "f_number": ("FNumber",),
    "exposure_time": ("ExposureTime",), "iso": ("ISO",), "rating": ("Rating",),
    "title": ("Title",), "latitude": ("GPSLatitude",), "longitude": ("GPSLongitude",),
    "altitude": ("GPSAltitude",),
}


@pytest.fixture(autouse=True)
def never_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test here may decode pixels: the reader reads headers only."""
    def refuse(self: Any) -> None:
        pytest.fail(f"pixels of a {self.format} were decoded")
    Image.init()  # plugins build images of their own when imported (PalmImagePlugin)
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def agree(md: Metadata, ref: dict[str, Any]) -> None:
    """Every field that exiftool also reports has exiftool's value."""
    compared = 0
    for name, tags in EXIFTOOL.items():
        tag = next((t for t in tags if t in ref), None)
        if tag is None:
            continue
        want = ref[tag]
        got = getattr(md, name)
        if isinstance(want, float) or isinstance(got, float):
            assert got == pytest.approx(float(want), abs=1e-6), name
        else:
            assert got == (str(want) if isinstance(got, str) else want), name
        compared += 1
    keywords = _as_list(ref.get("Subject", []))
    if ref.get("FileType") != "PNG":  # exiftool's PNG IPTC is a non-standard zTXt: not read
        keywords += _as_list(ref.get("Keywords", []))
    assert md.keywords == tuple(dict.fromkeys(str(k) for k in keywords))
    assert compared >= 2, "compared too little"


@pytest.mark.parametrize("name", [*FULL, "fake.dng", "north_east_below.jpg", "xmp_only.gif",
                                  "sidecar_source.jpg", "placeholder.jpg"])
def test_fields_match_exiftool(name: str) -> None:
    md = extract(mf.read(name), mtime=0)
    agree(md, REF[name])
    assert md.error is None


@pytest.mark.parametrize("name", FULL)
def test_every_format_reads_everything_it_carries(name: str) -> None:
    md = extract(mf.read(name), mtime=0)
    assert (md.taken_at, md.taken_offset, md.taken_source) == (
        "2024-06-15T14:30:45.123", "+02:00", "DateTimeOriginal")
    assert (md.latitude, md.longitude, md.altitude) == (-38.72, -9.14, 123.4)
    assert (md.camera_make, md.camera_model, md.lens) == (
        "Canon", "Canon EOS R5", "RF24-105mm F4 L IS USM")
    assert (md.focal_length, md.f_number, md.exposure_time, md.iso) == (50, 4, 0.004, 400)
    assert (md.rating, md.title, md.description) == (4, "My title", "XMP description")
    iptc = ("k", "k2") if name in ("full.jpg", "full.tif") else ()  # exiftool puts IPTC there
    assert md.keywords == ("a", "b", *iptc)
    assert md.error is None


def test_dng_header_read_as_tiff() -> None:
    """``exif_from_tiff_header``: the IFDs of a TIFF-based RAW (a DNG made by exiftool)."""
    exif = containers.exif_from_tiff_header(mf.read("fake.dng"))
    assert exif[0x010F] == "Canon"
    assert exif[0xC612] == b"\x01\x04\x00\x00"  # DNGVersion, as exiftool wrote it
    assert exif.get_ifd(0x8769)[0x9003] == "2024:06:15 14:30:45"
    assert exif.get_ifd(0x8825)[1] == "S"


@pytest.mark.parametrize("magic", [b"IIRO", b"IIU\x00"])
def test_olympus_and_panasonic_magic_read_as_tiff(magic: bytes) -> None:
    exif = containers.exif_from_tiff_header(magic + mf.read("fake.dng")[4:])
    assert exif[0x0110] == "Canon EOS R5"


def test_tiff_header_required() -> None:
    with pytest.raises(ValueError, match="TIFF"):
        containers.exif_from_tiff_header(mf.read("full.jpg"))


def test_bmp_has_nothing_but_mtime() -> None:
    md = extract(mf.read("bare.bmp"), mtime=1718454645.0)  # 2024-06-15 12:30:45 UTC
    assert md.taken_source == "mtime"
    assert md.with_(taken_at=None, taken_offset=None, taken_source=None).is_empty()


def test_gif_xmp_application_extension() -> None:
    md = extract(mf.read("xmp_only.gif"), mtime=None)
    assert (md.title, md.rating, md.keywords) == ("GIF title", -1, ("gif",))
    assert (md.taken_at, md.taken_offset, md.taken_source) == (
        "2024-06-15T14:30:45", "+09:00", "XMP:DateTimeOriginal")


def test_png_exif_and_xmp_after_idat_read_without_decoding() -> None:
    """Pillow's getexif() decodes the whole PNG when eXIf follows IDAT (never_decode fails
    the test if anything does)."""
    data = mf.png_move_after_idat(mf.read("full.png"))
    kinds = [k for k, _ in mf.png_chunks(data)]
    assert kinds.index(b"eXIf") > kinds.index(b"IDAT") < kinds.index(b"iTXt")
    md = extract(data, mtime=None)
    assert md == extract(mf.read("full.png"), mtime=None)
    assert md.camera_make == "Canon" and md.title == "My title"


def test_png_compressed_xmp() -> None:
    png = mf.png_with_xmp(mf.read("full.png"), mf.XMP_HEAD + b'<dc:title><rdf:Alt><rdf:li '
                          b'xml:lang="x-default">zipped</rdf:li></rdf:Alt></dc:title>'
                          + mf.XMP_TAIL, compressed=True)
    assert extract(png, mtime=None).title == "zipped"


def test_not_an_image() -> None:
    md = extract(b"this is not a photo at all", mtime=None)
    assert md.error is not None and "not a readable image" in md.error
    assert extract(b"", mtime=None).error is not None
