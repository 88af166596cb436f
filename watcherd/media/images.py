"""Decoding untrusted image bytes into a plain RGB or RGBA Pillow image.

Everything that can go wrong with the *bytes* (not an image, truncated, corrupt, too many pixels)
becomes an :class:`ImageError` whose message is a one-line human reason; programming errors (bad
arguments) stay ``ValueError``. Pillow's process-wide settings are never changed:
``ImageFile.LOAD_TRUNCATED_IMAGES`` stays ``False`` and ``Image.MAX_IMAGE_PIXELS`` keeps its
default, so Pillow's own decompression-bomb guard (an error above ``2 * Image.MAX_IMAGE_PIXELS``,
about 179 MP) still applies on top of ``max_pixels``.

Colour: an embedded ICC profile is applied, so the pixels are sRGB (see :mod:`watcherd.colour`).

Modes: the decoded image is always ``"RGB"`` or ``"RGBA"``. It is ``"RGBA"`` exactly when at least
one pixel is not fully opaque; an alpha channel that is opaque everywhere is dropped (``"RGB"``), so
callers can treat ``mode == "RGBA"`` as "has real transparency".

Pillow's ``DecompressionBombWarning`` is silenced with ``warnings.catch_warnings()``, which in
Python 3.11 swaps the process-wide warning filters: fine in prefork (one thread per process)
workers, racy if several threads decode at once (a warning may then be shown or hidden wrongly).
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import pillow_heif
import pillow_jxl  # noqa: F401  (registers JPEG XL with Pillow: Image.open reads .jxl)
from PIL import ExifTags, Image, UnidentifiedImageError

from watcherd.media.colour import to_srgb

__all__ = ["DecodedImage", "ImageError", "decode"]

# HEIC/HEIF (what iPhones and many Android phones write) through libheif; AVIF is Pillow's own.
# pillow-heif applies the HEIF transforms (irot/imir) itself and resets EXIF orientation to 1.
pillow_heif.register_heif_opener()

#: Formats that are recognised but refused: Pillow's EPS loader runs Ghostscript, an external
#: interpreter, on the file's contents; never do that for untrusted bytes.
REFUSED_FORMATS = frozenset({"EPS"})

_MAX_REASON = 200

# The same table as ``ImageOps.exif_transpose``. We apply it ourselves so that an unreadable or
# nonsensical orientation tag (broken EXIF on otherwise good pixels) means "as stored" instead of
# failing the photo.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_SIDES = frozenset({5, 6, 7, 8})

_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
_OBJECT_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")


class ImageError(Exception):
    """A per-file problem: the bytes are not a usable image.

    ``str(exc)`` is a one-line human reason, e.g. ``"not an image (cannot identify image file)"``,
    ``"truncated image (image file is truncated)"``, ``"too many pixels: 900000000 > limit
    100000000"``, ``"empty file"``.
    """


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # mode "RGB" or "RGBA" (RGBA only if some pixel is not opaque), loaded
    width: int  # full-resolution width after EXIF orientation (not the draft-reduced size)
    height: int  # full-resolution height after EXIF orientation
    format: str  # Pillow's format name of the source: "JPEG", "MPO", "PNG", "WEBP", "GIF", ...
    # The embedded ICC profile still to apply (``to_srgb_now=False``), else None: the pixels are
    # sRGB already (or carried no profile).
    icc_profile: bytes | None = None
    # How the pixels were obtained when the file is not an ordinary photo ("raw-preview",
    # "raw-demosaic", "poster": ``images.decode``); None for an ordinary photo.
    decode: str | None = None


def decode(data: bytes, *, max_pixels: int, draft_size: int | None = None,
           to_srgb_now: bool = True) -> DecodedImage:
    """Decode untrusted ``data`` (first frame only), apply EXIF orientation, normalise the mode.

    An embedded ICC profile is applied (the pixels become sRGB); with ``to_srgb_now=False`` an
    RGB one is left in ``icc_profile`` for the caller to apply with
    :func:`watcherd.media.colour.to_srgb` once it has made the image smaller (cheaper per pixel).

    ``max_pixels`` is checked against the header's width * height before any pixel is decoded.
    With ``draft_size``, a JPEG is decoded by DCT scaling to the smallest 1/1, 1/2, 1/4 or 1/8
    size whose both sides are still >= ``draft_size`` (much faster for big photos); other formats
    are decoded at full size. ``width``/``height`` are always the full size.

    Raises :class:`ImageError` for anything wrong with the bytes, ``ValueError`` for bad arguments.
    """
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    if draft_size is not None and draft_size < 1:
        raise ValueError(f"draft_size must be >= 1, got {draft_size}")
    if not data:
        raise ImageError("empty file")

    try:
        with warnings.catch_warnings():
            # We enforce our own limit; Pillow's warning between 1x and 2x its limit is noise.
            # (Its *error* above 2x still fires and is turned into an ImageError below.)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _decode(data, max_pixels, draft_size, to_srgb_now)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(_bomb_reason(exc, max_pixels)) from exc
    except Exception as exc:  # untrusted input: Pillow raises nearly anything
        raise ImageError(_reason(exc)) from exc


def _decode(data: bytes, max_pixels: int, draft_size: int | None,
            to_srgb_now: bool) -> DecodedImage:
    source = Image.open(io.BytesIO(data))
    result: Image.Image | None = None
    try:
        fmt = source.format or "unknown"
        if fmt in REFUSED_FORMATS:
            raise ImageError(f"unsupported image format: {fmt}")
        width, height = source.size
        if width * height > max_pixels:
            raise ImageError(
                f"too many pixels: {width}x{height} = {width * height} > limit {max_pixels}"
            )
        if draft_size is not None and fmt in ("JPEG", "MPO"):
            source.draft("RGB", (draft_size, draft_size))
        source.load()

        icc = source.info.get("icc_profile")
        icc = icc if isinstance(icc, bytes) else None
        image: Image.Image = source
        orientation = _orientation(source)
        if orientation in _TRANSPOSE:
            image = source.transpose(_TRANSPOSE[orientation])
            if orientation in _SWAPS_SIDES:
                width, height = height, width
        if image.mode == "CMYK" and icc is not None:
            image = to_srgb(image, icc)  # through its profile, not Pillow's naive formula
            icc = None
        result = _normalise(image)
        if to_srgb_now and icc is not None:
            result, icc = to_srgb(result, icc), None
        return DecodedImage(image=result, width=width, height=height, format=fmt,
                            icc_profile=icc)
    finally:
        # Release the source (and its reference to the input bytes) unless it is the result.
        if source is not result:
            source.close()


def _orientation(im: Image.Image) -> int:
    """The EXIF (or XMP) orientation, 1 when absent, unreadable or not an integer 1..8."""
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # broken EXIF on good pixels: show the pixels as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _normalise(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> "RGB", or "RGBA" when some pixel is not fully opaque."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16") or mode == "I":
        # 16-bit (or 32-bit int) greyscale: scale 0..65535 to 0..255. Pillow's direct I;16 -> L
        # conversion clips everything above 255 to white instead. The I -> L step clamps to 0..255,
        # which for mode I is the same as clamping to 0..65535 before dividing.
        grey = (im if mode == "I" else im.convert("I")).point(lambda x: x / 256)
        return grey.convert("L").convert("RGB")
    if mode == "F":
        _low, high = im.getextrema()
        if isinstance(high, (int, float)) and high <= 1.0:
            im = im.point(lambda x: x * 255)  # 0.0..1.0 data; F -> L below clamps to 0..255
        return im.convert("L").convert("RGB")
    if mode == "La":  # premultiplied; Pillow converts it only to LA
        im = im.convert("LA")
    if im.has_transparency_data:
        rgba = im if im.mode == "RGBA" else im.convert("RGBA")
        if rgba.getchannel("A").getextrema() == (255, 255):
            return rgba.convert("RGB")
        return rgba
    # 1, L, P, CMYK (Pillow already un-inverts Adobe CMYK JPEGs), YCbCr, LAB, HSV, RGBX, ...
    return im.convert("RGB")


def _bomb_reason(exc: Exception, max_pixels: int) -> str:
    match = _BOMB_PIXELS.search(str(exc))
    if match is None:
        return _one_line(f"too many pixels ({exc})")
    pixels = int(match.group(1))
    if pixels > max_pixels:
        return f"too many pixels: {pixels} > limit {max_pixels}"
    return f"too many pixels: {pixels} > Pillow's decompression-bomb limit"


def _reason(exc: BaseException) -> str:
    message = _OBJECT_REPR.sub("", str(exc)).strip()
    if isinstance(exc, UnidentifiedImageError):
        return "not an image (cannot identify image file)"
    if isinstance(exc, EOFError) or (isinstance(exc, OSError) and "truncated" in message.lower()):
        return _one_line(f"truncated image ({message or 'unexpected end of data'})")
    if isinstance(exc, MemoryError):
        return "out of memory while decoding image (MemoryError)"
    detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return _one_line(f"corrupt image: {detail}")


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."
