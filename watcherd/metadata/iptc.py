"""IPTC-IIM (the records JPEG's Photoshop APP13 and TIFF's tag 33723 carry): keywords (2:25)
and caption (2:120). Text is UTF-8 when record 1:90 says ``ESC % G``; undeclared text is read
as UTF-8 when it is valid UTF-8 (what most writers now put there), else as Latin-1."""

from __future__ import annotations

from dataclasses import dataclass

from watcherd.metadata import values

KEYWORDS, CAPTION, CHARSET = (2, 25), (2, 120), (1, 90)
UTF8_DECLARED = b"\x1b%G"


@dataclass(frozen=True)
class Iptc:
    keywords: tuple[str, ...] = ()
    caption: str | None = None


def records(data: bytes) -> dict[tuple[int, int], list[bytes]]:
    """The datasets of an IIM block, in order (each tag's values in a list). Stops at the first
    byte that is not a tag marker; a dataset cut short keeps what is there."""
    out: dict[tuple[int, int], list[bytes]] = {}
    pos = 0
    while pos + 5 <= len(data) and data[pos] == 0x1C:
        key = (data[pos + 1], data[pos + 2])
        size = int.from_bytes(data[pos + 3:pos + 5], "big")
        pos += 5
        if size & 0x8000:  # extended dataset: the next (size & 0x7FFF) bytes hold the size
            width = size & 0x7FFF
            if width > 4:
                break
            size = int.from_bytes(data[pos:pos + width], "big")
            pos += width
        out.setdefault(key, []).append(data[pos:pos + size])
        pos += size
    return out


def _decode(raw: bytes, utf8: bool) -> str | None:
    if utf8:
        return values.text(raw.decode("utf-8", errors="replace"))
    try:
        return values.text(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return values.text(raw.decode("latin-1"))


def read(data: bytes) -> Iptc:
    """Keywords (de-duplicated, in order) and caption of an IIM block."""
    found = records(data)
    utf8 = any(UTF8_DECLARED in v for v in found.get(CHARSET, []))
    keywords = values.unique_texts([_decode(v, utf8) for v in found.get(KEYWORDS, [])])
    captions = [_decode(v, utf8) for v in found.get(CAPTION, [])]
    return Iptc(keywords, next((c for c in captions if c), None))
