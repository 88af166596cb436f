"""watcherd.media.images.decode: modes, orientation, formats, draft decoding, untrusted input."""

from __future__ import annotations

import io
import random
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFile

from tests.helpers import png_claiming
from watcherd.media.images import DecodedImage, ImageError, decode

LIMIT = 100_000_000
RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
WHITE = (255, 255, 255)


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def corners(width: int = 60, height: int = 40) -> Image.Image:
    """Quadrants: top-left red, top-right green, bottom-left blue, bottom-right yellow."""
    im = Image.new("RGB", (width, height), RED)
    im.paste(GREEN, (width // 2, 0, width, height // 2))
    im.paste(BLUE, (0, height // 2, width // 2, height))
    im.paste(YELLOW, (width // 2, height // 2, width, height))
    return im


def quadrant_colours(im: Image.Image) -> tuple[Any, ...]:
    """Pixels at the middle of the top-left, top-right, bottom-left, bottom-right quadrants."""
    w, h = im.size
    points = [
        (w // 4, h // 4),
        (3 * w // 4, h // 4),
        (w // 4, 3 * h // 4),
        (3 * w // 4, 3 * h // 4),
    ]
    return tuple(im.getpixel(p) for p in points)


def close_to(actual: Any, expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return len(actual) == len(expected) and all(
        abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)
    )


def jpeg_with_orientation(im: Image.Image, orientation: int, **params: Any) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(im, "JPEG", exif=exif, quality=95, **params)


def assert_reason(exc: pytest.ExceptionInfo[ImageError], start: str) -> str:
    reason = str(exc.value)
    assert reason.startswith(start), reason
    assert "\n" not in reason and len(reason) <= 200, reason
    assert "BytesIO" not in reason and "0x" not in reason, reason
    return reason


# --- orientation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "size", "expected"),
    [
        (1, (60, 40), (RED, GREEN, BLUE, YELLOW)),
        (3, (60, 40), (YELLOW, BLUE, GREEN, RED)),
        # 6: the stored top row is the displayed right column (rotate 90 degrees clockwise).
        (6, (40, 60), (BLUE, RED, YELLOW, GREEN)),
        # 8: the stored top row is the displayed left column (rotate 90 degrees anticlockwise).
        (8, (40, 60), (GREEN, YELLOW, RED, BLUE)),
    ],
)
def test_exif_orientation_is_applied(
    orientation: int, size: tuple[int, int], expected: tuple[tuple[int, int, int], ...]
) -> None:
    decoded = decode(jpeg_with_orientation(corners(), orientation), max_pixels=LIMIT)
    assert (decoded.width, decoded.height) == size
    assert decoded.image.size == size
    assert decoded.image.mode == "RGB"
    got = quadrant_colours(decoded.image)
    assert all(close_to(g, e) for g, e in zip(got, expected, strict=True)), got


def test_orientation_with_draft_reports_full_rotated_size() -> None:
    data = jpeg_with_orientation(corners(1600, 800), 6)
    decoded = decode(data, max_pixels=LIMIT, draft_size=100)
    assert (decoded.width, decoded.height) == (800, 1600)
    # DCT scaling by 8 (both sides still >= 100), then rotated.
    assert decoded.image.size == (100, 200)
    got = quadrant_colours(decoded.image)
    assert all(close_to(g, e) for g, e in zip(got, (BLUE, RED, YELLOW, GREEN), strict=True)), got


def test_nonsense_orientation_value_is_ignored() -> None:
    decoded = decode(jpeg_with_orientation(corners(), 42), max_pixels=LIMIT)
    assert (decoded.width, decoded.height) == (60, 40)
    assert close_to(decoded.image.getpixel((5, 5)), RED)


# --- modes -----------------------------------------------------------------------------------


def test_cmyk_jpeg_becomes_rgb() -> None:
    # Pillow writes CMYK JPEGs Adobe-style (inverted, with an APP14 marker), so this also covers
    # the inverted-CMYK path of the reader.
    data = encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.mode == "CMYK" and "adobe" in raw.info
    decoded = decode(data, max_pixels=LIMIT)
    assert decoded.format == "JPEG"
    assert decoded.image.mode == "RGB"
    assert close_to(decoded.image.getpixel((16, 16)), RED, tolerance=10)


def palette_with_transparency(*, use_transparent_index: bool = True) -> bytes:
    im = Image.new("P", (20, 10), 1)
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255])  # 0 black (transparent), 1 red, 2 blue
    if use_transparent_index:
        im.paste(0, (0, 0, 10, 10))
    im.paste(2, (15, 0, 20, 10))
    return encode(im, "PNG", transparency=0)


def test_palette_png_with_transparency_becomes_rgba() -> None:
    decoded = decode(palette_with_transparency(), max_pixels=LIMIT)
    assert decoded.format == "PNG"
    assert decoded.image.mode == "RGBA"
    assert decoded.image.getpixel((2, 2))[3] == 0
    assert decoded.image.getpixel((12, 5)) == (255, 0, 0, 255)
    assert decoded.image.getpixel((17, 5)) == (0, 0, 255, 255)


def test_unused_transparency_gives_rgb() -> None:
    # Documented choice: an alpha channel that is opaque everywhere is dropped.
    decoded = decode(palette_with_transparency(use_transparent_index=False), max_pixels=LIMIT)
    assert decoded.image.mode == "RGB"
    assert decoded.image.getpixel((2, 2)) == (255, 0, 0)

    opaque = Image.new("RGBA", (8, 8), (10, 20, 30, 255))
    decoded = decode(encode(opaque, "PNG"), max_pixels=LIMIT)
    assert decoded.image.mode == "RGB"
    assert decoded.image.getpixel((3, 3)) == (10, 20, 30)


def test_palette_without_transparency_gives_rgb() -> None:
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 0, 128, 255])
    decoded = decode(encode(im, "PNG"), max_pixels=LIMIT)
    assert decoded.image.mode == "RGB"
    assert decoded.image.getpixel((1, 1)) == (0, 128, 255)


def test_rgba_png_keeps_alpha() -> None:
    im = Image.new("RGBA", (10, 10), (0, 255, 0, 255))
    im.paste((200, 100, 50, 77), (0, 0, 5, 10))
    decoded = decode(encode(im, "PNG"), max_pixels=LIMIT)
    assert decoded.image.mode == "RGBA"
    assert decoded.image.getpixel((1, 1)) == (200, 100, 50, 77)
    assert decoded.image.getpixel((8, 8)) == (0, 255, 0, 255)


def test_la_png_becomes_rgba() -> None:
    im = Image.new("LA", (6, 6), (90, 255))
    im.putpixel((0, 0), (200, 0))
    decoded = decode(encode(im, "PNG"), max_pixels=LIMIT)
    assert decoded.image.mode == "RGBA"
    assert decoded.image.getpixel((0, 0))[3] == 0
    assert decoded.image.getpixel((3, 3)) == (90, 90, 90, 255)


def test_l_and_1_bit_become_rgb() -> None:
    decoded = decode(encode(Image.new("L", (5, 5), 77), "PNG"), max_pixels=LIMIT)
    assert decoded.image.mode == "RGB"
    assert decoded.image.getpixel((2, 2)) == (77, 77, 77)

    bilevel = Image.new("1", (16, 8), 0)
    bilevel.paste(1, (8, 0, 16, 8))
    decoded = decode(encode(bilevel, "PNG"), max_pixels=LIMIT)
    assert decoded.image.mode == "RGB"
    assert decoded.image.getpixel((2, 2)) == (0, 0, 0)
    assert decoded.image.getpixel((12, 2)) == WHITE


@pytest.mark.parametrize(("mode", "fmt"), [("I;16", "PNG"), ("I;16", "TIFF"), ("I;16B", "TIFF")])
def test_16_bit_grey_is_scaled_not_clipped(mode: str, fmt: str) -> None:
    im = Image.new(mode, (3, 1))
    for x, value in enumerate((0, 32768, 65535)):
        im.putpixel((x, 0), value)
    data = encode(im, fmt)
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.mode == mode  # the reader really gives the 16-bit mode under test
    decoded = decode(data, max_pixels=LIMIT)
    assert decoded.image.mode == "RGB"
    assert decoded.image.getpixel((0, 0)) == (0, 0, 0)
    assert decoded.image.getpixel((1, 0)) == (128, 128, 128)
    assert decoded.image.getpixel((2, 0)) == WHITE


def test_32_bit_int_grey_is_clamped_then_scaled() -> None:
    im = Image.new("I", (4, 1))
    for x, value in enumerate((-5000, 32768, 65535, 10_000_000)):
        im.putpixel((x, 0), value)
    decoded = decode(encode(im, "TIFF"), max_pixels=LIMIT)
    assert [decoded.image.getpixel((x, 0))[0] for x in range(4)] == [0, 128, 255, 255]


def test_float_grey_is_scaled_sensibly() -> None:
    unit = Image.new("F", (3, 1))
    for x, value in enumerate((0.0, 0.5, 1.0)):
        unit.putpixel((x, 0), value)
    decoded = decode(encode(unit, "TIFF"), max_pixels=LIMIT)
    assert [decoded.image.getpixel((x, 0))[0] for x in range(3)] == [0, 127, 255]

    wide = Image.new("F", (3, 1))
    for x, value in enumerate((-3.0, 100.0, 1000.0)):
        wide.putpixel((x, 0), value)
    decoded = decode(encode(wide, "TIFF"), max_pixels=LIMIT)
    assert [decoded.image.getpixel((x, 0))[0] for x in range(3)] == [0, 100, 255]


@pytest.mark.parametrize(
    ("mode", "colour"),
    [("YCbCr", (76, 85, 255)), ("LAB", (136, 208, 195))],
)
def test_other_colour_spaces_become_rgb(mode: str, colour: tuple[int, int, int]) -> None:
    data = encode(Image.new(mode, (4, 4), colour), "TIFF")
    decoded = decode(data, max_pixels=LIMIT)
    assert decoded.image.mode == "RGB"
    assert close_to(decoded.image.getpixel((1, 1)), RED, tolerance=30), decoded.image.getpixel(
        (1, 1)
    )


# --- formats ---------------------------------------------------------------------------------


def frames(*colours: tuple[int, int, int]) -> list[Image.Image]:
    return [Image.new("RGB", (16, 12), c) for c in colours]


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("GIF", {}), ("WEBP", {"lossless": True}), ("PNG", {})],
    ids=["gif", "webp", "apng"],
)
def test_animated_image_gives_first_frame(fmt: str, params: dict[str, Any]) -> None:
    first, *rest = frames(GREEN, RED, BLUE)
    data = encode(first, fmt, save_all=True, append_images=rest, duration=100, loop=0, **params)
    with Image.open(io.BytesIO(data)) as raw:
        assert getattr(raw, "n_frames", 1) == 3  # really animated
    decoded = decode(data, max_pixels=LIMIT)
    assert decoded.format == fmt
    assert (decoded.width, decoded.height) == (16, 12)
    assert decoded.image.mode == "RGB"
    assert close_to(decoded.image.getpixel((8, 6)), GREEN, tolerance=5)


@pytest.mark.parametrize(("fmt", "params"), [("TIFF", {}), ("BMP", {}), ("WEBP", {"quality": 95}),
                                           ("HEIF", {"quality": 95}), ("AVIF", {"quality": 95})])
def test_still_formats(fmt: str, params: dict[str, Any]) -> None:
    decoded = decode(encode(corners(), fmt, **params), max_pixels=LIMIT)
    assert isinstance(decoded, DecodedImage)
    assert decoded.format == fmt
    assert (decoded.width, decoded.height) == (60, 40)
    assert decoded.image.mode == "RGB"
    got = quadrant_colours(decoded.image)
    assert all(close_to(g, e, 10) for g, e in zip(got, (RED, GREEN, BLUE, YELLOW), strict=True))


def test_png_named_jpg_is_decoded_by_content(tmp_path: Path) -> None:
    path = tmp_path / "holiday.jpg"
    path.write_bytes(encode(corners(), "PNG"))
    decoded = decode(path.read_bytes(), max_pixels=LIMIT)
    assert decoded.format == "PNG"
    assert decoded.image.getpixel((5, 5)) == RED


def test_big_jpeg_with_draft_reports_full_size() -> None:
    data = encode(corners(4000, 3000), "JPEG", quality=90)
    decoded = decode(data, max_pixels=LIMIT, draft_size=1024)
    assert (decoded.width, decoded.height) == (4000, 3000)
    assert decoded.image.size == (2000, 1500)  # scaled by 2: both sides still >= 1024
    assert decoded.image.mode == "RGB"
    assert decoded.format == "JPEG"

    full = decode(data, max_pixels=LIMIT)
    assert full.image.size == (4000, 3000)


def test_mpo_camera_jpeg_uses_draft_and_first_frame() -> None:
    # Many phone JPEGs carry a second picture (MPF); Pillow reports them as "MPO".
    first, second = Image.new("RGB", (1600, 1200), RED), Image.new("RGB", (1600, 1200), BLUE)
    data = encode(first, "MPO", save_all=True, append_images=[second])
    decoded = decode(data, max_pixels=LIMIT, draft_size=300)
    assert decoded.format == "MPO"
    assert (decoded.width, decoded.height) == (1600, 1200)
    assert decoded.image.size == (400, 300)
    assert close_to(decoded.image.getpixel((200, 150)), RED, tolerance=5)


def test_draft_is_not_applied_to_other_formats() -> None:
    decoded = decode(encode(corners(400, 300), "PNG"), max_pixels=LIMIT, draft_size=50)
    assert decoded.image.size == (400, 300)


def test_eps_is_refused_without_running_ghostscript() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n"
    with pytest.raises(ImageError) as exc:
        decode(eps, max_pixels=LIMIT)
    assert str(exc.value) == "unsupported image format: EPS"


# --- bad input -------------------------------------------------------------------------------


def test_empty_file() -> None:
    with pytest.raises(ImageError) as exc:
        decode(b"", max_pixels=LIMIT)
    assert str(exc.value) == "empty file"


@pytest.mark.parametrize(
    "data",
    [random.Random(7).randbytes(4096), b"just some text, not a photo\n" * 40, b"\x00"],
    ids=["random", "text", "one-byte"],
)
def test_not_an_image(data: bytes) -> None:
    with pytest.raises(ImageError) as exc:
        decode(data, max_pixels=LIMIT)
    assert str(exc.value) == "not an image (cannot identify image file)"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated(fmt: str) -> None:
    data = encode(corners(300, 200), fmt)
    with pytest.raises(ImageError) as exc:
        decode(data[: len(data) // 2], max_pixels=LIMIT)
    assert_reason(exc, "truncated image (")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_corrupt_png_pixel_data() -> None:
    data = bytearray(encode(corners(), "PNG"))
    data[data.index(b"IDAT") + 12] ^= 0x55  # inside the zlib stream
    with pytest.raises(ImageError) as exc:
        decode(bytes(data), max_pixels=LIMIT)
    assert str(exc.value) == "corrupt image: OSError: broken data stream when reading image file"


def test_corrupt_png_header_is_not_an_image() -> None:
    # A bad IHDR checksum fails inside Image.open, which reports every open failure as
    # UnidentifiedImageError.
    data = bytearray(encode(corners(), "PNG"))
    data[20] ^= 0xFF
    with pytest.raises(ImageError) as exc:
        decode(bytes(data), max_pixels=LIMIT)
    assert str(exc.value) == "not an image (cannot identify image file)"


def test_decompression_bomb_is_refused_before_decoding(recwarn: pytest.WarningsRecorder) -> None:
    bomb = png_claiming(30000, 30000)
    assert len(bomb) < 200
    with pytest.raises(ImageError) as exc:
        decode(bomb, max_pixels=LIMIT)
    # Above 2x Image.MAX_IMAGE_PIXELS Pillow refuses in Image.open already; same reason format.
    assert str(exc.value) == "too many pixels: 900000000 > limit 100000000"
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_too_many_pixels_for_our_limit_but_not_pillows(recwarn: pytest.WarningsRecorder) -> None:
    with pytest.raises(ImageError) as exc:
        decode(png_claiming(12000, 10000), max_pixels=LIMIT)  # 120 MP: Pillow only warns
    assert str(exc.value) == "too many pixels: 12000x10000 = 120000000 > limit 100000000"
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_small_max_pixels() -> None:
    data = encode(corners(100, 100), "JPEG")
    with pytest.raises(ImageError) as exc:
        decode(data, max_pixels=9999)
    assert str(exc.value) == "too many pixels: 100x100 = 10000 > limit 9999"
    assert decode(data, max_pixels=10000).width == 100


def test_pillow_globals_untouched() -> None:
    before = (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for data in (png_claiming(30000, 30000), png_claiming(12000, 10000), b"x"):
            with pytest.raises(ImageError):
                decode(data, max_pixels=LIMIT)
        # Our suppression is scoped: outside decode, Pillow's warning is still raised.
        with pytest.raises(Image.DecompressionBombWarning):
            Image.open(io.BytesIO(png_claiming(12000, 10000)))
    after = (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS)
    assert after == before


def test_bad_arguments_are_value_errors() -> None:
    data = encode(corners(), "PNG")
    with pytest.raises(ValueError, match="max_pixels"):
        decode(data, max_pixels=0)
    with pytest.raises(ValueError, match="draft_size"):
        decode(data, max_pixels=LIMIT, draft_size=0)


def test_short_png_header_value_error_is_wrapped() -> None:
    # Pillow raises ValueError here (not OSError): every exception type must become ImageError.
    ihdr = struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0)[:12]

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
    with pytest.raises(ImageError) as exc:
        decode(data, max_pixels=LIMIT)
    assert str(exc.value) == "corrupt image: ValueError: Truncated IHDR chunk"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (SyntaxError("broken PNG file"), "corrupt image: SyntaxError: broken PNG file"),
        (struct.error("unpack requires a buffer of 4 bytes"), "corrupt image: error: unpack"),
        (IndexError("list index out of range"), "corrupt image: IndexError: list index"),
        (TypeError("bad operand"), "corrupt image: TypeError: bad operand"),
        (ZeroDivisionError("division by zero"), "corrupt image: ZeroDivisionError: division"),
        (RecursionError(), "corrupt image: RecursionError"),
        (EOFError(), "truncated image (unexpected end of data)"),
        (OSError("image file is truncated"), "truncated image (image file is truncated)"),
        (MemoryError(), "out of memory while decoding image (MemoryError)"),
        (ValueError("x\n" * 300), "corrupt image: ValueError: x x x"),
    ],
)
def test_any_pillow_exception_becomes_image_error(
    monkeypatch: pytest.MonkeyPatch, error: Exception, reason: str
) -> None:
    def broken_open(*args: Any, **kwargs: Any) -> Image.Image:
        raise error

    monkeypatch.setattr(Image, "open", broken_open)
    with pytest.raises(ImageError) as exc:
        decode(b"whatever", max_pixels=LIMIT)
    assert_reason(exc, reason)
    assert exc.value.__cause__ is error


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_formats_check_pixels_from_the_header_and_refuse_truncation(fmt: str) -> None:
    data = encode(Image.new("RGB", (1200, 900), RED), fmt, quality=60)
    with pytest.raises(ImageError, match=r"too many pixels: 1200x900"):
        decode(data, max_pixels=1_000_000)
    with pytest.raises(ImageError):
        decode(data[: len(data) // 2], max_pixels=LIMIT)

