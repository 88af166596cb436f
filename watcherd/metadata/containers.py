"""Finding the metadata blocks in a file without decoding it: JPEG segments (APP1 EXIF and XMP,
APP13 Photoshop IPTC), PNG chunks (``eXIf`` and the XMP ``iTXt``, before or after IDAT), the XMP
application extension of a GIF, and the TIFF header of TIFF-based RAW files. Walks only the
structure (every step moves forward), and never copies an XMP packet over :data:`MAX_XMP`."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from PIL import Image

MAX_XMP = 1 << 20  # bytes of XMP parsed at most; a real packet is a few KB

XMP_JPEG = b"http://ns.adobe.com/xap/1.0/\x00"
XMP_PNG = b"XML:com.adobe.xmp"
XMP_GIF = b"\x21\xff\x0bXMP DataXMP"
GIF_TRAILER = b"\x01\xff\xfe\xfd\xfc"  # the start of the 258-byte "magic trailer"


@dataclass
class Blocks:
    """The raw blocks found: EXIF (a TIFF structure, maybe prefixed ``Exif\\0\\0``), an XMP
    packet, IPTC-IIM records; ``notes`` say what was damaged or skipped."""

    exif: bytes | None = None
    xmp: bytes | None = None
    iptc: bytes | None = None
    notes: list[str] = field(default_factory=list)

    def take_xmp(self, view: memoryview | bytes, size: int | None = None) -> None:
        size = len(view) if size is None else size
        if self.xmp is not None:
            return
        if size > MAX_XMP:
            self.notes.append(f"XMP packet of {size / 1e6:.0f} MB skipped (limit 1 MB)")
            return
        self.xmp = bytes(view)


def jpeg(data: bytes) -> Blocks:
    """The metadata segments before a JPEG's first scan."""
    out, view, pos = Blocks(), memoryview(data), 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            out.notes.append(f"JPEG segments broken at byte {pos}")
            break
        marker = data[pos + 1]
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:
            pos += 1 if marker == 0xFF else 2  # fill byte, or a marker without a length
            continue
        if marker in (0xDA, 0xD9):  # start of scan, end of image: no metadata after
            return out
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if end > len(data):
            out.notes.append(f"JPEG segment 0x{marker:02X} truncated")
        body = view[pos + 4:end]
        if marker == 0xE1 and body[:6] == b"Exif\x00\x00" and out.exif is None:
            out.exif = bytes(body[6:])
        elif marker == 0xE1 and body[:len(XMP_JPEG)] == XMP_JPEG:
            out.take_xmp(body[len(XMP_JPEG):])
        elif marker == 0xED and body[:14] == b"Photoshop 3.0\x00" and out.iptc is None:
            out.iptc = photoshop_iptc(bytes(body[14:]))
        pos = max(end, pos + 4)
    if not out.notes:
        out.notes.append("JPEG truncated before its image data")
    return out


def photoshop_iptc(data: bytes) -> bytes | None:
    """The IPTC-IIM resource (0x0404) among Photoshop ``8BIM`` image resources."""
    pos = 0
    while pos + 12 <= len(data) and data[pos:pos + 4] == b"8BIM":
        rid = int.from_bytes(data[pos + 4:pos + 6], "big")
        name_len = data[pos + 6]
        pos += 6 + ((name_len + 2) & ~1)  # Pascal name, padded to even
        size = int.from_bytes(data[pos:pos + 4], "big")
        if rid == 0x0404:
            return data[pos + 4:pos + 4 + size]
        pos += 4 + size + (size & 1)
    return None


def png(data: bytes) -> Blocks:
    """``eXIf`` and the XMP ``iTXt`` of a PNG, wherever they are (IDAT is skipped, not read)."""
    out, view, pos = Blocks(), memoryview(data), 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, start = data[pos + 4:pos + 8], pos + 8
        end = start + length
        if end > len(data):
            out.notes.append(f"PNG chunk {kind.decode('latin-1')!r} truncated")
            break
        if kind == b"eXIf" and out.exif is None:
            out.exif = bytes(view[start:end])
        elif kind == b"iTXt" and data[start:start + len(XMP_PNG) + 1] == XMP_PNG + b"\x00":
            _png_xmp(out, data, start + len(XMP_PNG) + 1, end)
        elif kind == b"IEND":
            return out
        pos = end + 4
    if not out.notes:
        out.notes.append("PNG truncated (no IEND chunk)")
    return out


def _png_xmp(out: Blocks, data: bytes, pos: int, end: int) -> None:
    """An iTXt after its keyword: compression flag and method, language, translated keyword
    (both NUL-terminated), then the text."""
    view = memoryview(data)
    compressed = data[pos] == 1
    lang_end = data.find(b"\x00", pos + 2, end)
    text_start = data.find(b"\x00", lang_end + 1, end) + 1 if lang_end >= 0 else 0
    if text_start <= 0:
        out.notes.append("PNG XMP chunk malformed")
        return
    if not compressed:
        out.take_xmp(view[text_start:end])
        return
    inflate = zlib.decompressobj()
    try:
        text = inflate.decompress(view[text_start:end], MAX_XMP + 1)
    except zlib.error:
        out.notes.append("PNG XMP chunk: bad compressed data")
        return
    if len(text) > MAX_XMP:
        out.notes.append("XMP packet of over 1 MB (compressed in PNG) skipped (limit 1 MB)")
        return
    out.take_xmp(text)


def gif(data: bytes) -> Blocks:
    """The XMP packet of a GIF's ``XMP DataXMP`` application extension. The packet is stored
    raw, as if it were sub-blocks, and ends where the magic trailer starts."""
    out = Blocks()
    start = data.find(XMP_GIF, 13)
    if start < 0:
        return out
    start += len(XMP_GIF)
    end = data.find(GIF_TRAILER, start)
    if end < 0:
        out.notes.append("GIF XMP extension has no trailer")
        return out
    out.take_xmp(memoryview(data)[start:end])
    return out


def webp(data: bytes) -> Blocks:
    """The ``EXIF`` and ``XMP `` chunks of a WebP (RIFF) file; nothing is decoded."""
    out, view, pos = Blocks(), memoryview(data), 12
    end_of_riff = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    while pos + 8 <= end_of_riff:
        kind, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        start, end = pos + 8, pos + 8 + size
        if end > len(data):
            out.notes.append(f"WebP chunk {kind.decode('latin-1')!r} truncated")
            break
        if kind == b"EXIF" and out.exif is None:
            out.exif = bytes(view[start:end])
        elif kind == b"XMP ":
            out.take_xmp(view[start:end])
        pos = end + (size & 1)
    return out


# TIFF with a magic number of its own: Olympus ORF ("IIRO", older "IIRS"; "MMOR" big-endian)
# and Panasonic RW2 ("IIU\0"). The rest of the header (IFD0's offset) is TIFF's.
_RAW_MAGIC = {b"IIRO": b"II*\x00", b"IIRS": b"II*\x00", b"IIU\x00": b"II*\x00",
              b"MMOR": b"MM\x00*"}


def tiff_like(data: bytes) -> bool:
    """A TIFF-based RAW whose magic number is not TIFF's (ORF, RW2)."""
    return bytes(data[:4]) in _RAW_MAGIC


def exif_from_tiff_header(data: bytes) -> Image.Exif:
    """The IFDs of a TIFF-based file (TIFF, DNG, CR2, NEF, ARW, PEF; ORF ``IIRO``/``IIRS``/
    ``MMOR`` and RW2 ``IIU\\0`` are read as TIFF): IFD0 in the result, ``get_ifd(0x8769)`` the
    Exif IFD, ``get_ifd(0x8825)`` GPS. Raises ValueError when ``data`` does not start with a TIFF
    header (Pillow's parser keeps what it can reach of a damaged one)."""
    head = bytes(data[:4])
    if head in _RAW_MAGIC:
        data = _RAW_MAGIC[head] + data[4:]
    elif head not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        raise ValueError("not a TIFF header")
    exif = Image.Exif()
    exif.load(data)
    return exif


def open_exif(raw: bytes) -> Image.Exif:
    """An EXIF block (``Exif\\0\\0`` prefix or not) as Pillow's mapping."""
    exif = Image.Exif()
    exif.load(raw if raw[:6] == b"Exif\x00\x00" else b"Exif\x00\x00" + raw)
    return exif

