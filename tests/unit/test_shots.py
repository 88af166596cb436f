"""Shots (store/shots.py): RAW+JPEG and Live Photo pairs derived from the live rows of one stem,
kept right through every order of arrival, renames, moves and deletes."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest

from watcherd.store import discovery, schema, shots
from watcherd.store.shots import Member

REUSE = discovery.Reuse("m", "p", (64,), "webp")


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return schema.connect(tmp_path / "db.sqlite")


def add(conn: sqlite3.Connection, path: str) -> int:
    return discovery.record_file(conn, path, 1, 1.0, f"sha-{path}", REUSE).id


def links(conn: sqlite3.Connection) -> dict[str, str | None]:
    """Each live file's face, by name (None: it stands alone)."""
    rows = {r[0]: (r[1], r[2]) for r in conn.execute(
        "SELECT id, path, shot_id FROM images WHERE deleted_at IS NULL")}
    return {Path(path).name: (Path(rows[shot][0]).name if shot is not None else None)
            for path, shot in rows.values()}


@pytest.mark.parametrize("order", list(itertools.permutations(
    ["/p/IMG_1.CR2", "/p/img_1.jpg", "/p/IMG_1.MOV"])))
def test_the_still_is_the_face_whatever_the_order_of_arrival(
        conn: sqlite3.Connection, order: tuple[str, ...]) -> None:
    for path in order:
        add(conn, path)
    assert links(conn) == {"IMG_1.CR2": "img_1.jpg", "img_1.jpg": "img_1.jpg",
                           "IMG_1.MOV": "img_1.jpg"}


def test_a_raw_alone_or_a_clip_alone_stands_alone(conn: sqlite3.Connection) -> None:
    add(conn, "/p/a.dng")
    add(conn, "/p/b.mov")
    add(conn, "/p/c.jpg")
    add(conn, "/q/a.jpg")  # another folder: not the same shot
    add(conn, "/p/a.jpg.xmp.dng")  # another stem
    assert set(links(conn).values()) == {None}


def test_a_clip_beside_a_png_or_an_mp4_beside_a_jpeg_is_not_a_live_photo(
        conn: sqlite3.Connection) -> None:
    add(conn, "/p/a.png")
    add(conn, "/p/a.mov")
    add(conn, "/p/b.jpg")
    add(conn, "/p/b.mp4")
    assert set(links(conn).values()) == {None}


def test_deleting_the_face_frees_the_raw_and_deleting_the_raw_frees_the_face(
        conn: sqlite3.Connection) -> None:
    add(conn, "/p/IMG_1.CR2")
    add(conn, "/p/IMG_1.JPG")
    discovery.mark_deleted(conn, ["/p/IMG_1.JPG"])
    assert links(conn) == {"IMG_1.CR2": None}
    add(conn, "/p/IMG_1.JPG")  # back (restored): one shot again
    assert links(conn) == {"IMG_1.CR2": "IMG_1.JPG", "IMG_1.JPG": "IMG_1.JPG"}
    discovery.mark_deleted(conn, ["/p/IMG_1.CR2"])
    assert links(conn) == {"IMG_1.JPG": None}


def test_renaming_one_member_away_and_back(conn: sqlite3.Connection) -> None:
    add(conn, "/p/IMG_1.CR2")
    add(conn, "/p/IMG_1.JPG")
    discovery.move_path(conn, "/p/IMG_1.CR2", "/p/IMG_2.CR2")
    assert links(conn) == {"IMG_2.CR2": None, "IMG_1.JPG": None}
    discovery.move_path(conn, "/p/IMG_1.JPG", "/p/IMG_2.JPG")
    assert links(conn) == {"IMG_2.CR2": "IMG_2.JPG", "IMG_2.JPG": "IMG_2.JPG"}
    discovery.move_path(conn, "/p/IMG_2.JPG", "/q/IMG_2.JPG")  # another folder
    assert links(conn) == {"IMG_2.CR2": None, "IMG_2.JPG": None}


def test_a_folder_of_pairs_emptied_then_a_file_back(conn: sqlite3.Connection) -> None:
    add(conn, "/p/a.nef")
    add(conn, "/p/a.jpg")
    discovery.mark_folder_files_deleted(conn, "/p")
    assert links(conn) == {}
    add(conn, "/p/a.nef")
    assert links(conn) == {"a.nef": None}


def test_a_changed_row_updates_its_time_so_the_search_index_sees_the_link(
        conn: sqlite3.Connection) -> None:
    raw = add(conn, "/p/a.arw")
    before = conn.execute("SELECT updated_at FROM images WHERE id = ?", (raw,)).fetchone()[0]
    add(conn, "/p/a.jpg")
    after = conn.execute("SELECT updated_at, shot_id FROM images WHERE id = ?", (raw,)).fetchone()
    assert after[1] is not None and after[0] >= before
    faces = [r[0] for r in conn.execute(f"SELECT path FROM images WHERE {schema.FACE_SQL}")]
    assert faces == ["/p/a.jpg"]


def test_different_content_identifiers_are_two_moments() -> None:
    still = Member(1, "/p/a.heic", "photo", "AAA")
    assert shots.faces([still, Member(2, "/p/a.mov", "video", "BBB")]) == {1: None, 2: None}
    assert shots.faces([still, Member(2, "/p/a.mov", "video", "AAA")]) == {1: 1, 2: 1}
    assert shots.faces([still, Member(2, "/p/a.mov", "video", None)]) == {1: 1, 2: 1}


def test_two_stills_of_one_stem_the_first_is_the_face(conn: sqlite3.Connection) -> None:
    add(conn, "/p/a.heic")
    add(conn, "/p/a.jpg")
    add(conn, "/p/a.dng")
    assert links(conn) == {"a.heic": "a.heic", "a.jpg": None, "a.dng": "a.heic"}


def test_a_still_whose_thumbnails_failed_shows_no_raw_until_it_is_retried(
        conn: sqlite3.Connection) -> None:
    from watcherd.store import admin, outcomes

    add(conn, "/p/IMG_1.CR2")
    jpg = add(conn, "/p/IMG_1.JPG")
    outcomes.fail(conn, "thumbnail", jpg, "sha-/p/IMG_1.JPG", "truncated image")
    assert links(conn) == {"IMG_1.CR2": None, "IMG_1.JPG": None}  # the RAW shows itself
    admin.requeue(conn, failed=True)
    assert links(conn) == {"IMG_1.CR2": "IMG_1.JPG", "IMG_1.JPG": "IMG_1.JPG"}


def test_an_unreadable_still_is_no_face_and_a_tiff_export_is_its_own_photo(
        conn: sqlite3.Connection) -> None:
    add(conn, "/p/a.nef")
    discovery.record_unreadable(conn, "/p/a.jpg", "unreadable: Permission denied")
    add(conn, "/p/b.nef")
    add(conn, "/p/b.tif")
    assert set(links(conn).values()) == {None}


@pytest.mark.parametrize("path", ["/p/IMG_1.JPG", "/p/Été.CR2", "/p.d/noext", "/p/a.b.c",
                                  "/p/ÉCOLE.jpg", "/p/x.", "/p/.hidden"])
def test_the_python_stem_key_is_the_index_expression(conn: sqlite3.Connection,
                                                     path: str) -> None:
    expression = schema.STEM_SQL.replace("path", "?")
    got = conn.execute(f"SELECT {expression}", (path, path)).fetchone()[0]
    assert shots.stem_key(path) == got


def test_migration_9_links_pairs_and_redoes_raws_and_videos_taken_before(
        tmp_path: Path) -> None:
    """A library a hand-set extensions list filled before schema 9: a DNG read by Pillow
    (done), a MOV that failed: both done again, the MOV a video, both in their shots."""
    from watcherd.store import migrations

    raw = sqlite3.connect(tmp_path / "v8.db", isolation_level=None)
    for script in migrations.MIGRATIONS[:8]:
        for statement in (s.strip() for s in script.split(";") if s.strip()):
            raw.execute(statement)
    raw.execute("PRAGMA user_version = 8")
    rows = [("/p/IMG_1.JPG", "done"), ("/p/IMG_1.DNG", "done"), ("/p/IMG_2.HEIC", "done"),
            ("/p/IMG_2.MOV", "failed"), ("/p/IMG_3.DNG", "done"), ("/p/bad.jpg", "failed"),
            ("/p/bad.cr2", "done")]
    for n, (path, status) in enumerate(rows, 1):
        raw.execute("INSERT INTO images (id, path, sha256, discovered_at, thumbnail_status, "
                    "embedding_status) VALUES (?, ?, ?, 'now', ?, ?)",
                    (n, path, f"h{n}", status, status))
    raw.close()
    conn = schema.connect(tmp_path / "v8.db")
    assert links(conn) == {"IMG_1.JPG": "IMG_1.JPG", "IMG_1.DNG": "IMG_1.JPG",
                           "IMG_2.HEIC": "IMG_2.HEIC", "IMG_2.MOV": "IMG_2.HEIC",
                           "IMG_3.DNG": None, "bad.jpg": None, "bad.cr2": None}
    got = {Path(r[0]).name: (r[1], r[2], r[3]) for r in conn.execute(
        "SELECT path, media_type, thumbnail_status, embedding_status FROM images")}
    assert got["IMG_2.MOV"] == ("video", "pending", "pending")
    assert got["IMG_1.DNG"] == ("photo", "pending", "pending")
    assert got["IMG_1.JPG"] == ("photo", "done", "done")
