"""One file's own metadata blocks, by format: JPEG, PNG and GIF by our walkers (no Pillow: a
PNG's ``getexif()`` would decode the image when eXIf follows IDAT, and its text chunks would be
stored whatever their size); WebP, TIFF, HEIC/HEIF, AVIF by ``Image.open``, which reads only
headers. BMP carries none."""

from __future__ import annotations

from io import BytesIO

import pillow_heif
from PIL import Image, TiffImagePlugin

from watcherd.metadata import containers

pillow_heif.register_heif_opener()

_PILLOW_FORMATS = ["WEBP", "TIFF", "HEIF", "AVIF"]
IPTC_TIFF_TAG = 33723


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
    if found == "BMP":
        return containers.Blocks(), None
    return _pillow(data)


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
        if isinstance(im, TiffImagePlugin.TiffImageFile):
            raw = im.tag_v2._tagdata.get(IPTC_TIFF_TAG)  # as bytes, whatever its type says
            out.iptc = raw if isinstance(raw, bytes) else None
            return out, im.getexif()  # IFD0 is the file's own: parsed from the file
        raw = im.info.get("exif")
        out.exif = raw if isinstance(raw, bytes) and raw else None
    return out, None
