"""The RAW decoder (``watcherd.media.raw.decode_raw``) on real DNGs: tifffile and Pillow write
them here (tests/rawfiles.py), LibRaw reads them. Every file shows the same picture (green band
on top, red left, blue right), so where its colours end up says how it was oriented. The
metadata reader on a DNG tagged by exiftool (kept in tests/data/raw) and on ORF/RW2 magic."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageCms

from tests import rawfiles as rf
from watcherd.media.images import ImageError, decode
from watcherd.media.raw import RawError, decode_raw, strip_app1
from watcherd.metadata import reading
from watcherd.metadata.extract import extract

W, H = 400, 300  # the sensor; LibRaw's half size is 200x150
PREVIEW = (320, 240)  # neither the sensor's size nor the half size
SMALL_PREVIEW = (160, 120)
MIN_SIDE = 256  # the caller's largest thumbnail
NOT_RAW = "RAW unreadable: Unsupported file format or not RAW file"  # LibRaw's words

Dng = Callable[..., bytes]


@pytest.fixture(scope="session")
def dng(tmp_path_factory: pytest.TempPathFactory) -> Dng:
    """``dng(**make_dng options)``: the bytes of a DNG (400x300 unless told), made once."""
    folder = tmp_path_factory.mktemp("dng")
    made: dict[tuple[tuple[str, Any], ...], bytes] = {}

    def make(**options: Any) -> bytes:
        options = {"width": W, "height": H, **options}
        key = tuple(sorted(options.items()))
        if key not in made:
            path = rf.make_dng(folder / f"{len(made)}.dng", **options)
            made[key] = path.read_bytes()
        return made[key]

    return make


def raw(data: bytes, **options: Any) -> Any:
    return decode_raw(data, **{"file_type": "DNG", "max_pixels": 10_000_000,
                               "min_preview_side": MIN_SIDE, **options})


def swapped(orientation: int, size: tuple[int, int]) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


# --- which way the pixels come ---

def test_big_enough_preview_is_used(dng: Dng) -> None:
    got = raw(dng(preview_size=PREVIEW))
    assert got.decode == "raw-preview"
    assert got.image.size == PREVIEW
    assert (got.width, got.height) == (W, H)  # the developed image's, not the preview's
    assert got.format == "DNG"
    assert got.image.mode == "RGB"
    assert got.icc_profile is None
    assert rf.layout(got.image) == rf.LAYOUTS[1]


@pytest.mark.parametrize("case", ["no preview", "preview too small", "preview not wanted"])
def test_demosaic_otherwise(dng: Dng, case: str) -> None:
    if case == "no preview":
        got = raw(dng())
    elif case == "preview too small":
        got = raw(dng(preview_size=SMALL_PREVIEW))
    else:
        got = raw(dng(preview_size=PREVIEW), prefer_preview=False)
    assert got.decode == "raw-demosaic"
    assert got.image.size == (W // 2, H // 2)
    assert (got.width, got.height) == (W, H)
    assert got.image.mode == "RGB"
    assert rf.layout(got.image) == rf.LAYOUTS[1]


def test_preview_side_threshold_is_inclusive(dng: Dng) -> None:
    data = dng(preview_size=PREVIEW)
    assert raw(data, min_preview_side=320).decode == "raw-preview"
    assert raw(data, min_preview_side=321).decode == "raw-demosaic"


def test_bitmap_preview(dng: Dng) -> None:
    data = dng(preview_size=PREVIEW, preview="bitmap", orientation=6)
    got = raw(data)
    assert got.decode == "raw-preview"
    assert got.image.size == (240, 320)
    assert (got.width, got.height) == (H, W)
    assert rf.layout(got.image) == rf.LAYOUTS[6]
    assert raw(data, draft_size=100).image.size == (120, 160)
    assert raw(data, min_preview_side=400).decode == "raw-demosaic"


# --- orientation: the RAW's own, for both ways ---

@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
@pytest.mark.parametrize("way", ["raw-preview", "raw-demosaic"])
def test_raw_orientation_applied(dng: Dng, orientation: int, way: str) -> None:
    got = raw(dng(preview_size=PREVIEW, orientation=orientation),
              prefer_preview=way == "raw-preview")
    assert got.decode == way
    assert rf.layout(got.image) == rf.LAYOUTS[orientation]
    assert (got.width, got.height) == swapped(orientation, (W, H))
    shown = PREVIEW if way == "raw-preview" else (W // 2, H // 2)
    assert got.image.size == swapped(orientation, shown)


@pytest.mark.parametrize(("raw_orientation", "preview_orientation"), [(1, 6), (6, 3), (8, 1)])
def test_previews_own_orientation_ignored(dng: Dng, raw_orientation: int,
                                          preview_orientation: int) -> None:
    """A preview that carries an EXIF orientation of its own is still turned by the RAW's."""
    data = dng(preview_size=PREVIEW, orientation=raw_orientation,
               preview_exif_orientation=preview_orientation)
    got = raw(data)
    assert got.decode == "raw-preview"
    assert rf.layout(got.image) == rf.LAYOUTS[raw_orientation]
    assert got.image.size == swapped(raw_orientation, PREVIEW)


# --- draft size ---

@pytest.mark.parametrize(("draft", "size"), [(None, (320, 240)), (100, (160, 120)),
                                             (40, (80, 60)), (300, (320, 240))])
def test_draft_size_scales_the_preview(dng: Dng, draft: int | None,
                                       size: tuple[int, int]) -> None:
    got = raw(dng(preview_size=PREVIEW), draft_size=draft)
    assert got.decode == "raw-preview"
    assert got.image.size == size
    assert (got.width, got.height) == (W, H)


@pytest.mark.parametrize(("draft", "size"), [(None, (400, 300)), (100, (200, 150)),
                                             (40, (100, 75)), (300, (400, 300))])
def test_draft_size_reduces_the_demosaic(dng: Dng, draft: int | None,
                                         size: tuple[int, int]) -> None:
    got = raw(dng(width=800, height=600, orientation=6), draft_size=draft)
    assert got.decode == "raw-demosaic"
    assert got.image.size == swapped(6, size)
    assert (got.width, got.height) == (600, 800)
    assert rf.layout(got.image) == rf.LAYOUTS[6]


# --- colour ---

def test_preview_icc_profile_left_or_applied(dng: Dng) -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = dng(preview_size=PREVIEW, icc_profile=profile)
    assert raw(data, to_srgb_now=False).icc_profile == profile
    assert raw(data).icc_profile is None


# --- damaged and foreign bytes ---

def test_truncated_sensor_data(dng: Dng) -> None:
    data = dng(preview_size=SMALL_PREVIEW)[:-1000]
    with pytest.raises(RawError) as caught:
        raw(data)
    assert str(caught.value) == "RAW unreadable: Input/output error"  # LibRaw's reason
    assert isinstance(caught.value, ImageError)


def test_truncated_sensor_data_with_a_good_preview(dng: Dng) -> None:
    """The preview sits before the sensor data: a cut file still shows."""
    got = raw(dng(preview_size=PREVIEW)[:-1000])
    assert got.decode == "raw-preview"
    assert rf.layout(got.image) == rf.LAYOUTS[1]


def test_corrupt_header(dng: Dng) -> None:
    data = bytearray(dng(preview_size=PREVIEW))
    data[4:8] = (0xFFFFFF00).to_bytes(4, "little")  # IFD0 far beyond the end
    with pytest.raises(RawError, match=f"^{NOT_RAW}$"):
        raw(bytes(data))


@pytest.mark.parametrize("damage", ["frame size 0x0", "no marker", "no quantisation tables"])
def test_damaged_preview_falls_back_to_the_demosaic(dng: Dng, damage: str) -> None:
    """LibRaw refuses the first preview, the marker walk the second, Pillow the third."""
    data = bytearray(dng(preview_size=PREVIEW))
    start = data.index(b"\xff\xd8\xff")  # the preview's SOI
    if damage == "frame size 0x0":
        sof = data.index(b"\xff\xc0", start)
        data[sof + 5:sof + 9] = bytes(4)
    elif damage == "no marker":
        data[start + 2] = 0  # LibRaw writes its own SOI (and EXIF), then the rest as it is
    else:
        dqt = data.index(b"\xff\xdb", start)
        data[dqt + 1] = 0xE5  # an APP5 now: the scan's tables are never defined
    got = raw(bytes(data))
    assert got.decode == "raw-demosaic"
    assert rf.layout(got.image) == rf.LAYOUTS[1]


def _jpeg() -> bytes:
    return rf.jpeg(rf.picture(64, 48))


def _png() -> bytes:
    out = io.BytesIO()
    rf.picture(64, 48).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("make", [_jpeg, _png, lambda: b"hello, world\n" * 100],
                         ids=["jpeg", "png", "text"])
def test_not_a_raw(make: Callable[[], bytes]) -> None:
    with pytest.raises(RawError, match=f"^{NOT_RAW}$"):
        raw(make())


def test_out_of_memory_is_a_raw_error(dng: Dng, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_memory(*args: Any, **kwargs: Any) -> Image.Image:
        raise MemoryError
    monkeypatch.setattr(Image, "fromarray", no_memory)
    with pytest.raises(RawError, match=r"^RAW unreadable: out of memory$"):
        raw(dng())


def test_empty() -> None:
    with pytest.raises(RawError, match=r"^empty file$"):
        raw(b"")


@pytest.mark.parametrize("options", [{"max_pixels": 0}, {"min_preview_side": 0},
                                     {"draft_size": 0}])
def test_bad_arguments(options: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        raw(b"x", **options)


# --- the pixel limit: on what is decoded, not on the sensor ---

def test_max_pixels_counts_the_half_size(dng: Dng) -> None:
    """A 120 000-pixel sensor decodes within a 30 000 limit: its half size is 200x150."""
    got = raw(dng(), max_pixels=30_000)
    assert got.decode == "raw-demosaic"
    assert (got.width, got.height) == (W, H)


def test_max_pixels_refuses_a_half_size_over_it(dng: Dng) -> None:
    with pytest.raises(RawError, match=r"^too many pixels: 400x300 sensor, half size "
                                       r"200x150 = 30000 > limit 29999$"):
        raw(dng(), max_pixels=29_999)


def test_max_pixels_checked_before_the_sensor_data_is_read(dng: Dng) -> None:
    """The limit is seen first: a truncated sensor would otherwise say "Input/output error"."""
    with pytest.raises(RawError, match=r"^too many pixels"):
        raw(dng()[:-1000], max_pixels=29_999)


@pytest.mark.parametrize("sensor", ["linear", "monochrome"])
def test_max_pixels_counts_a_sensor_without_colour_filters_whole(dng: Dng, sensor: str) -> None:
    """LibRaw develops a LinearRaw DNG, RGB or monochrome (no colour filter array), at full
    size: its limit is the whole sensor."""
    data = dng(width=200, height=150, sensor=sensor)
    got = raw(data, max_pixels=30_000)
    assert (got.decode, got.image.size, got.image.mode) == ("raw-demosaic", (200, 150), "RGB")
    with pytest.raises(RawError, match=r"^too many pixels: 200x150 sensor, not a colour filter "
                                       r"array, 200x150 = 30000 > limit 29999$"):
        raw(data, max_pixels=29_999)


def test_sensors_without_colour_filters_developed(dng: Dng) -> None:
    linear = raw(dng(width=200, height=150, sensor="linear", orientation=6)).image
    assert rf.layout(linear) == rf.LAYOUTS[6]
    grey = raw(dng(width=200, height=150, sensor="monochrome")).image
    top, left, right = (grey.getpixel(xy) for xy in ((100, 10), (20, 100), (180, 100)))
    assert all(isinstance(p, tuple) and len(set(p)) == 1 for p in (top, left, right))  # grey
    assert top > left > right  # the lumas of green, red and blue


@pytest.mark.parametrize(("scale", "full", "shown"), [((1, 2), (400, 600), (200, 300)),
                                                      ((2, 1), (800, 300), (400, 150))])
def test_non_square_pixels_stretched(dng: Dng, scale: tuple[int, int], full: tuple[int, int],
                                     shown: tuple[int, int]) -> None:
    """LibRaw stretches non-square pixels (DNG DefaultScale): the size and the limit follow."""
    data = dng(default_scale=scale)
    got = raw(data, max_pixels=60_000)
    assert ((got.width, got.height), got.image.size) == (full, shown)
    with pytest.raises(RawError, match=r"^too many pixels"):
        raw(data, max_pixels=59_999)


def test_preview_over_the_limit_falls_back_to_the_demosaic(dng: Dng) -> None:
    got = raw(dng(preview_size=PREVIEW), max_pixels=50_000)  # preview 76 800, half 30 000
    assert got.decode == "raw-demosaic"


# --- strip_app1: a preview's own EXIF and XMP go, the rest stays ---

XMP_ROTATED = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/'
               b'1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/'
               b'tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')


def test_strip_app1_removes_exif_and_xmp_keeps_icc() -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    rf.picture(64, 48).save(out, "JPEG", exif=exif.tobytes(), xmp=XMP_ROTATED,
                            icc_profile=profile)
    original = out.getvalue()
    assert decode(original, max_pixels=10_000).image.size == (48, 64)  # turned, as a photo
    stripped = strip_app1(original)
    with Image.open(io.BytesIO(stripped)) as im:
        assert "exif" not in im.info and "xmp" not in im.info
        assert im.info["icc_profile"] == profile
        assert im.getexif().get(0x0112) is None
        with Image.open(io.BytesIO(original)) as before:
            assert im.tobytes() == before.tobytes()  # the same scan


def test_strip_app1_xmp_orientation_alone() -> None:
    out = io.BytesIO()
    rf.picture(64, 48).save(out, "JPEG", xmp=XMP_ROTATED)
    assert decode(out.getvalue(), max_pixels=10_000).image.size == (48, 64)  # Pillow reads it
    assert decode(strip_app1(out.getvalue()), max_pixels=10_000).image.size == (64, 48)


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "not a JPEG"), (b"not a jpeg", "not a JPEG"), (b"\xff\xd8", "ends before its scan"),
    (b"\xff\xd8\x00\x00", "no JPEG marker at 2"),
    (b"\xff\xd8\xff\xe1\xff\xff\x00", "length 65535 out of range"),
    (b"\xff\xd8\xff\xe1\x00", "segment header truncated"),
    (b"\xff\xd8\xff\xe1\x00\x01\x00\x00", "length 1 out of range"),
    (b"\xff\xd8\xff\xe0\x00\x04\x00\x00", "ends before its scan"),
])
def test_strip_app1_refuses_broken_structure(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        strip_app1(data)


# --- the metadata reader on RAWs ---

def test_dng_metadata_as_exiftool_wrote_it() -> None:
    ref = rf.reference()
    md = extract(rf.read(), mtime=None)
    assert (md.camera_make, md.camera_model) == (ref["Make"], ref["Model"]) == (
        "Fujifilm", "GFX100")
    assert (md.taken_at, md.taken_offset, md.taken_source) == (
        "2024-06-15T14:30:45.123", "+02:00", "DateTimeOriginal")
    assert ref["DateTimeOriginal"] == "2024:06:15 14:30:45"
    assert (md.latitude, md.longitude, md.altitude) == (
        ref["GPSLatitude"], ref["GPSLongitude"], ref["GPSAltitude"]) == (38.7223, -9.1393, 12.5)
    assert (md.lens, md.f_number, md.exposure_time, md.iso) == (
        "GF32-64mmF4 R LM WR", 5.6, 0.008, 200)
    assert md.error is None


def test_dng_tagged_by_exiftool_still_decodes() -> None:
    data = rf.read()
    preview = raw(data, min_preview_side=100)
    assert (preview.decode, preview.image.size, (preview.width, preview.height)) == (
        "raw-preview", (128, 96), (128, 96))
    developed = raw(data, prefer_preview=False)
    assert (developed.decode, developed.image.size) == ("raw-demosaic", (64, 48))
    assert rf.layout(preview.image) == rf.layout(developed.image) == rf.LAYOUTS[1]


@pytest.mark.parametrize("magic", [b"IIRO", b"IIRS", b"IIU\x00"], ids=["ORF", "ORF-old", "RW2"])
def test_olympus_and_panasonic_magic_read_as_tiff(magic: bytes) -> None:
    data = magic + rf.read()[4:]
    assert reading.kind(data) == "TIFF"
    md = extract(data, mtime=None)
    assert (md.camera_make, md.camera_model, md.taken_at) == (
        "Fujifilm", "GFX100", "2024-06-15T14:30:45.123")
    assert (md.latitude, md.longitude) == (38.7223, -9.1393)
    assert md.error is None


def test_big_endian_olympus_magic_read_as_tiff(tmp_path: Path) -> None:
    data = rf.make_dng(tmp_path / "mm.dng", width=64, height=48, big_endian=True).read_bytes()
    assert data[:4] == b"MM\x00*"
    data = b"MMOR" + data[4:]
    assert reading.kind(data) == "TIFF"
    md = extract(data, mtime=None)
    assert (md.camera_make, md.camera_model) == ("watcherd", "test DNG")
    assert md.error is None
