"""Decoding untrusted camera RAW bytes (DNG, CR2, NEF, ARW, ORF, RW2, RAF, ...) through LibRaw
(rawpy) into the same :class:`~watcherd.media.images.DecodedImage` an ordinary photo gives.

Two ways to the pixels, recorded in ``DecodedImage.decode`` (the ``images.decode`` column):

- ``"raw-preview"``: the JPEG (or bitmap) preview the camera embedded, when its long side is at
  least ``min_preview_side`` (the caller's largest thumbnail). No demosaic: LibRaw only parses
  the headers and copies the preview out, so neither the sensor data nor its memory is touched.
  A JPEG preview goes through :func:`watcherd.media.images.decode` (DCT scaling for
  ``draft_size``, ICC, mode normalisation); its own EXIF/XMP (APP1) is removed first, because
  the orientation that counts is the RAW's (LibRaw's ``sizes.flip``), and LibRaw itself writes
  an EXIF orientation into a preview that has none.
- ``"raw-demosaic"``: LibRaw develops the sensor data at half size (each 2x2 Bayer block becomes
  one pixel: no interpolation, a quarter of the pixels), camera white balance, 8-bit sRGB, and
  LibRaw applies the RAW's orientation itself.

``[images] max_pixels`` applies to what is decoded (the preview's pixels, or the half-size
output), not to the sensor: a 102 MP sensor decodes to 25.4 MP. ``width``/``height`` are the
developed image's full size after orientation, whichever way the pixels came.

Everything wrong with the bytes is a :class:`RawError` (an ``ImageError``) whose message carries
LibRaw's own reason; bad arguments are ``ValueError``.

LibRaw quirks met here: a data error prints a line ("<file>: Unexpected end of file") on the
process's stderr from C (rawpy offers no way to install LibRaw's callbacks); rawpy's messages are
bytes; and rawpy's build uses OpenMP, which can deadlock in a child forked from a parent that
already ran OpenMP code (import rawpy in the parent is harmless, decoding there is not).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import rawpy
from PIL import Image

from watcherd.media.images import (
    _SWAPS_SIDES,
    _TRANSPOSE,
    DecodedImage,
    ImageError,
    decode,
)

__all__ = ["RawError", "decode_raw", "strip_app1"]

_MAX_REASON = 200

# LibRaw's ``sizes.flip`` (dcraw's bits: 4 = swap axes, 2 = flip rows, 1 = flip columns) as the
# EXIF orientation it came from: LibRaw reads Orientation through "50132467"[orientation & 7].
# 3 = 180 degrees, 5 = 90 degrees counter-clockwise (EXIF 8), 6 = 90 degrees clockwise (EXIF 6).
_FLIP_TO_ORIENTATION = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}

# DCT-scaling-like reduction of a demosaiced or bitmap image for ``draft_size``.
_REDUCTIONS = (8, 4, 2)


class RawError(ImageError):
    """A per-file problem with RAW bytes; ``str(exc)`` is a one-line reason such as
    ``"RAW unreadable: Unsupported file format or not RAW file"`` (LibRaw's words after the
    colon) or ``"too many pixels: ..."``."""


def decode_raw(data: bytes, *, file_type: str, max_pixels: int, min_preview_side: int,
               prefer_preview: bool = True, draft_size: int | None = None,
               to_srgb_now: bool = True) -> DecodedImage:
    """Decode the RAW file ``data`` from memory; see the module docstring for the two ways.

    ``file_type`` is what ``format`` of the result says ("DNG", "CR2", ...). The embedded
    preview is used when ``prefer_preview`` and its long side is >= ``min_preview_side`` and its
    pixels are within ``max_pixels`` (a preview that fails to decode falls back to the demosaic).
    ``draft_size`` lets the decoder return a smaller image whose both sides stay >= draft_size
    (JPEG DCT scaling for a preview, a box reduction by 2, 4 or 8 after the demosaic);
    ``to_srgb_now=False`` leaves a JPEG preview's ICC profile in ``icc_profile`` (the demosaic's
    output is sRGB already).
    """
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    if min_preview_side < 1:
        raise ValueError(f"min_preview_side must be >= 1, got {min_preview_side}")
    if draft_size is not None and draft_size < 1:
        raise ValueError(f"draft_size must be >= 1, got {draft_size}")
    if not data:
        raise RawError("empty file")

    try:
        raw = rawpy.imread(io.BytesIO(data))  # header only; the buffer is shared, not copied
    except Exception as exc:  # untrusted input: LibRaw's errors, OSError, MemoryError, ...
        raise RawError(f"RAW unreadable: {_libraw_reason(exc)}") from exc
    try:
        return _decode(raw, file_type, max_pixels, min_preview_side, prefer_preview,
                       draft_size, to_srgb_now)
    except RawError:
        raise
    except Exception as exc:  # e.g. MemoryError making the Pillow image
        raise RawError(f"RAW unreadable: {_libraw_reason(exc)}") from exc
    finally:
        raw.close()  # LibRaw's sensor and working buffers, now, not at garbage collection


def _decode(raw: rawpy.RawPy, file_type: str, max_pixels: int, min_preview_side: int,
            prefer_preview: bool, draft_size: int | None, to_srgb_now: bool) -> DecodedImage:
    sizes = raw.sizes
    orientation = _FLIP_TO_ORIENTATION.get(sizes.flip, 1)
    width, height = _developed_size(sizes.width, sizes.height, sizes.pixel_aspect)
    if width < 1 or height < 1:
        raise RawError(f"RAW unreadable: no image size ({sizes.width}x{sizes.height})")
    if orientation in _SWAPS_SIDES:
        width, height = height, width
    if prefer_preview:
        preview = _preview(raw, orientation, max_pixels, min_preview_side, draft_size,
                           to_srgb_now)
        if preview is not None:
            return DecodedImage(image=preview.image, width=width, height=height,
                                format=file_type, icc_profile=preview.icc_profile,
                                decode="raw-preview")
    developed = _demosaic(raw, sizes.width, sizes.height, sizes.pixel_aspect, max_pixels)
    return DecodedImage(image=_reduce_for_draft(developed, draft_size), width=width,
                        height=height, format=file_type, decode="raw-demosaic")


def _developed_size(width: int, height: int, pixel_aspect: float) -> tuple[int, int]:
    """The size LibRaw develops a ``width`` x ``height`` sensor area to (before orientation):
    it stretches non-square pixels (a few old cameras) the way dcraw does. An aspect outside
    0.1..10 (or NaN) is a broken header's, taken as square."""
    if not 0.1 <= pixel_aspect <= 10:
        return width, height
    if pixel_aspect < 1:
        height = int(height / pixel_aspect + 0.5)
    elif pixel_aspect > 1:
        width = int(width * pixel_aspect + 0.5)
    return width, height


def _preview(raw: rawpy.RawPy, orientation: int, max_pixels: int, min_preview_side: int,
             draft_size: int | None, to_srgb_now: bool) -> DecodedImage | None:
    """The embedded preview, oriented by the RAW's flip; None when there is none, it is too
    small or too big, or it cannot be decoded (the demosaic then does the work)."""
    try:
        thumb = raw.extract_thumb()  # LibRaw picks the biggest preview
    except Exception:  # no preview, an unsupported kind, or unreadable: demosaic instead
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG and isinstance(thumb.data, bytes):
        return _jpeg_preview(thumb.data, orientation, max_pixels, min_preview_side, draft_size,
                             to_srgb_now)
    if thumb.format == rawpy.ThumbFormat.BITMAP and isinstance(thumb.data, np.ndarray):
        return _bitmap_preview(thumb.data, orientation, max_pixels, min_preview_side,
                               draft_size)
    return None


def _jpeg_preview(jpeg: bytes, orientation: int, max_pixels: int, min_preview_side: int,
                  draft_size: int | None, to_srgb_now: bool) -> DecodedImage | None:
    try:
        jpeg = strip_app1(jpeg)
        with Image.open(io.BytesIO(jpeg), formats=["JPEG"]) as header:  # header only
            width, height = header.size
    except Exception:
        return None
    if max(width, height) < min_preview_side or width * height > max_pixels:
        return None
    try:
        decoded = decode(jpeg, max_pixels=max_pixels, draft_size=draft_size,
                         to_srgb_now=to_srgb_now)
    except ImageError:  # a damaged preview in a good RAW
        return None
    image = decoded.image
    if orientation in _TRANSPOSE:
        image = image.transpose(_TRANSPOSE[orientation])
    return DecodedImage(image=image, width=decoded.width, height=decoded.height,
                        format=decoded.format, icc_profile=decoded.icc_profile)


def _bitmap_preview(pixels: np.ndarray[Any, Any], orientation: int, max_pixels: int,
                    min_preview_side: int, draft_size: int | None) -> DecodedImage | None:
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4):
        return None
    height, width = pixels.shape[:2]
    if max(width, height) < min_preview_side or width * height > max_pixels:
        return None
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    elif pixels.dtype != np.uint8:
        return None
    if pixels.shape[2] == 1:
        image = Image.fromarray(np.ascontiguousarray(pixels[:, :, 0]), "L").convert("RGB")
    else:
        image = Image.fromarray(np.ascontiguousarray(pixels[:, :, :3]), "RGB")
    image = _reduce_for_draft(image, draft_size)
    if orientation in _TRANSPOSE:
        image = image.transpose(_TRANSPOSE[orientation])
    return DecodedImage(image=image, width=width, height=height, format="BITMAP")


def _demosaic(raw: rawpy.RawPy, width: int, height: int, pixel_aspect: float,
              max_pixels: int) -> Image.Image:
    """LibRaw's half-size development, as an RGB Pillow image, oriented by LibRaw.

    The pixel limit is checked on the half size before the sensor data is unpacked, and again
    on the full size for a RAW that is not a colour filter array (a linear DNG, Foveon: LibRaw
    does not halve those)."""
    half_w, half_h = _developed_size((width + 1) // 2, (height + 1) // 2, pixel_aspect)
    _check_pixels(width, height, half_w, half_h, "half size", max_pixels)
    raw.unpack()
    if not _halved(raw):  # LibRaw develops it at full size
        full_w, full_h = _developed_size(width, height, pixel_aspect)
        _check_pixels(width, height, full_w, full_h, "not a colour filter array,", max_pixels)
    raw.dcraw_process(
        half_size=True,  # a quarter of the pixels, no interpolation
        use_camera_wb=True,  # as shot (LibRaw falls back to its daylight values)
        output_color=rawpy.ColorSpace.sRGB,
        output_bps=8,
        # user_flip left unset: LibRaw applies the RAW's own orientation
    )
    pixels = raw.dcraw_make_mem_image()
    # LibRaw's output buffer is a separate allocation: free the sensor and working buffers
    # first, so they and the Pillow copy are never held at the same time.
    raw.close()
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3) or pixels.dtype != np.uint8:
        raise RawError(f"RAW unreadable: unexpected developed image {pixels.shape} "
                       f"{pixels.dtype}")
    if pixels.shape[2] == 1:  # a monochrome sensor
        image = Image.fromarray(pixels[:, :, 0], "L").convert("RGB")
    else:
        image = Image.fromarray(pixels, "RGB")
    del pixels  # LibRaw's buffer, freed now
    return image


def _halved(raw: rawpy.RawPy) -> bool:
    """Whether LibRaw's half size halves this RAW: only a colour filter array (Bayer, X-Trans)
    is, not a linear (3-colour) DNG, a Foveon or a monochrome sensor."""
    try:
        pattern = raw.raw_pattern  # None when the data is not one value per photosite
    except NotImplementedError:  # a filter layout rawpy does not describe
        return False
    return pattern is not None and pattern.size > 1


def _check_pixels(width: int, height: int, out_w: int, out_h: int, what: str,
                  max_pixels: int) -> None:
    if out_w * out_h > max_pixels:
        raise RawError(f"too many pixels: {width}x{height} sensor, {what} {out_w}x{out_h} = "
                       f"{out_w * out_h} > limit {max_pixels}")


def _reduce_for_draft(image: Image.Image, draft_size: int | None) -> Image.Image:
    """Shrink by the biggest of 8, 4 or 2 that keeps both sides >= ``draft_size`` (what a JPEG's
    DCT scaling gives); unchanged without ``draft_size`` or when no factor fits."""
    if draft_size is None:
        return image
    scale = min(image.width // draft_size, image.height // draft_size)
    for factor in _REDUCTIONS:
        if scale >= factor:
            return image.reduce(factor)
    return image


def strip_app1(jpeg: bytes) -> bytes:
    """``jpeg`` without its APP1 segments (EXIF and XMP), so that no orientation tag inside it
    applies; the entropy-coded data and every other segment (ICC in APP2, Adobe APP14) are kept.
    Raises ValueError when the marker structure is broken before the scan."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    out = [jpeg[:2]]
    pos, end = 2, len(jpeg)
    while True:
        if pos + 2 > end:
            raise ValueError("JPEG ends before its scan")
        if jpeg[pos] != 0xFF:
            raise ValueError(f"no JPEG marker at {pos}")
        marker = jpeg[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the rest is kept as it is
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers
            out.append(jpeg[pos:pos + 2])
            pos += 2
            continue
        if pos + 4 > end:
            raise ValueError("JPEG segment header truncated")
        length = int.from_bytes(jpeg[pos + 2:pos + 4], "big")
        if length < 2 or pos + 2 + length > end:
            raise ValueError(f"JPEG segment length {length} out of range at {pos}")
        if marker != 0xE1:
            out.append(jpeg[pos:pos + 2 + length])
        pos += 2 + length
    out.append(jpeg[pos:])
    return b"".join(out)


def _libraw_reason(exc: BaseException) -> str:
    """LibRaw's own message (rawpy gives it as bytes), one line; any other exception's type
    and message."""
    arg: object = exc.args[0] if exc.args else ""
    if isinstance(arg, bytes):
        message = arg.decode("utf-8", "replace")
    elif isinstance(exc, OSError) and isinstance(arg, tuple) and len(arg) == 2:
        message = str(arg[1])  # rawpy's OSError((errno, strerror))
    elif isinstance(exc, MemoryError):
        message = "out of memory"
    else:
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    message = " ".join(message.split())
    return message if len(message) <= _MAX_REASON else message[: _MAX_REASON - 3] + "..."
