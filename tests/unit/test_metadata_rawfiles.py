"""Metadata of the RAWs that are not TIFF files: Fujifilm RAF (a JPEG inside, tagged by
exiftool here) and Canon CR3 (ISO boxes holding three TIFF blocks). Real RAF and CR3 files
cannot be made here (no camera, and no tool writes them): these are built to their documented
layouts (exiftool's FujiFilm and Canon CR3 notes), with the tag blocks written by exiftool and
Pillow."""

from __future__ import annotations

import struct
import subprocess

import pytest
from PIL import Image

from tests.requires import tool
from watcherd.metadata.extract import extract
from watcherd.metadata.rawfiles import CANON_UUID, XMP_UUID


@pytest.fixture(scope="module")
def tagged_jpeg(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    tool("exiftool")
    path = tmp_path_factory.mktemp("raf") / "inside.jpg"
    Image.new("RGB", (64, 48), (200, 120, 40)).save(path)
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-n", "-Make=FUJIFILM",
                    "-Model=X-T5", "-DateTimeOriginal=2023:04:05 06:07:08",
                    "-OffsetTimeOriginal=+09:00", "-GPSLatitude=35.6762", "-GPSLatitudeRef=N",
                    "-GPSLongitude=139.6503", "-GPSLongitudeRef=E", "-ISO=800", str(path)],
                   check=True, capture_output=True)
    return path.read_bytes()


def raf(jpeg: bytes) -> bytes:
    header = bytearray(b"FUJIFILMCCD-RAW 0201FF383501X-T5".ljust(84, b"\0"))
    offset = 160
    header += struct.pack(">II", offset, len(jpeg))
    return bytes(header.ljust(offset, b"\0")) + jpeg + b"\0" * 4096  # and the sensor data


def test_a_raf_gives_the_exif_of_its_jpeg(tagged_jpeg: bytes) -> None:
    md = extract(raf(tagged_jpeg), mtime=None)
    assert (md.camera_make, md.camera_model, md.iso) == ("FUJIFILM", "X-T5", 800)
    assert (md.taken_at, md.taken_offset) == ("2023-04-05T06:07:08", "+09:00")
    assert md.country_code == "JP" and md.error is None


def test_a_raf_whose_header_points_nowhere_says_so() -> None:
    broken = bytearray(raf(b"\xff\xd8\xff\xe0" + b"\0" * 100))
    broken[84:88] = struct.pack(">I", 10**9)
    md = extract(bytes(broken), mtime=1.7e9)
    assert md.taken_source == "mtime" and "RAF" in (md.error or "")


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def tiff(tags: dict[int, object]) -> bytes:
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[tag] = value
    raw = exif.tobytes()
    return raw[6:] if raw.startswith(b"Exif\x00\x00") else raw


def cr3(cmt2: dict[int, object] | None = None, xmp: bytes | None = None) -> bytes:
    canon = CANON_UUID + box(b"CNCV", b"CanonCR3_001/00.09.00/00.00.00")
    canon += box(b"CMT1", tiff({0x010F: "Canon", 0x0110: "Canon EOS R5"}))
    if cmt2 is not None:
        canon += box(b"CMT2", tiff(cmt2))
    canon += box(b"CMT4", tiff({1: "S", 2: (33.0, 52.0, 0.0), 3: "E", 4: (151.0, 12.0, 0.0)}))
    out = box(b"ftyp", b"crx \x00\x00\x00\x01crx isom") + box(b"moov", box(b"uuid", canon))
    if xmp is not None:
        out += box(b"uuid", XMP_UUID + xmp)
    return out + box(b"mdat", b"\0" * 1024)


def test_a_cr3_gives_ifd0_its_exif_ifd_and_gps_from_their_blocks() -> None:
    md = extract(cr3({0x9003: "2022:12:24 18:30:00", 0x8827: 1600, 0x829D: 2.8}), mtime=None)
    assert (md.camera_make, md.camera_model) == ("Canon", "Canon EOS R5")
    assert (md.taken_at, md.taken_source) == ("2022-12-24T18:30:00", "DateTimeOriginal")
    assert md.iso == 1600 and md.f_number == pytest.approx(2.8)
    assert md.latitude == pytest.approx(-33.8667, abs=1e-3) and md.country_code == "AU"


def test_a_cr3_xmp_packet_is_read_and_a_cr3_without_exif_says_so() -> None:
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
           b'02/22-rdf-syntax-ns#"><rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
           b'xmp:Rating="4"/></rdf:RDF></x:xmpmeta>')
    assert extract(cr3({}, xmp), mtime=None).rating == 4
    bare = box(b"ftyp", b"crx \x00\x00\x00\x01") + box(b"moov", b"")
    md = extract(bare, mtime=1.7e9)
    assert md.taken_source == "mtime" and "CMT1" in (md.error or "")
