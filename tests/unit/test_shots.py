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
