"""Embedded ICC profiles: decode converts to sRGB, so thumbnails and embeddings see the colours
a colour-managed viewer shows. Profiles are built with watcherd.testing.rgb_icc_profile (no
profile files ship here) and read by the real littlecms inside Pillow."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image, ImageCms

from watcherd.media.images import decode
from watcherd.media.thumbnails import make_thumbnails
from watcherd.testing import DISPLAY_P3_PRIMARIES, SRGB_PRIMARIES, rgb_icc_profile

LIMIT = 100_000_000
# A profile whose channels are sRGB's primaries rotated: stored "red" means sRGB green. Decisive:
# read as sRGB the pixel is red, converted it is green.
GBR = rgb_icc_profile((SRGB_PRIMARIES[1], SRGB_PRIMARIES[2], SRGB_PRIMARIES[0]),
                      description="rotated primaries")
P3 = rgb_icc_profile(DISPLAY_P3_PRIMARIES, description="Display P3")
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def close(a: tuple[int, ...], b: tuple[int, ...], tol: int) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_profile_is_applied(fmt: str) -> None:
    data = encode(Image.new("RGB", (32, 32), (255, 0, 0)), fmt, icc_profile=GBR,
                  **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    px = decode(data, max_pixels=LIMIT).image.getpixel((16, 16))
    assert close(px, (0, 255, 0), 12), px


def test_display_p3_becomes_more_saturated_srgb() -> None:
    """P3 red is outside sRGB: a P3 (200, 30, 30) is a deeper red in sRGB terms."""
    data = encode(Image.new("RGB", (32, 32), (200, 30, 30)), "PNG", icc_profile=P3)
    r, g, b = decode(data, max_pixels=LIMIT).image.getpixel((16, 16))
    assert r > 205 and g < 15 and b < 15, (r, g, b)


@pytest.mark.parametrize("icc", [SRGB, b"x" * 300, GBR[:200]], ids=["srgb", "junk", "cut"])
def test_srgb_and_unusable_profiles_leave_pixels_alone(icc: bytes) -> None:
    data = encode(Image.new("RGB", (16, 16), (200, 30, 30)), "PNG", icc_profile=icc)
    assert decode(data, max_pixels=LIMIT).image.getpixel((8, 8)) == (200, 30, 30)


def test_alpha_is_kept_through_the_conversion() -> None:
    data = encode(Image.new("RGBA", (16, 16), (255, 0, 0, 100)), "PNG", icc_profile=GBR)
    decoded = decode(data, max_pixels=LIMIT).image
    assert decoded.mode == "RGBA"
    px = decoded.getpixel((8, 8))
    assert px[3] == 100 and close(px[:3], (0, 255, 0), 12), px


def test_grey_image_with_an_rgb_profile_is_left_alone() -> None:
    data = encode(Image.new("L", (16, 16), 90), "PNG", icc_profile=GBR)
    assert decode(data, max_pixels=LIMIT).image.getpixel((8, 8)) == (90, 90, 90)


@pytest.mark.parametrize("fmt", ["webp", "jpeg"])
def test_thumbnails_are_srgb(fmt: str) -> None:
    data = encode(Image.new("RGB", (400, 300), (255, 0, 0)), "JPEG", quality=95, icc_profile=GBR)
    thumb = make_thumbnails(data, [64], fmt=fmt, quality=95, max_pixels=LIMIT).thumbnails[0]
    with Image.open(io.BytesIO(thumb.data)) as im:
        assert close(im.convert("RGB").getpixel((32, 24)), (0, 255, 0), 16)
        assert "icc_profile" not in im.info  # plain sRGB: no profile needed to view it right
