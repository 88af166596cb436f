"""Moves, deletions and restores in the database, as the watcher records them (issue: a folder
moved onto a name whose files were deleted crashed the watcher on UNIQUE(path)).

The state machine applies random file operations to a model of a folder tree and the same
operations to a real SQLite file through the calls the watcher makes; after every step each
file has exactly one live row with its content, and a moved file keeps its id."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from watcherd.store import discovery, schema

REUSE = discovery.Reuse("m", "p", (64,), "webp")


def sha(content: int) -> str:
    return hashlib.sha256(str(content).encode()).hexdigest()


def record(conn: sqlite3.Connection, path: str, content: int) -> discovery.Recorded:
    return discovery.record_file(conn, path, content, float(content), sha(content), REUSE)


def live(conn: sqlite3.Connection) -> dict[str, tuple[int, str]]:
    return {r[0]: (r[1], r[2]) for r in conn.execute(
        "SELECT path, id, sha256 FROM images WHERE deleted_at IS NULL")}


def test_folder_moved_onto_a_name_whose_files_were_deleted(tmp_path: Path) -> None:
    """The reported sequence: A/x.jpg recorded then deleted; B (holding another x.jpg) is
    renamed to A. No crash, and the moved photo keeps its own id."""
    conn = schema.connect(tmp_path / "w.db")
    old = record(conn, "/p/A/x.jpg", 1).id
    discovery.mark_deleted(conn, ["/p/A/x.jpg"])
    moved = record(conn, "/p/B/x.jpg", 2).id
    conn.execute("INSERT INTO thumbnails (image_id, size, data) VALUES (?, 64, x'00')", (moved,))
    assert discovery.move_folder(conn, Path("/p/B"), Path("/p/A")) == 1
    assert live(conn) == {"/p/A/x.jpg": (moved, sha(2))}
    retired = conn.execute("SELECT path, deleted_at FROM images WHERE id = ?", (old,)).fetchone()
    assert retired[0] == f"retired:{old}:/p/A/x.jpg" and retired[1] is not None
    assert conn.execute("SELECT image_id FROM thumbnails").fetchall()[0][0] == moved


def test_restore_from_trash_revives_the_row_other_content_gets_a_new_id(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "w.db")
    first = record(conn, "/p/x.jpg", 1).id
    discovery.mark_deleted(conn, ["/p/x.jpg"])
    back = record(conn, "/p/x.jpg", 1)
    assert (back.id, back.action) == (first, "restored")
    discovery.mark_deleted(conn, ["/p/x.jpg"])
    other = record(conn, "/p/x.jpg", 2)
    assert other.action == "new" and other.id != first  # never the retired row's id
    assert live(conn) == {"/p/x.jpg": (other.id, sha(2))}


def test_a_live_row_whose_file_is_gone_is_moved_not_duplicated(tmp_path: Path) -> None:
    """A file moved while watcherd was down, found by the scan in its new folder before the
    old folder was reached: the lane passes the gone twin as ``moved_from``."""
    conn = schema.connect(tmp_path / "w.db")
    first = record(conn, "/p/A/x.jpg", 1).id
    rec = discovery.record_file(conn, "/p/B/x.jpg", 1, 1.0, sha(1), REUSE,
                                moved_from=(first, "/p/A/x.jpg"))
    assert (rec.id, rec.action) == (first, "moved")
    assert live(conn) == {"/p/B/x.jpg": (first, sha(1))}
    # A stale hint (that row has moved on meanwhile) is ignored: a new row, not a theft.
    rec = discovery.record_file(conn, "/p/C/x.jpg", 1, 1.0, sha(1), REUSE,
                                moved_from=(first, "/p/A/x.jpg"))
    assert rec.action == "new" and rec.id != first


FOLDERS = ["/p/A", "/p/B", "/p/A/C"]
NAMES = ["x.jpg", "y.jpg"]
paths = st.builds(lambda f, n: f"{f}/{n}", st.sampled_from(FOLDERS), st.sampled_from(NAMES))


class FileOperations(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(__import__("tempfile").mkdtemp())
        self.conn = schema.connect(self.tmp / "w.db")
        self.files: dict[str, int] = {}  # path -> content
        self.ids: dict[str, int] = {}    # path -> the id its row must have
        self.trash: dict[str, int] = {}  # deleted path -> content

    def teardown(self) -> None:
        self.conn.close()
        __import__("shutil").rmtree(self.tmp, ignore_errors=True)

    @rule(path=paths, content=st.integers(0, 4))
    def write(self, path: str, content: int) -> None:
        rec = record(self.conn, path, content)
        self.files[path] = content
        self.ids[path] = rec.id

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(self.files)))
        discovery.mark_deleted(self.conn, [path])
        self.trash[path] = self.files.pop(path)
        self.ids.pop(path)

    @precondition(lambda self: self.trash)
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(self.trash)))
        if path in self.files:
            return
        self.write(path, self.trash.pop(path))

    @precondition(lambda self: self.files)
    @rule(data=st.data(), dest=paths)
    def rename_file(self, data: st.DataObject, dest: str) -> None:
        src = data.draw(st.sampled_from(sorted(self.files)))
        if src == dest:
            return
        image_id = discovery.move_path(self.conn, src, dest)  # rename(2) replaces dest
        self.files[dest] = self.files.pop(src)
        if image_id is None:
            image_id = record(self.conn, dest, self.files[dest]).id
        assert image_id == self.ids[src]
        self.ids[dest] = self.ids.pop(src)

    @rule(src=st.sampled_from(FOLDERS), dest=st.sampled_from([*FOLDERS, "/p/D"]))
    def rename_folder(self, src: str, dest: str) -> None:
        if src == dest or dest.startswith(src + "/") or src.startswith(dest + "/"):
            return  # rename(2) refuses to move a folder into itself
        if any(p.startswith(dest + "/") for p in self.files):
            return  # rename(2) refuses a non-empty destination
        if not any(p.startswith(src + "/") for p in self.files):
            return
        discovery.move_folder(self.conn, Path(src), Path(dest))
        for p in [p for p in self.files if p.startswith(src + "/")]:
            new = dest + p[len(src):]
            self.files[new] = self.files.pop(p)
            self.ids[new] = self.ids.pop(p)

    @invariant()
    def one_live_row_per_file_and_ids_kept(self) -> None:
        rows = live(self.conn)
        assert {p: s for p, (_, s) in rows.items()} == {p: sha(c) for p, c in self.files.items()}
        assert {p: i for p, (i, _) in rows.items()} == self.ids


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_no_sequence_of_file_operations_breaks_the_rows() -> None:
    FileOperations.TestCase.settings = settings(
        max_examples=150, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow])
    FileOperations.TestCase().runTest()
