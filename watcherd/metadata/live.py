"""Apple Live Photos: the still (HEIC or JPEG) and its motion clip (MOV) carry the same content
identifier, a UUID, which pairs them (``images.shot_id``) whatever their names.

- The still's is tag 0x0011 (``ContentIdentifier``) of its Apple maker note (EXIF tag 0x927C
  in the Exif IFD): ``b"Apple iOS\\0"``, a version (2 bytes), ``b"MM"``, then a big-endian
  TIFF-style IFD at byte 14 whose value offsets count from the maker note's first byte.
- The clip's is the QuickTime key ``com.apple.quicktime.content.identifier``.

Both read defensively: anything malformed is None, never an exception.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping

from watcherd.metadata import containers, exif, reading

MAKER_NOTE = 0x927C
CONTENT_IDENTIFIER = 0x0011
APPLE_HEADER = b"Apple iOS\x00"
IFD_START = 14  # after the header, a 2-byte version and "MM"
MAX_ENTRIES = 512  # an Apple maker note has about 40
VIDEO_KEY = "com.apple.quicktime.content.identifier"
#: what an identifier may look like: printable, no blanks, at most 100 characters
_IDENTIFIER = re.compile(r"[\x21-\x7e]{1,100}")
_ASCII, _UNDEFINED = 2, 7


def still_identifier(data: bytes) -> str | None:
    """The content identifier in the Apple maker note of a HEIC or JPEG's EXIF, else None."""
    try:
        with warnings.catch_warnings():  # Pillow's about a damaged EXIF block
            warnings.simplefilter("ignore")
            blocks, parsed = reading.blocks(data)
            if parsed is None:
                if not blocks.exif:
                    return None
                parsed = containers.open_exif(blocks.exif)
            note = parsed.get_ifd(exif.EXIF_IFD).get(MAKER_NOTE)
    except Exception:  # a damaged EXIF block: no identifier
        return None
    return maker_note_identifier(note) if isinstance(note, bytes) else None


def maker_note_identifier(note: bytes) -> str | None:
    """Tag 0x0011 of an Apple maker note (its bytes, from ``Apple iOS``), else None."""
    if not note.startswith(APPLE_HEADER) or note[12:14] != b"MM" or len(note) < IFD_START + 2:
        return None
    count = int.from_bytes(note[IFD_START:IFD_START + 2], "big")
    if count > MAX_ENTRIES or IFD_START + 2 + 12 * count > len(note):
        return None
    for i in range(count):
        entry = IFD_START + 2 + 12 * i
        if entry + 12 > len(note):
            return None
        tag = int.from_bytes(note[entry:entry + 2], "big")
        if tag != CONTENT_IDENTIFIER:
            continue
        kind = int.from_bytes(note[entry + 2:entry + 4], "big")
        length = int.from_bytes(note[entry + 4:entry + 8], "big")
        if kind not in (_ASCII, _UNDEFINED) or not 0 < length <= 256:
            return None
        if length <= 4:  # a value of 4 bytes or less is stored in the entry itself
            raw = note[entry + 8:entry + 8 + length]
        else:
            offset = int.from_bytes(note[entry + 8:entry + 12], "big")
            if offset + length > len(note):
                return None
            raw = note[offset:offset + length]
        return _clean(raw.split(b"\x00", 1)[0].decode("ascii", errors="replace"))
    return None


def video_identifier(tags: Mapping[str, str]) -> str | None:
    """The content identifier of a Live Photo's clip, from its tags (keys in any case)."""
    for key, value in tags.items():
        if str(key).lower() == VIDEO_KEY:
            return _clean(str(value))
    return None


def _clean(text: str) -> str | None:
    text = text.strip()
    return text if _IDENTIFIER.fullmatch(text) else None
