"""Thumbnails from untrusted image bytes: one encoded image per bounding-box size.

The image is decoded once (a JPEG by DCT scaling straight to about the biggest size, see
:func:`watcherd.media.images.decode`); the biggest thumbnail is resized from that, and each
smaller one from the previous, already reduced, image. An embedded colour profile is applied to
the biggest thumbnail (not the bigger decoded image), so every thumbnail is sRGB.
Problems with the bytes raise :class:`~watcherd.media.images.ImageError`; bad arguments raise
``ValueError``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from watcherd.media.colour import to_srgb
from watcherd.media.images import DecodedImage, decode

__all__ = ["FORMATS", "Thumbnail", "ThumbnailResult", "fit", "make_thumbnails", "thumbnails_of"]

FORMATS = ("webp", "jpeg")
# Largest side each encoder can write (WebP's format limit; libjpeg's JPEG_MAX_DIMENSION).
_MAX_SIDE = {"webp": 16383, "jpeg": 65500}

# Resize by an integer box reduction first while the remaining factor stays >= this, then LANCZOS:
# Pillow documents 3.0 as indistinguishable from plain LANCZOS in most cases, and it is faster.
_REDUCING_GAP = 3.0
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Thumbnail:
    size: int  # the configured bounding-box size (longest side <= size)
    width: int
    height: int
    format: str  # "webp" or "jpeg"
    data: bytes


@dataclass(frozen=True)
class ThumbnailResult:
    width: int  # full image width after EXIF orientation
    height: int
    format: str  # source format, e.g. "JPEG"
    thumbnails: list[Thumbnail]  # one per distinct size, in the order the sizes were given


def make_thumbnails(
    data: bytes,
    sizes: Sequence[int],
    *,
    fmt: str = "webp",
    quality: int = 80,
    max_pixels: int,
) -> ThumbnailResult:
    """Decode ``data`` and encode one thumbnail per size (longest side <= size, aspect kept).

    An image already inside a box is kept at its own size (never upscaled). ``fmt="webp"`` keeps
    transparency; ``fmt="jpeg"`` flattens it onto white. Duplicate sizes give one thumbnail.
    """
    _check(sizes, fmt, quality)
    decoded = decode(data, max_pixels=max_pixels, draft_size=max(sizes), to_srgb_now=False)
    return thumbnails_of(decoded, sizes, fmt=fmt, quality=quality)


def _check(sizes: Sequence[int], fmt: str, quality: int) -> list[int]:
    if fmt not in FORMATS:
        raise ValueError(f"thumbnail format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"thumbnail quality must be 1..100, got {quality}")
    wanted = list(dict.fromkeys(sizes))
    if not wanted:
        raise ValueError("no thumbnail sizes given")
    if any(not 1 <= size <= _MAX_SIDE[fmt] for size in wanted):
        raise ValueError(f"{fmt} thumbnail sizes must be 1..{_MAX_SIDE[fmt]}, got {list(sizes)}")
    return wanted


def thumbnails_of(decoded: DecodedImage, sizes: Sequence[int], *, fmt: str = "webp",
                  quality: int = 80) -> ThumbnailResult:
    """The thumbnails of pixels already decoded (drafted to about ``max(sizes)``; an ICC profile
    left in ``decoded.icc_profile`` is applied at the biggest thumbnail's size)."""
    wanted = _check(sizes, fmt, quality)
    full_w, full_h = decoded.width, decoded.height
    current = decoded.image
    made: dict[int, Thumbnail] = {}
    for size in sorted(wanted, reverse=True):
        target = fit(full_w, full_h, size)
        if current.size != target:
            current = current.resize(target, Image.Resampling.LANCZOS, reducing_gap=_REDUCING_GAP)
        if size == max(wanted):  # the colour profile, once, at the biggest thumbnail's size
            current = to_srgb(current, decoded.icc_profile)
        made[size] = Thumbnail(
            size=size,
            width=target[0],
            height=target[1],
            format=fmt,
            data=_encode(current, fmt, quality),
        )
    return ThumbnailResult(
        width=full_w,
        height=full_h,
        format=decoded.format,
        thumbnails=[made[size] for size in wanted],
    )


def fit(width: int, height: int, size: int) -> tuple[int, int]:
    """The (width, height) of a ``width`` x ``height`` image shrunk into a ``size`` box.

    Aspect ratio kept (rounded, each side at least 1); never larger than the image itself.
    """
    longest = max(width, height)
    if longest <= size:
        return width, height
    if width >= height:
        return size, max(1, round(height * size / width))
    return max(1, round(width * size / height)), size


def _encode(image: Image.Image, fmt: str, quality: int) -> bytes:
    out = io.BytesIO()
    if fmt == "webp":
        image.save(out, "WEBP", quality=quality)
    else:
        if image.mode == "RGBA":
            flat = Image.new("RGB", image.size, _WHITE)
            flat.paste(image, mask=image.getchannel("A"))
            image = flat
        image.save(out, "JPEG", quality=quality, optimize=False)
    return out.getvalue()
