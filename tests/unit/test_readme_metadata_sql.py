"""The README's metadata recipes, run as written against a real watcherd database, compared
with the same selection computed in Python from the rows put in."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.helpers import readme_block
from watcherd.metadata.fields import Metadata
from watcherd.store import discovery, outcomes, schema
from watcherd.store import metadata as stored

REUSE = discovery.Reuse("m", "p", (64,), "webp")
PHOTOS = {
    "/p/a.jpg": Metadata(taken_at="2019-06-15T14:30:45", taken_source="DateTimeOriginal",
                         country="Portugal", country_code="PT", place="Lisbon",
                         camera_make="Canon", camera_model="EOS R5", keywords=("beach",)),
    "/p/b.jpg": Metadata(taken_at="2019-06-20T09:00:00", taken_source="CreateDate",
                         country="Portugal", country_code="PT", place="Lisbon",
                         camera_make="Canon", camera_model="EOS R5", keywords=("tram",)),
    "/p/c.jpg": Metadata(taken_at="2020-01-02T10:00:00", taken_source="mtime",
                         keywords=("beach", "sea")),
    "/p/d.jpg": Metadata(error="EXIF: bad IFD offset"),
    "/p/gone.jpg": Metadata(taken_at="2019-06-01T00:00:00", taken_source="DateTimeOriginal",
                            country="Spain", country_code="ES", place="Vigo",
                            keywords=("beach",)),
}


@pytest.fixture
def db(tmp_path: Path) -> sqlite3.Connection:
    conn = schema.connect(tmp_path / "watcherd.db")
    for i, (path, md) in enumerate(PHOTOS.items()):
        image_id = discovery.record_file(conn, path, 1, 1.0, f"h{i}", REUSE).id
        outcomes.save_thumbnails(conn, image_id, f"h{i}", 1, 1, "JPEG",
                                 [outcomes.ThumbRow(64, 1, 1, "webp", b"x")], md.row())
    discovery.mark_deleted(conn, ["/p/gone.jpg"])
    conn.row_factory = None
    return conn


def run(conn: sqlite3.Connection, name: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.execute(readme_block(name))]


def test_the_readme_metadata_recipes_give_what_the_rows_say(db: sqlite3.Connection) -> None:
    assert stored.coverage(db)["with_metadata"] == 4
    assert run(db, "per-month") == [("2019-06", 2), ("2020-01", 1)]
    assert run(db, "per-place") == [("Portugal", "Lisbon", 2)]
    assert run(db, "per-camera") == [("Canon EOS R5", 2), ("(unknown)", 2)]
    assert run(db, "no-capture-time") == [("/p/c.jpg", "mtime", None),
                                          ("/p/d.jpg", None, "EXIF: bad IFD offset")]
    assert sorted(run(db, "keyword")) == [("/p/a.jpg",), ("/p/c.jpg",)]
