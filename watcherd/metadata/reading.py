"""One file's own metadata blocks, by format: JPEG, PNG, GIF and WebP by our walkers (no
Pillow: a PNG's ``getexif()`` decodes the image when eXIf follows IDAT and its text chunks are
stored whatever their size; a WebP's ``Image.open`` sets up libwebp's decoder, 1.4 ms); TIFF by
Pillow's EXIF parser on its header; HEIC/HEIF, AVIF and JPEG XL by ``Image.open``, which reads
only the boxes. BMP carries none."""

from __future__ import annotations

from io import BytesIO

import pillow_heif
import pillow_jxl  # noqa: F401  (registers JPEG XL: its Exif and XMP boxes through Image.open)
from PIL import Image

from watcherd.metadata import containers, rawfiles

pillow_heif.register_heif_opener()

_PILLOW_FORMATS = ["HEIF", "AVIF", "JXL"]
IPTC_TIFF_TAG, XMP_TIFF_TAG = 33723, 700


def kind(data: bytes) -> str:
    """The container, from the first bytes."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:2] == b"BM":
        return "BMP"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if containers.tiff_like(data):  # ORF, RW2: _tiff reads them through their TIFF header
        return "TIFF"
    if rawfiles.is_cr3(data):
        return "CR3"
    if rawfiles.is_raf(data):
        return "RAF"
    return "other"


def blocks(data: bytes) -> tuple[containers.Blocks, Image.Exif | None]:
    """The raw EXIF, XMP and IPTC blocks, and for TIFF the EXIF already parsed by Pillow."""
    found = kind(data)
    if found == "JPEG":
        return containers.jpeg(data), None
    if found == "PNG":
        return containers.png(data), None
    if found == "GIF":
        return containers.gif(data), None
    if found == "WEBP":
        return containers.webp(data), None
    if found == "TIFF":
        try:
            return _tiff(data)
        except Exception as e:  # a header Pillow's parser gives up on
            return containers.Blocks(notes=[f"TIFF header unreadable ({type(e).__name__})"]), None
    if found == "BMP":
        return containers.Blocks(), None
    if found == "RAF":
        return rawfiles.raf(data), None
    if found == "CR3":
        try:
            return rawfiles.cr3(data)
        except Exception as e:  # a damaged file: what the walk could not reach is a note
            return containers.Blocks(notes=[f"CR3 unreadable ({type(e).__name__})"]), None
    return _pillow(data)


def _tiff(data: bytes) -> tuple[containers.Blocks, Image.Exif | None]:
    """TIFF through its header (Pillow's Exif), not Image.open: IFD0 is parsed once. XMP is
    tag 700, IPTC tag 33723."""
    out = containers.Blocks()
    exif = containers.exif_from_tiff_header(data)
    xmp = exif.get(XMP_TIFF_TAG)
    if isinstance(xmp, bytes):
        out.take_xmp(xmp)
    # the raw bytes, as Pillow's getiptcinfo takes them (typed LONG, the value is cut to one)
    raw = getattr(getattr(exif, "_info", None), "_tagdata", {})
    iptc = raw.get(IPTC_TIFF_TAG) if isinstance(raw, dict) else None
    out.iptc = iptc if isinstance(iptc, bytes) else None
    return out, exif


def _pillow(data: bytes) -> tuple[containers.Blocks, Image.Exif | None]:
    out = containers.Blocks()
    try:
        im = Image.open(BytesIO(data), formats=_PILLOW_FORMATS)
    except Exception as e:  # not an image Pillow knows, or too damaged
        out.notes.append(f"not a readable image ({type(e).__name__})")
        return out, None
    with im:
        xmp = im.info.get("xmp")
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8")
        if isinstance(xmp, bytes):
            out.take_xmp(xmp)
        raw = im.info.get("exif")
        out.exif = raw if isinstance(raw, bytes) and raw else None
    return out, None
