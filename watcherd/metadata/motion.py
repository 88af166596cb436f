"""Android motion photos: a JPEG with a short MP4 appended, announced by its XMP, in either of
Google's two forms:

- ``GCamera:MicroVideo="1"`` with ``GCamera:MicroVideoOffset``: the clip's length, counted
  from the end of the file (the older "MVIMG" form);
- ``GCamera:MotionPhoto="1"`` with a ``Container:Directory``: one ``Container:Item`` per part
  (the primary JPEG first), each with its ``Item:Length`` (and ``Item:Padding``); the
  ``MotionPhoto`` (``video/...``) item's bytes end where the items after it begin, counting
  from the end of the file.

The offset found is trusted only if an ISO BMFF ``ftyp`` box starts there; otherwise (a file
rewritten by an editor that kept stale offsets) the clip is the first plausible ``ftyp`` box
after the primary JPEG's end (its EOI marker, found by walking its segments and entropy-coded
data). The clip is probed from memory by PyAV for its codec and frame rate; nothing is decoded.
The still stays a photo: only ``Metadata.video_codec`` and ``fps`` say it moves.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from defusedxml import ElementTree

from watcherd.metadata import containers

GCAMERA = "http://ns.google.com/photos/1.0/camera/"
CONTAINER = "http://ns.google.com/photos/1.0/container/"
ITEM = "http://ns.google.com/photos/1.0/container/item/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
#: Bytes that only a motion photo's XMP has: the XMP is parsed only when one is there.
_MARKERS = (b"MicroVideo", b"MotionPhoto")
_BRAND = re.compile(rb"[\x20-\x7e]{4}")
MAX_CANDIDATES = 8  # ftyp boxes tried by the fallback


@dataclass(frozen=True)
class Clip:
    offset: int  # where the embedded MP4 starts in the file
    length: int


def read(data: bytes, notes: list[str]) -> tuple[str | None, float | None]:
    """The embedded clip's codec and frame rate, (None, None) when ``data`` (a JPEG) is not a
    motion photo; what goes wrong with one becomes a note."""
    xmp = containers.jpeg(data).xmp
    if xmp is None or not any(marker in xmp for marker in _MARKERS):
        return None, None
    clip = find(data, xmp)
    if clip is None:
        notes.append("motion photo: its video was not found")
        return None, None
    try:
        return probe(memoryview(data)[clip.offset:clip.offset + clip.length])
    except Exception as e:  # PyAV raises its own FFmpegError for a bad clip
        notes.append(f"motion photo: its video is unreadable ({type(e).__name__}: "
                     f"{getattr(e, 'strerror', None) or e})")
        return None, None


def find(data: bytes, xmp: bytes) -> Clip | None:
    """Where the clip is: at the XMP's offset when an ``ftyp`` box is there, else the first
    ``ftyp`` box after the JPEG; None when the XMP announces no clip or none is found."""
    announced = announced_length(xmp)
    if announced is None:
        return None
    if 0 < announced < len(data):
        offset = len(data) - announced
        if is_ftyp(data, offset):
            return Clip(offset, announced)
    for offset in ftyp_boxes(data, jpeg_end(data) or 0):
        return Clip(offset, len(data) - offset)
    return None


def announced_length(xmp: bytes) -> int | None:
    """The clip's length from the end of the file, as the XMP says (the Container:Directory's,
    else MicroVideoOffset); 0 when it announces a clip without a usable length, None when it
    announces none. Raises nothing: an unreadable packet announces none."""
    try:
        root = ElementTree.fromstring(xmp.strip(b"\x00 \t\r\n"), forbid_dtd=True)
    except Exception:
        return None
    motion = micro = False
    micro_offset: int | None = None
    for desc in root.iter(f"{{{RDF}}}Description"):
        values = {**desc.attrib, **{child.tag: (child.text or "") for child in desc}}
        motion = motion or values.get(f"{{{GCAMERA}}}MotionPhoto", "").strip() == "1"
        micro = micro or values.get(f"{{{GCAMERA}}}MicroVideo", "").strip() == "1"
        raw = values.get(f"{{{GCAMERA}}}MicroVideoOffset")
        if raw is not None and micro_offset is None:
            micro_offset = _integer(raw)
    if not (motion or micro):
        return None
    from_directory = _directory_length(root)
    if from_directory:
        return from_directory
    return micro_offset or 0


def _directory_length(root: Element) -> int | None:
    """From the end of the file to the MotionPhoto item's start: its length, the lengths of
    the items after it, and the padding between them."""
    parsed: list[tuple[str, str, int, int]] = []
    for item in root.iter(f"{{{CONTAINER}}}Item"):
        fields = {**item.attrib, **{child.tag: (child.text or "") for child in item}}
        parsed.append((fields.get(f"{{{ITEM}}}Semantic", ""), fields.get(f"{{{ITEM}}}Mime", ""),
                       _integer(fields.get(f"{{{ITEM}}}Length", "")) or 0,
                       _integer(fields.get(f"{{{ITEM}}}Padding", "")) or 0))
    for i, (semantic, mime, length, _padding) in enumerate(parsed):
        if semantic == "MotionPhoto" or (semantic != "Primary" and mime.startswith("video/")):
            if length <= 0:
                return None
            after = parsed[i + 1:]
            return (length + sum(p[2] for p in after)
                    + sum(p[3] for p in parsed[i:-1]))
    return None


def _integer(raw: str | None) -> int | None:
    try:
        value = int((raw or "").strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def is_ftyp(data: bytes, offset: int) -> bool:
    """An ISO BMFF ``ftyp`` box starts at ``offset``: its size is plausible, its major brand
    is printable."""
    if offset < 0 or offset + 16 > len(data) or data[offset + 4:offset + 8] != b"ftyp":
        return False
    size = int.from_bytes(data[offset:offset + 4], "big")
    return 16 <= size <= 4096 and size % 4 == 0 and bool(_BRAND.fullmatch(
        data[offset + 8:offset + 12]))


def ftyp_boxes(data: bytes, start: int) -> list[int]:
    """Where plausible ``ftyp`` boxes start at or after ``start`` (at most MAX_CANDIDATES)."""
    out: list[int] = []
    at = data.find(b"ftyp", start + 4)
    while at >= 0 and len(out) < MAX_CANDIDATES:
        if is_ftyp(data, at - 4):
            out.append(at - 4)
        at = data.find(b"ftyp", at + 1)
    return out


def jpeg_end(data: bytes) -> int | None:
    """The offset just after the first JPEG's EOI marker: segments are walked by their
    lengths, entropy-coded data by its markers (0xFF followed by 0x00 or a restart marker is
    data). None when the structure breaks first."""
    if data[:2] != b"\xff\xd8":
        return None
    pos, size = 2, len(data)
    while pos + 2 <= size:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == 0xD9:
            return pos + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        if pos + 4 > size:
            return None
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        pos += 2 + length
        if marker != 0xDA:
            continue
        while True:  # entropy-coded data, up to the next real marker
            pos = data.find(b"\xff", pos)
            if pos < 0 or pos + 1 >= size:
                return None
            follower = data[pos + 1]
            if follower == 0x00 or 0xD0 <= follower <= 0xD7 or follower == 0xFF:
                pos += 1 if follower == 0xFF else 2
                continue
            break
    return None


def probe(clip: memoryview | bytes) -> tuple[str | None, float | None]:
    """The codec name and average frame rate of an MP4 in memory (PyAV, headers only)."""
    import av  # only for motion photos: importing PyAV costs about 70 ms
    import av.logging

    # FFmpeg's complaints about a broken clip are kept out of the log (when PyAV's log level
    # is set, watcherd.media.video sets it): the note says what failed.
    with av.logging.Capture(local=False), av.open(
            io.BytesIO(bytes(clip)), "r", metadata_errors="replace") as container:
        for stream in container.streams.video:
            if stream.disposition & av.stream.Disposition.attached_pic:
                continue
            codec = stream.codec_context.codec if stream.codec_context else None
            name = (getattr(codec, "canonical_name", None) or codec.name) if codec else None
            rate = stream.average_rate or stream.guessed_rate
            fps = round(float(rate), 3) if rate and 0 < rate <= 1000 else None
            return name or None, fps
    raise ValueError("no video stream in it")
