"""Photos with known metadata for the reader's tests, written by real tools: Pillow makes a
small base image per format, exiftool writes the tags into a copy (never ``-o`` over the
original: a failed write has been seen to move it), and ``exiftool -j -n`` reads them back as
the reference. The exiftool-made files and the reference are kept in ``tests/data/metadata``
(unit tests run in-process, without exiftool); remake them with

    python -m tests.metadatafiles            # rewrites tests/data/metadata

The damaged and hostile variants are made from those files in Python (struct patching, moved
PNG chunks), by the functions below, when a test asks for them."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

CORPUS = Path(__file__).parent / "data" / "metadata"
REFERENCE = "reference.json"

FULL = [  # the research's tags.args: 38.72 S, 9.14 W is in the South Atlantic
    "-DateTimeOriginal=2024:06:15 14:30:45", "-SubSecTimeOriginal=123",
    "-OffsetTimeOriginal=+02:00", "-CreateDate=2024:06:15 14:30:45",
    "-GPSLatitude=38.72", "-GPSLatitudeRef=S", "-GPSLongitude=9.14", "-GPSLongitudeRef=W",
    "-GPSAltitude=123.4", "-GPSAltitudeRef=0", "-GPSDateStamp=2024:06:15",
    "-GPSTimeStamp=12:30:45", "-Make=Canon", "-Model=Canon EOS R5",
    "-LensModel=RF24-105mm F4 L IS USM", "-FocalLength=50", "-FNumber=4.0",
    "-ExposureTime=0.004", "-ISO=400", "-ImageDescription=EXIF description",
    "-XMP-dc:Title=My title", "-XMP-dc:Description=XMP description", "-XMP-dc:Subject=a",
    "-XMP-dc:Subject=b", "-XMP:Rating=4",
    "-XMP-exif:DateTimeOriginal=2024:06:15 14:30:45.123+02:00",
    "-XMP-photoshop:DateCreated=2024:06:15 14:30:45+02:00",
    "-XMP-xmp:CreateDate=2024:06:15 14:30:45+02:00",
    "-IPTC:Keywords=k", "-IPTC:Keywords=k2", "-IPTC:Caption-Abstract=IPTC caption",
]
LISBON = ["-GPSLatitude=38.7223", "-GPSLatitudeRef=N", "-GPSLongitude=9.1393",
          "-GPSLongitudeRef=W"]

#: file name -> (base image, exiftool arguments)
FILES: dict[str, tuple[str, list[str]]] = {
    **{f"full.{ext}": (ext, FULL) for ext in ("jpg", "png", "webp", "tif", "heic", "avif")},
    "fake.dng": ("tif", [*FULL, "-DNGVersion=1 4 0 0"]),
    "bare.jpg": ("jpg", []),
    "bare.bmp": ("bmp", []),
    "lisbon_june.jpg": ("jpg", ["-DateTimeOriginal=2024:06:15 14:30:45", *LISBON]),
    "lisbon_january.jpg": ("jpg", ["-DateTimeOriginal=2024:01:15 14:30:45", *LISBON]),
    "no_zone.jpg": ("jpg", ["-DateTimeOriginal=2024:06:15 14:30:45"]),
    "create_date.jpg": ("jpg", ["-CreateDate=2024:06:15 10:00:01", "-SubSecTimeDigitized=5",
                                "-OffsetTimeDigitized=-05:00"]),
    "xmp_original.jpg": ("jpg", ["-XMP-exif:DateTimeOriginal=2024:06:15 14:30:45.250-03:00",
                                 "-XMP-photoshop:DateCreated=2020"]),
    "xmp_created.jpg": ("jpg", ["-XMP-photoshop:DateCreated=2024:06",
                                "-XMP-xmp:CreateDate=2023:01:01 00:00:00Z"]),
    "xmp_create.jpg": ("jpg", ["-XMP-xmp:CreateDate=2024:06:15 12:00:00Z", *LISBON]),
    "gps_time.jpg": ("jpg", [*LISBON, "-GPSDateStamp=2024:06:15", "-GPSTimeStamp=12:30:45.5"]),
    "zero_date.jpg": ("jpg", ["-DateTimeOriginal=0000:00:00 00:00:00",
                              "-OffsetTimeOriginal=    :  ", "-CreateDate=2024:06:15 09:08:07"]),
    "null_island.jpg": ("jpg", ["-GPSLatitude=0", "-GPSLatitudeRef=N", "-GPSLongitude=0",
                                "-GPSLongitudeRef=E", "-GPSAltitude=5"]),
    "north_east_below.jpg": ("jpg", ["-GPSLatitude=35.6762", "-GPSLatitudeRef=N",
                                     "-GPSLongitude=139.6503", "-GPSLongitudeRef=E",
                                     "-GPSAltitude=28.5", "-GPSAltitudeRef=1"]),
    "placeholder.jpg": ("jpg", ["-Make=OLYMPUS IMAGING CORP.", "-Model=E-M5",
                                "-ImageDescription=OLYMPUS DIGITAL CAMERA         "]),
    "iptc_utf8.jpg": ("jpg", ["-charset", "iptc=UTF8", "-IPTC:CodedCharacterSet=UTF8",
                              "-IPTC:Keywords=café", "-IPTC:Keywords=Zürich",
                              "-IPTC:Keywords=café", "-IPTC:Caption-Abstract=Überall"]),
    "iptc_latin1.jpg": ("jpg", ["-charset", "iptc=Latin", "-IPTC:Keywords=café",
                                "-IPTC:Caption-Abstract=façade"]),
    "xmp_only.gif": ("gif", ["-XMP-dc:Title=GIF title", "-XMP-dc:Subject=gif",
                             "-XMP-xmp:Rating=-1", "-XMP-exif:DateTimeOriginal=2024:06:15 "
                             "14:30:45+09:00"]),
    "sidecar_source.jpg": ("jpg", ["-XMP-dc:Title=Sidecar title", "-XMP:Rating=5",
                                   "-XMP-dc:Subject=side", "-XMP-aux:Lens=Sidecar lens",
                                   "-XMP-exif:DateTimeOriginal=2023:12:24 18:00:00+01:00",
                                   "-XMP-exif:GPSLatitude=38.7223",
                                   "-XMP-exif:GPSLongitude=-9.1393"]),
}
SIDECAR = "IMG_0001.xmp"  # made from sidecar_source.jpg's XMP


def base_image(kind: str, path: Path) -> None:
    """A small Pillow image in the given format (gradient, so encoders have something)."""
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    im = Image.linear_gradient("L").resize((64, 48)).convert("RGB")
    im.save(path, format={"jpg": "JPEG", "tif": "TIFF", "heic": "HEIF"}.get(kind, kind.upper()))


def exiftool_args(path: Path, args: list[str]) -> list[str]:
    return ["-q", "-overwrite_original", "-n", *args, str(path), "-execute"]


def build(folder: Path) -> None:
    """Every file of :data:`FILES`, the sidecar and the reference, in ``folder`` (one exiftool
    process for all writes)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        lines: list[str] = []
        for name, (kind, args) in FILES.items():
            base = Path(tmp) / f"base.{kind}"
            if not base.exists():
                base_image(kind, base)
            shutil.copyfile(base, folder / name)
            if args:
                lines += exiftool_args(folder / name, args)
        lines += ["-q", "-o", str(folder / SIDECAR), "-tagsFromFile",
                  str(folder / "sidecar_source.jpg"), "-xmp:all", "-execute"]
        argfile = Path(tmp) / "args"
        argfile.write_text("\n".join(lines) + "\n")
        (folder / SIDECAR).unlink(missing_ok=True)
        subprocess.run(["exiftool", "-q", "-q", "-@", str(argfile)], check=True)
    names = [*FILES, SIDECAR]
    out = subprocess.run(["exiftool", "-j", "-n", *(str(folder / n) for n in names)],
                         check=True, capture_output=True, text=True).stdout
    reference = {Path(entry["SourceFile"]).name: entry for entry in json.loads(out)}
    for entry in reference.values():
        for volatile in ("SourceFile", "Directory", "FileModifyDate", "FileAccessDate",
                         "FileInodeChangeDate", "FilePermissions", "ExifToolVersion"):
            entry.pop(volatile, None)
    (folder / REFERENCE).write_text(json.dumps(reference, indent=1, sort_keys=True,
                                               ensure_ascii=False) + "\n")


def reference(folder: Path = CORPUS) -> dict[str, dict[str, object]]:
    """``exiftool -j -n`` of every corpus file, by file name."""
    return json.loads((folder / REFERENCE).read_text())  # type: ignore[no-any-return]


def read(name: str, folder: Path = CORPUS) -> bytes:
    return (folder / name).read_bytes()


# --- Damaged and hostile variants (the research's mkhostile.py) ---

def tiff_entries(jpeg: bytes) -> tuple[int, str, int, dict[int, tuple[int, int, int, int]]]:
    """A JPEG's EXIF: the TIFF header's position, byte order, IFD0's position and its entries
    (tag -> (entry position, type, count, value/offset))."""
    t = jpeg.index(b"Exif\x00\x00") + 6
    bo = ">" if jpeg[t:t + 2] == b"MM" else "<"
    ifd0 = t + struct.unpack(bo + "I", jpeg[t + 4:t + 8])[0]
    n = struct.unpack(bo + "H", jpeg[ifd0:ifd0 + 2])[0]
    entries = {}
    for k in range(n):
        e = ifd0 + 2 + 12 * k
        tag, typ, cnt, val = struct.unpack(bo + "HHII", jpeg[e:e + 12])
        entries[tag] = (e, typ, cnt, val)
    return t, bo, ifd0, entries


def hostile(jpeg: bytes, kind: str) -> bytes:
    """A damaged copy: ``offsets`` (Exif and GPS IFD offsets into nowhere), ``loop`` (the Exif
    IFD and IFD0's next point back at IFD0), ``count`` (IFD0 says 0xFFFF entries),
    ``huge`` (Make's count 0x7FFFFFFF), ``truncated`` (cut 300 bytes into the TIFF data),
    ``zero-denominators`` (every GPS lat/lon/alt denominator 0)."""
    t, bo, ifd0, ents = tiff_entries(jpeg)
    b = bytearray(jpeg)

    def put(pos: int, fmt: str, value: int) -> None:
        b[pos:pos + struct.calcsize(fmt)] = struct.pack(bo + fmt, value)

    if kind == "offsets":
        put(ents[0x8769][0] + 8, "I", 0xFFFFFFF0)
        put(ents[0x8825][0] + 8, "I", 0x7FFFFFF0)
    elif kind == "loop":
        put(ents[0x8769][0] + 8, "I", ifd0 - t)
        put(ifd0 + 2 + 12 * len(ents), "I", ifd0 - t)
    elif kind == "count":
        put(ifd0, "H", 0xFFFF)
    elif kind == "huge":
        put(ents[0x010F][0] + 4, "I", 0x7FFFFFFF)
    elif kind == "truncated":
        return jpeg[:t + 300]
    elif kind == "zero-denominators":
        g = t + ents[0x8825][3]
        for k in range(struct.unpack(bo + "H", jpeg[g:g + 2])[0]):
            tag, _typ, cnt, val = struct.unpack(bo + "HHII", jpeg[g + 2 + 12 * k:g + 14 + 12 * k])
            if tag in (2, 4, 6):
                for r in range(cnt):
                    put(t + val + 8 * r + 4, "I", 0)
    else:
        raise ValueError(kind)
    return bytes(b)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(png):
        n = struct.unpack(">I", png[pos:pos + 4])[0]
        out.append((png[pos + 4:pos + 8], png[pos + 8:pos + 8 + n]))
        pos += 12 + n
    return out


def png_move_after_idat(png: bytes, kinds: tuple[bytes, ...] = (b"eXIf", b"iTXt")) -> bytes:
    """The same PNG with the given chunks moved after the last IDAT (as some writers do)."""
    chunks = png_chunks(png)
    moved = [c for c in chunks if c[0] in kinds]
    kept = [c for c in chunks if c[0] not in kinds]
    last = max(i for i, c in enumerate(kept) if c[0] == b"IDAT")
    order = kept[:last + 1] + moved + kept[last + 1:]
    return png[:8] + b"".join(png_chunk(k, d) for k, d in order)


def png_with_xmp(png: bytes, xmp: bytes, compressed: bool = False) -> bytes:
    """The PNG with an XMP iTXt chunk (first after IHDR), replacing any it had."""
    body = zlib.compress(xmp) if compressed else xmp
    chunk = png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00" + bytes([compressed, 0]) + b"\x00\x00"
                      + body)
    chunks = [c for c in png_chunks(png) if c[0] != b"iTXt"]
    return png[:8] + png_chunk(*chunks[0]) + chunk + b"".join(png_chunk(k, d)
                                                               for k, d in chunks[1:])


XMP_HEAD = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
            b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
            b'xmlns:dc="http://purl.org/dc/elements/1.1/">')
XMP_TAIL = b"</rdf:Description></rdf:RDF></x:xmpmeta>"


def big_xmp(megabytes: int = 50) -> bytes:
    """An XMP packet of about ``megabytes`` MB: a dc:subject with millions of keywords."""
    items = b"<rdf:li>kw</rdf:li>" * (megabytes * 1_000_000 // 19)
    return XMP_HEAD + b"<dc:subject><rdf:Bag>" + items + b"</rdf:Bag></dc:subject>" + XMP_TAIL


def billion_laughs() -> bytes:
    entities = b"".join(b'<!ENTITY lol%d "%s">' % (k, (b"&lol%d;" % (k - 1) if k > 1
                                                         else b"&lol;") * 10)
                        for k in range(1, 10))
    return (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' + entities + b"]>"
            + XMP_HEAD.replace(b"<rdf:Description ", b'<rdf:Description dc:format="&lol9;" ')
            + XMP_TAIL)


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS)
    print(f"wrote {len(FILES) + 1} files and {REFERENCE}")
