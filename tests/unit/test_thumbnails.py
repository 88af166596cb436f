"""make_thumbnails: sizes, aspect, orientation, alpha, formats, bad bytes."""

from __future__ import annotations

import functools
import io
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from watcherd.media.images import ImageError
from watcherd.media.thumbnails import Thumbnail, ThumbnailResult, fit, make_thumbnails

LIMIT = 100_000_000
RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
WHITE = (255, 255, 255)
PILLOW_FORMAT = {"webp": "WEBP", "jpeg": "JPEG"}


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def corners(width: int, height: int) -> Image.Image:
    """Quadrants: top-left red, top-right green, bottom-left blue, bottom-right yellow."""
    im = Image.new("RGB", (width, height), RED)
    im.paste(GREEN, (width // 2, 0, width, height // 2))
    im.paste(BLUE, (0, height // 2, width // 2, height))
    im.paste(YELLOW, (width // 2, height // 2, width, height))
    return im


def close_to(actual: Any, expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return len(actual) == len(expected) and all(
        abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)
    )


def opened(thumb: Thumbnail) -> Image.Image:
    """The thumbnail decoded back with Pillow, checked against its recorded format and size."""
    im = Image.open(io.BytesIO(thumb.data))
    im.load()
    assert im.format == PILLOW_FORMAT[thumb.format]
    assert im.size == (thumb.width, thumb.height)
    return im


def check_result(result: ThumbnailResult, sizes: list[int], fmt: str) -> None:
    """Every invariant a valid result must have, whatever the image."""
    assert result.width >= 1 and result.height >= 1
    assert [t.size for t in result.thumbnails] == list(dict.fromkeys(sizes))
    for thumb in result.thumbnails:
        assert thumb.format == fmt
        assert max(thumb.width, thumb.height) <= thumb.size
        assert thumb.width <= result.width and thumb.height <= result.height
        if max(result.width, result.height) > thumb.size:
            assert max(thumb.width, thumb.height) == thumb.size
        else:
            assert (thumb.width, thumb.height) == (result.width, result.height)
        opened(thumb)


# --- sizes and aspect ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["webp", "jpeg"])
def test_multiple_sizes_keep_aspect(fmt: str) -> None:
    result = make_thumbnails(
        encode(corners(1000, 500), "PNG"), [64, 256], fmt=fmt, max_pixels=LIMIT
    )
    assert (result.width, result.height, result.format) == (1000, 500, "PNG")
    assert [(t.size, t.width, t.height, t.format) for t in result.thumbnails] == [
        (64, 64, 32, fmt),
        (256, 256, 128, fmt),
    ]
    check_result(result, [64, 256], fmt)
    for thumb in result.thumbnails:
        im = opened(thumb).convert("RGB")
        w, h = im.size
        assert close_to(im.getpixel((w // 4, h // 4)), RED)
        assert close_to(im.getpixel((3 * w // 4, 3 * h // 4)), YELLOW)


def test_portrait_and_duplicate_sizes() -> None:
    result = make_thumbnails(encode(corners(300, 1200), "PNG"), [256, 100, 256], max_pixels=LIMIT)
    assert [(t.size, t.width, t.height) for t in result.thumbnails] == [
        (256, 64, 256),
        (100, 25, 100),
    ]


def test_small_image_is_not_upscaled() -> None:
    result = make_thumbnails(encode(corners(50, 30), "PNG"), [256, 40, 64], max_pixels=LIMIT)
    assert [(t.size, t.width, t.height) for t in result.thumbnails] == [
        (256, 50, 30),
        (40, 40, 24),
        (64, 50, 30),
    ]
    check_result(result, [256, 40, 64], "webp")


@pytest.mark.parametrize(
    ("width", "height", "size", "expected"),
    [
        (4000, 3000, 1024, (1024, 768)),
        (3000, 4000, 256, (192, 256)),
        (100, 100, 256, (100, 100)),
        (10000, 1, 256, (256, 1)),
        (1, 10000, 256, (1, 256)),
        (257, 100, 256, (256, 100)),
    ],
)
def test_fit(width: int, height: int, size: int, expected: tuple[int, int]) -> None:
    assert fit(width, height, size) == expected


def test_big_jpeg_uses_draft_and_reports_full_size() -> None:
    data = encode(corners(4000, 3000), "JPEG", quality=90)
    result = make_thumbnails(data, [256, 1024], max_pixels=LIMIT)
    assert (result.width, result.height, result.format) == (4000, 3000, "JPEG")
    assert [(t.size, t.width, t.height) for t in result.thumbnails] == [
        (256, 256, 192),
        (1024, 1024, 768),
    ]
    big = opened(result.thumbnails[1]).convert("RGB")
    assert close_to(big.getpixel((100, 100)), RED)
    assert close_to(big.getpixel((900, 100)), GREEN)
    assert close_to(big.getpixel((100, 700)), BLUE)


# --- orientation and alpha ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [(6, (BLUE, RED, YELLOW, GREEN)), (8, (GREEN, YELLOW, RED, BLUE))],
)
@pytest.mark.parametrize("fmt", ["webp", "jpeg"])
def test_thumbnail_is_rotated_by_exif(
    orientation: int, expected: tuple[tuple[int, int, int], ...], fmt: str
) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(corners(800, 400), "JPEG", exif=exif, quality=95)
    result = make_thumbnails(data, [100], fmt=fmt, max_pixels=LIMIT)
    assert (result.width, result.height) == (400, 800)
    (thumb,) = result.thumbnails
    assert (thumb.width, thumb.height) == (50, 100)
    im = opened(thumb)
    # The pixels are rotated and no orientation tag is left to rotate them a second time.
    assert im.getexif().get(0x0112) is None
    im = im.convert("RGB")
    points = [(12, 25), (37, 25), (12, 75), (37, 75)]
    got = [im.getpixel(p) for p in points]
    assert all(close_to(g, e) for g, e in zip(got, expected, strict=True)), got


def transparent_palette_png() -> bytes:
    im = Image.new("P", (40, 20), 1)
    im.putpalette([0, 0, 0, 255, 0, 0])  # 0 black (transparent), 1 red
    im.paste(0, (0, 0, 20, 20))
    return encode(im, "PNG", transparency=0)


def test_webp_keeps_alpha() -> None:
    result = make_thumbnails(transparent_palette_png(), [20], fmt="webp", max_pixels=LIMIT)
    (thumb,) = result.thumbnails
    assert (thumb.width, thumb.height) == (20, 10)
    im = opened(thumb)
    assert im.mode == "RGBA"
    assert im.getpixel((2, 5))[3] == 0
    assert close_to(im.getpixel((17, 5)), (255, 0, 0, 255), tolerance=10)


def test_jpeg_flattens_alpha_onto_white() -> None:
    result = make_thumbnails(transparent_palette_png(), [20], fmt="jpeg", max_pixels=LIMIT)
    im = opened(result.thumbnails[0])
    assert im.mode == "RGB"
    assert close_to(im.getpixel((2, 5)), WHITE, tolerance=10)
    assert close_to(im.getpixel((17, 5)), RED, tolerance=30)


def test_opaque_source_gives_rgb_webp() -> None:
    result = make_thumbnails(encode(corners(64, 64), "PNG"), [32], max_pixels=LIMIT)
    assert opened(result.thumbnails[0]).mode == "RGB"


def test_16_bit_grey_thumbnail_is_mid_grey() -> None:
    im = Image.new("I;16", (64, 64), 32768)  # (Pillow 13: im.paste(32768) into I;16 writes 0)
    result = make_thumbnails(encode(im, "PNG"), [32], fmt="jpeg", max_pixels=LIMIT)
    pixel = opened(result.thumbnails[0]).convert("RGB").getpixel((16, 16))
    assert close_to(pixel, (128, 128, 128), tolerance=3), pixel


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"hello, not a picture\n", "not an image (cannot identify image file)"),
    ],
)
def test_bad_bytes_raise_image_error(data: bytes, reason: str) -> None:
    with pytest.raises(ImageError) as exc:
        make_thumbnails(data, [64], max_pixels=LIMIT)
    assert str(exc.value) == reason


def test_too_many_pixels() -> None:
    with pytest.raises(ImageError, match=r"^too many pixels: 400x300 = 120000 > limit 1000$"):
        make_thumbnails(encode(corners(400, 300), "JPEG"), [64], max_pixels=1000)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmt": "png"}, "format"),
        ({"fmt": "WEBP"}, "format"),
        ({"sizes": []}, "no thumbnail sizes"),
        ({"sizes": [0]}, "sizes"),
        ({"sizes": [20000], "fmt": "webp"}, "sizes"),
        ({"quality": 0}, "quality"),
        ({"quality": 101}, "quality"),
    ],
)
def test_bad_arguments_are_value_errors(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"sizes": [64], "max_pixels": LIMIT, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_thumbnails(encode(corners(10, 10), "PNG"), **args)


# --- property: mutated images give a valid result or ImageError, nothing else -------------


@functools.cache
def seeds() -> dict[str, bytes]:
    gradient = Image.linear_gradient("L").resize((48, 36))
    photo = Image.merge(
        "RGB", (gradient, gradient.rotate(90), gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    )
    rgba = photo.copy()
    rgba.putalpha(gradient)
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "jpeg": encode(photo, "JPEG", quality=85, exif=exif),
        "png": encode(rgba, "PNG"),
        "gif": encode(
            photo.convert("P"),
            "GIF",
            save_all=True,
            append_images=[photo.rotate(180).convert("P")],
            duration=50,
        ),
        "webp": encode(rgba, "WEBP", quality=80),
        "heif": encode(photo, "HEIF", quality=80),
        "avif": encode(rgba, "AVIF", quality=80),
    }


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(0, 7)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 20), st.integers(1, 16)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20), st.just(0)),
)


def mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for op, position, value in mutations:
        at = position % (len(out) + 1)
        if op == "flip" and at < len(out):
            out[at] ^= 1 << value
        elif op == "insert":
            out[at:at] = bytes([value])
        elif op == "delete":
            del out[at : at + value]
        elif op == "truncate":
            del out[at:]
    return bytes(out)


# Pillow warns (UserWarning) about the corrupt metadata that mutations create, e.g. "Corrupt EXIF
# data" or "Tag data larger than file": expected here, and not what this test is about.
@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["jpeg", "png", "gif", "webp", "heif", "avif"]),
    mutations=st.lists(mutation, min_size=1, max_size=4),
    fmt=st.sampled_from(["webp", "jpeg"]),
)
def test_mutated_bytes_give_result_or_image_error(
    name: str, mutations: list[tuple[str, int, int]], fmt: str
) -> None:
    data = mutate(seeds()[name], mutations)
    sizes = [32, 16]
    try:
        # A small pixel limit: a mutated header must not make us decode something huge.
        result = make_thumbnails(data, sizes, fmt=fmt, max_pixels=200_000)
    except ImageError as exc:
        reason = str(exc)
        assert reason and "\n" not in reason and len(reason) <= 200
        return
    check_result(result, sizes, fmt)


def test_unmutated_seeds_are_valid() -> None:
    # The property test above only means something if its seeds decode cleanly.
    for name, data in seeds().items():
        result = make_thumbnails(data, [32, 16], max_pixels=200_000)
        check_result(result, [32, 16], "webp")
        expected = (36, 48) if name == "jpeg" else (48, 36)  # the JPEG has orientation 6
        assert (result.width, result.height) == expected
