"""The metadata of RAWs that are not TIFF files (TIFF-based ones, DNG, CR2, NEF, ARW, ORF,
RW2…, are read through their TIFF header in :mod:`watcherd.metadata.reading`):

- **Fujifilm RAF**: a header, then a whole JPEG (the camera's own rendering) whose APP1 holds
  the shot's full EXIF; its offset and length are big-endian words at bytes 84 and 88.
- **Canon CR3**: an ISO base media file (``ftyp`` brand ``crx ``). Its ``moov`` box holds a
  Canon ``uuid`` box (85c0b687-820f-11e0-8111-f4ce462b6a48) whose ``CMT1`` box is a TIFF with
  IFD0, ``CMT2`` a TIFF whose IFD0 is the Exif IFD and ``CMT4`` one whose IFD0 is the GPS IFD;
  the XMP packet is a top-level ``uuid`` box (be7acfcb-97a9-42e8-9c71-999491e3afac).

Both are bounded walks over bytes already read; anything damaged becomes a note."""

from __future__ import annotations

import struct
from collections.abc import Iterator

from PIL import Image

from watcherd.metadata import containers

__all__ = ["cr3", "is_cr3", "is_raf", "raf"]

RAF_MAGIC = b"FUJIFILMCCD-RAW "
CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
_MAX_BOXES = 256  # per level: a hostile file cannot make the walk long


def is_raf(data: bytes) -> bool:
    return data[:16] == RAF_MAGIC


def is_cr3(data: bytes) -> bool:
    return data[4:12] == b"ftypcrx "


def raf(data: bytes) -> containers.Blocks:
    """The EXIF, XMP and IPTC of the JPEG inside a RAF."""
    if len(data) < 92:
        return containers.Blocks(notes=["RAF header truncated"])
    offset, length = struct.unpack(">II", data[84:92])
    if not (0 < offset < len(data)) or data[offset:offset + 3] != b"\xff\xd8\xff":
        return containers.Blocks(notes=["RAF: no JPEG where its header says"])
    return containers.jpeg(data[offset:offset + length])


def cr3(data: bytes) -> tuple[containers.Blocks, Image.Exif | None]:
    """The XMP packet of a CR3 and its EXIF, parsed (IFD0, Exif IFD and GPS IFD from their
    three TIFF blocks)."""
    out = containers.Blocks()
    tiffs: dict[bytes, bytes] = {}
    view = memoryview(data)
    for kind, start, end in _boxes(view, 0, len(data)):
        if kind == b"uuid" and bytes(view[start:start + 16]) == XMP_UUID:
            out.take_xmp(view[start + 16:end])
        elif kind == b"moov":
            for inner, s, e in _boxes(view, start, end):
                if inner == b"uuid" and bytes(view[s:s + 16]) == CANON_UUID:
                    for name, s2, e2 in _boxes(view, s + 16, e):
                        if name in (b"CMT1", b"CMT2", b"CMT4"):
                            tiffs[name] = bytes(view[s2:e2])
    if b"CMT1" not in tiffs:
        out.notes.append("CR3: no EXIF (CMT1) found")
        return out, None
    exif = containers.exif_from_tiff_header(tiffs[b"CMT1"])
    for name, tag in ((b"CMT2", EXIF_IFD), (b"CMT4", GPS_IFD)):
        if name in tiffs:
            try:
                ifd = dict(containers.exif_from_tiff_header(tiffs[name]))
            except Exception as e:  # one damaged block must not hide the others
                out.notes.append(f"CR3 {name.decode()} unreadable ({type(e).__name__})")
                continue
            # Pillow's get_ifd() answers from this cache: the IFD comes from its own TIFF,
            # not from an offset in IFD0's.
            exif[tag] = 0
            exif._ifds[tag] = ifd
    return out, exif


def _boxes(view: memoryview, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes between ``start`` and ``end``."""
    pos = start
    for _ in range(_MAX_BOXES):
        if pos + 8 > end:
            return
        size, kind = struct.unpack(">I4s", view[pos:pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size = struct.unpack(">Q", view[pos + 8:pos + 16])[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield bytes(kind), pos + header, pos + size
        pos += size
