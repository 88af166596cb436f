"""The reconcile scan against real folders and a real SQLite file: what it takes, what it marks
deleted, and what it must leave alone when it cannot see a folder."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from tests.libraries import REUSE
from tests.libraries import deleted_names as _deleted
from tests.libraries import make_tree as _tree
from tests.libraries import record_all as _record_all
from tests.libraries import scan_rules as _rules
from watcherd.store import discovery, schema
from watcherd.watch import scan


def test_reconcile_takes_new_skips_unchanged_and_marks_removed(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    _tree(root)
    conn = schema.connect(tmp_path / "w.db")
    first = scan.reconcile(conn, root, _rules(root))
    assert sorted(Path(i.path).name for i in first.to_take) == ["B.PNG", "a.jpg", "c.jpg"]
    _record_all(conn, root)
    (root / "a.jpg").unlink()
    shutil.rmtree(root / "sub")
    (root / "B.PNG").write_bytes(b"y" * 11)
    again = scan.reconcile(conn, root, _rules(root))
    assert [Path(i.path).name for i in again.to_take] == ["B.PNG"]
    assert (again.deleted, again.unreadable) == (2, [])
    assert _deleted(conn) == {"a.jpg", "c.jpg"}


def test_missing_root_marks_nothing_deleted(tmp_path: Path) -> None:
    """An unmounted disk or a renamed root is not 'every photo deleted'."""
    root = tmp_path / "photos"
    _tree(root)
    conn = schema.connect(tmp_path / "w.db")
    _record_all(conn, root)
    root.rename(tmp_path / "elsewhere")
    result = scan.reconcile(conn, root, _rules(root))
    assert result.deleted == 0 and _deleted(conn) == set()
    assert [f for f, _ in result.unreadable] == [str(root)]
    # Back again: nothing to take, nothing was lost.
    (tmp_path / "elsewhere").rename(root)
    back = scan.reconcile(conn, root, _rules(root))
    assert (back.to_take, back.unchanged, back.deleted) == ([], 3, 0)


def test_an_emptied_root_is_not_a_deleted_library(tmp_path: Path) -> None:
    """The bare mount point of a disk that is not mounted looks like an empty folder: the scan
    leaves the rows alone. One file left in it, and the rest are marked deleted as usual."""
    root = tmp_path / "photos"
    _tree(root)
    conn = schema.connect(tmp_path / "w.db")
    _record_all(conn, root)
    shutil.rmtree(root)
    root.mkdir()
    result = scan.reconcile(conn, root, _rules(root))
    assert result.deleted == 0 and _deleted(conn) == set()
    assert result.unreadable == [(str(root), "folder is empty (disk not mounted?)")]
    (root / "a.jpg").write_bytes(b"x" * 10)
    result = scan.reconcile(conn, root, _rules(root))
    assert (result.deleted, result.unreadable) == (2, [])
    assert _deleted(conn) == {"B.PNG", "c.jpg"}


def test_a_folder_created_while_the_scan_runs_is_not_gone(tmp_path: Path) -> None:
    """The scan lists the root, then a folder appears with a photo that a live event records:
    the end of the walk must not count that folder's rows as gone."""
    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.jpg").write_bytes(b"x")
    conn = schema.connect(tmp_path / "w.db")
    s = scan.Scan(conn, root, _rules(root))
    assert s.step() is not None  # the root: 'a' queued, 'b' not there yet
    time.sleep(0.002)
    (root / "b").mkdir()
    (root / "b" / "new.jpg").write_bytes(b"n")
    discovery.record_file(conn, str(root / "b" / "new.jpg"), 1, 1.0, "n", REUSE)  # a live event
    while s.step() is not None:
        pass
    assert s.finish() == []


def test_a_stale_gone_never_deletes_a_row_changed_since(tmp_path: Path) -> None:
    """A folder listed without p, then a rename onto p recorded by a live event: the scan's
    'p is gone' (applied later) must leave the moved row alone."""
    conn = schema.connect(tmp_path / "w.db")
    discovery.record_file(conn, "/p/q.jpg", 1, 1.0, "q", REUSE)
    listed_at = schema.now_iso()
    time.sleep(0.002)
    discovery.move_path(conn, "/p/q.jpg", "/p/p.jpg")
    assert discovery.mark_deleted(conn, ["/p/p.jpg"], before=listed_at) == 0
    assert discovery.mark_folder_files_deleted(conn, "/p", before=listed_at) == 0
    assert discovery.mark_deleted(conn, ["/p/p.jpg"]) == 1
