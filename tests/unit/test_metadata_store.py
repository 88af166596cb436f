"""The metadata table's rows and the metadata_due list, on real SQLite files: what a step
writes and when it is kept, which photos a sidecar describes, what is sent and in which
order, what is forgotten, what is given up, and the coverage figures."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from watcherd.metadata.fields import COLUMNS, Metadata
from watcherd.store import discovery, outcomes, schema
from watcherd.store import metadata as stored

REUSE = discovery.Reuse("m", "p", (64,), "webp")


def _photo(conn: sqlite3.Connection, path: str, sha: str, *, done: bool = True) -> int:
    image_id = discovery.record_file(conn, path, 1, 1.0, sha, REUSE).id
    if done:
        assert outcomes.save_thumbnails(conn, image_id, sha, 10, 10, "JPEG",
                                        [outcomes.ThumbRow(64, 10, 10, "webp", b"x")])
    return image_id


def _due(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    return [(int(r[0]), str(r[1])) for r in conn.execute(
        "SELECT image_id, reason FROM metadata_due ORDER BY image_id")]


def test_thumbnails_and_metadata_are_stored_together_and_only_for_the_same_content(
        tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    a = _photo(conn, "/p/a.jpg", "ha", done=False)
    md = Metadata(taken_at="2024-06-15T14:30:45.123", taken_offset="+02:00",
                  taken_source="DateTimeOriginal", keywords=("sea", "été"), iso=400)
    thumbs = [outcomes.ThumbRow(64, 10, 10, "webp", b"x")]
    assert not outcomes.save_thumbnails(conn, a, "other", 10, 10, "JPEG", thumbs, md.row())
    assert conn.execute("SELECT count(*) FROM metadata").fetchone()[0] == 0
    assert outcomes.save_thumbnails(conn, a, "ha", 10, 10, "JPEG", thumbs, md.row())
    row = conn.execute(f"SELECT {', '.join(COLUMNS)}, updated_at FROM metadata "
                       "WHERE image_id = ?", (a,)).fetchone()
    got = dict(zip(COLUMNS, row, strict=False))
    assert got["taken_at"] == "2024-06-15T14:30:45.123" and got["iso"] == 400
    assert got["keywords"] == '["sea", "été"]' and row[-1]
    # a plain SQL user reads the keywords with json_each
    assert [r[0] for r in conn.execute(
        "SELECT value FROM metadata, json_each(metadata.keywords) WHERE image_id = ?", (a,))
            ] == ["sea", "été"]


def test_a_sidecar_describes_its_whole_name_or_every_photo_of_its_stem(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    cr2 = _photo(conn, "/p/IMG_1.CR2", "h1")
    jpg = _photo(conn, "/p/IMG_1.JPG", "h2")
    _photo(conn, "/p/IMG_10.JPG", "h3")
    _photo(conn, "/p/sub/IMG_1.JPG", "h4")
    assert stored.photos_of_sidecar(conn, "/p/IMG_1.CR2", True) == [cr2]
    assert sorted(stored.photos_of_sidecar(conn, "/p/IMG_1", False)) == sorted([cr2, jpg])
    assert stored.photos_of_sidecar(conn, "/p/IMG_2", False) == []


def test_due_photos_go_sidecars_first_then_newest_and_are_resent_only_when_asked(
        tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    ids = [_photo(conn, f"/p/{i}.jpg", f"h{i}") for i in range(4)]
    assert stored.mark_due(conn, ids[:3], stored.BACKFILL) == 3
    assert stored.mark_due(conn, [ids[0]], stored.SIDECAR) == 1
    assert stored.due(conn, 10) == [(ids[0], "h0"), (ids[2], "h2"), (ids[1], "h1")]
    stored.mark_sent(conn, stored.due(conn, 2))
    assert stored.due(conn, 10) == [(ids[1], "h1")]
    # sent before "now": a lost message is sent again only when the caller says so
    assert len(stored.due(conn, 10, resend_before=schema.iso_ago(-1))) == 3
    assert stored.due(conn, 10, resend_before=schema.iso_ago(3600)) == [(ids[1], "h1")]


def test_a_result_clears_its_due_row_and_a_changed_or_deleted_photo_is_forgotten(
        tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    a, b, c = (_photo(conn, f"/p/{n}.jpg", f"h{n}") for n in "abc")
    stored.mark_due(conn, [a, b, c], stored.BACKFILL)
    assert stored.begin(conn, a, "ha") == ("/p/a.jpg", 1.0)
    assert stored.begin(conn, a, "other") is None
    assert not stored.save(conn, a, "other", Metadata().row())  # another content: not kept
    assert stored.save(conn, a, "ha", Metadata(camera_make="Canon").row())
    assert [i for i, _ in _due(conn)] == [b, c]
    discovery.mark_deleted(conn, ["/p/b.jpg"])
    discovery.record_file(conn, "/p/c.jpg", 2, 2.0, "hc2", REUSE)  # replaced: forgotten now
    assert [i for i, _ in _due(conn)] == [b]
    assert stored.prune_due(conn) == 1  # b, deleted
    assert _due(conn) == []


def test_a_photo_sent_too_often_gets_a_row_that_says_so(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    a, b = _photo(conn, "/p/a.jpg", "ha"), _photo(conn, "/p/b.jpg", "hb")
    stored.save(conn, b, "hb", Metadata(camera_make="Canon").row())
    stored.mark_due(conn, [a, b], stored.SIDECAR)
    for _ in range(3):
        stored.mark_sent(conn, [(a, "ha"), (b, "hb")])
    assert stored.give_up(conn, 4) == 0
    stored.mark_sent(conn, [(a, "ha")])
    assert stored.give_up(conn, 4) == 1
    assert stored.give_up(conn, 3) == 1  # b: its earlier row stays, with the reason
    rows = dict(conn.execute("SELECT image_id, error FROM metadata").fetchall())
    assert "sent 4 times" in rows[a] and "sent 3 times" in rows[b]
    assert conn.execute("SELECT camera_make FROM metadata WHERE image_id = ?",
                        (b,)).fetchone()[0] == "Canon"
    assert _due(conn) == []


def test_coverage_counts_processed_live_photos(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    a, b = _photo(conn, "/p/a.jpg", "ha"), _photo(conn, "/p/b.jpg", "hb")
    _photo(conn, "/p/pending.jpg", "hp", done=False)
    gone = _photo(conn, "/p/gone.jpg", "hg")
    stored.save(conn, a, "ha", Metadata(taken_at="2020-01-01T00:00:00", taken_source="mtime",
                                        latitude=1.0, longitude=2.0).row())
    stored.save(conn, gone, "hg", Metadata(camera_model="X").row())
    discovery.mark_deleted(conn, ["/p/gone.jpg"])
    stored.mark_due(conn, [b], stored.BACKFILL)
    cover = stored.coverage(conn)
    assert (cover["processed"], cover["with_metadata"], cover["taken"],
            cover["taken_from_mtime"], cover["located"], cover["camera"], cover["due"]) == \
        (2, 1, 1, 1, 1, 0, 1)
    assert cover["taken_sources"] == {"mtime": 1}


def test_new_content_drops_the_old_metadata_and_a_reused_twin_is_read_again(
        tmp_path: Path) -> None:
    """A changed file's metadata described its old content: gone until its step writes the
    new one. A copy of a processed photo reuses the pixels' work, not the metadata (its
    date and sidecar may differ): it is due. Purge takes the rows with the photo."""
    conn = schema.connect(tmp_path / "a.db")
    a = _photo(conn, "/p/a.jpg", "ha")
    stored.save(conn, a, "ha", Metadata(camera_make="Canon").row())
    discovery.record_file(conn, "/p/a.jpg", 2, 2.0, "ha2", REUSE)
    assert conn.execute("SELECT count(*) FROM metadata").fetchone()[0] == 0
    b = _photo(conn, "/p/b.jpg", "hb")
    copy = discovery.record_file(conn, "/p/copy-of-b.jpg", 1, 3.0, "hb", REUSE).id
    assert conn.execute("SELECT thumbnail_status FROM images WHERE id = ?",
                        (copy,)).fetchone()[0] == "done"
    assert stored.due(conn, 10) == [(copy, "hb")]
    stored.save(conn, b, "hb", Metadata().row())
    discovery.mark_deleted(conn, ["/p/b.jpg"])
    from watcherd.store import admin
    assert admin.purge_deleted(conn, -1).images == 1
    assert conn.execute("SELECT count(*) FROM metadata WHERE image_id = ?",
                        (b,)).fetchone()[0] == 0
