"""Metadata end to end, through a real `watcherd run` on the embedded broker: photos tagged
with Debian's exiftool (not with the code under test) get their rows from the thumbnail step;
corrupt EXIF never fails a photo; an XMP sidecar written later updates the row without
computing the pixels again; and a library made before metadata existed (schema 7) is
backfilled at its first start, without recomputing thumbnails."""

from __future__ import annotations

import json
import shutil
import sqlite3
import struct
import subprocess
from pathlib import Path

from tests.helpers import Daemon, cli, jpeg, photo, query, wait_for, write_config
from tests.requires import tool

TIMEOUT = 90


def exiftool(path: Path, *tags: str) -> None:
    tool("exiftool")  # Debian's libimage-exiftool-perl; .ci/run installs it
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-n", *tags, str(path)],
                   check=True, capture_output=True)


def tagged(path: Path) -> None:
    path.write_bytes(photo(320, 240, seed=7))
    exiftool(path, "-DateTimeOriginal=2019:06:15 14:30:45", "-SubSecTimeOriginal=25",
             "-OffsetTimeOriginal=+01:00", "-GPSLatitude=38.7223", "-GPSLatitudeRef=N",
             "-GPSLongitude=9.1393", "-GPSLongitudeRef=W", "-Make=Canon",
             "-Model=Canon EOS R5", "-FNumber=4", "-ExposureTime=0.004", "-ISO=400",
             "-FocalLength=50", "-XMP-dc:Subject=tram", "-XMP-dc:Subject=street",
             "-ImageDescription=OLYMPUS DIGITAL CAMERA")


def corrupt_exif(path: Path) -> None:
    """Its Exif IFD pointer aims far past the end of the file: the pixels are fine."""
    path.write_bytes(photo(200, 150, seed=3))
    exiftool(path, "-Make=Nikon", "-DateTimeOriginal=2018:01:02 03:04:05")
    data = bytearray(path.read_bytes())
    tiff = data.index(b"Exif\x00\x00") + 6
    order = "<" if data[tiff:tiff + 2] == b"II" else ">"
    ifd0 = tiff + struct.unpack(order + "I", data[tiff + 4:tiff + 8])[0]
    for k in range(struct.unpack(order + "H", data[ifd0:ifd0 + 2])[0]):
        entry = ifd0 + 2 + 12 * k
        if struct.unpack(order + "H", data[entry:entry + 2])[0] == 0x8769:
            data[entry + 8:entry + 12] = struct.pack(order + "I", 0x7FFFFFF0)
    path.write_bytes(bytes(data))


def metadata_of(db: Path, name: str) -> sqlite3.Row | None:
    rows = query(db, "SELECT m.*, i.thumbnail_status FROM metadata m JOIN images i "
                     "ON i.id = m.image_id WHERE i.path LIKE ?", (f"%/{name}",))
    return rows[0] if rows else None


def thumbs_made(db: Path) -> dict[str, str]:
    return {r["path"].rsplit("/", 1)[1]: r["t"] for r in query(
        db, "SELECT i.path, max(t.created_at) AS t FROM images i JOIN thumbnails t "
            "ON t.image_id = i.id GROUP BY i.id")}


def test_metadata_from_the_thumbnail_step_then_a_sidecar_then_a_backfill(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    config = write_config(tmp_path)
    photos, db = tmp_path / "photos", tmp_path / "watcherd.db"
    staging = tmp_path / "staging"
    staging.mkdir()
    tagged(staging / "tram.jpg")
    corrupt_exif(staging / "broken.jpg")
    (staging / "plain.png").write_bytes(jpeg(5))  # no metadata at all: the mtime, said so
    d = Daemon(config).start()
    daemons.append(d)
    for f in staging.iterdir():
        shutil.move(str(f), photos / f.name)
    wait_for(lambda: all(metadata_of(db, n) for n in ("tram.jpg", "broken.jpg", "plain.png")),
             TIMEOUT, "a metadata row for every photo")

    tram = metadata_of(db, "tram.jpg")
    assert tram is not None
    assert (tram["taken_at"], tram["taken_offset"], tram["taken_source"]) == (
        "2019-06-15T14:30:45.250", "+01:00", "DateTimeOriginal")
    assert abs(tram["latitude"] - 38.7223) < 1e-6 and abs(tram["longitude"] + 9.1393) < 1e-6
    assert (tram["country_code"], tram["place"]) == ("PT", "Lisbon")
    assert (tram["camera_make"], tram["camera_model"], tram["iso"]) == ("Canon",
                                                                        "Canon EOS R5", 400)
    assert tram["f_number"] == 4 and tram["exposure_time"] == 0.004
    assert json.loads(tram["keywords"]) == ["tram", "street"]
    assert tram["description"] is None  # a camera's placeholder is not a description
    broken = metadata_of(db, "broken.jpg")
    assert broken is not None and broken["thumbnail_status"] == "done"
    assert broken["camera_make"] == "Nikon"  # IFD0 still read
    plain = metadata_of(db, "plain.png")
    assert plain is not None and plain["taken_source"] == "mtime"
    assert plain["taken_offset"] is not None

    # A sidecar written later: its fields win, and the pixels are not computed again.
    before = thumbs_made(db)
    sidecar = tmp_path / "tram.xmp"
    subprocess.run(["exiftool", "-q", "-o", str(sidecar), "-XMP-dc:Title=Tram 28",
                    "-XMP-xmp:Rating=5", str(photos / "tram.jpg")], check=True)
    shutil.move(str(sidecar), photos / "tram.xmp")
    wait_for(lambda: (m := metadata_of(db, "tram.jpg")) is not None and m["title"] == "Tram 28",
             TIMEOUT, "the sidecar's title in the photo's metadata")
    tram = metadata_of(db, "tram.jpg")
    assert tram is not None and tram["rating"] == 5 and tram["camera_make"] == "Canon"
    assert thumbs_made(db) == before
    assert d.stop() == 0

    # The same library as an older watcherd left it (schema 7: none of migration 8's tables,
    # nor migration 9's columns, indexes and table).
    with sqlite3.connect(db) as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                     "AND name LIKE 'metadata%' ORDER BY name = 'metadata'"
                                     ).fetchall():
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DROP INDEX images_stem")
        conn.execute("DROP INDEX images_shot")
        conn.execute("DROP TABLE shot_identifiers")
        for column in ("media_type", "duration", "decode", "shot_id"):
            conn.execute(f"ALTER TABLE images DROP COLUMN {column}")
        conn.execute("PRAGMA user_version = 7")
    d = Daemon(config).start()
    daemons.append(d)
    wait_for(lambda: len(query(db, "SELECT 1 FROM metadata")) == 3, TIMEOUT,
             "the backfill of the three photos' metadata")
    wait_for(lambda: not query(db, "SELECT 1 FROM metadata_due"), TIMEOUT,
             "nothing left due")
    tram = metadata_of(db, "tram.jpg")
    assert tram is not None and tram["title"] == "Tram 28" and tram["place"] == "Lisbon"
    assert thumbs_made(db) == before  # metadata only: no pixel computed again
    status = json.loads(cli(config, "status", "--json").stdout)
    assert status["metadata"]["with_metadata"] == 3 and status["metadata"]["due"] == 0
