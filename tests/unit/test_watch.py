"""The watcher in-process: real inotify in tmp_path, real lane threads, a real SQLite file and
the embedded spool broker, with the main loop in a thread of the test. Hashing is the one thing
a test may replace (``lane.hasher``), to hold a lane still or make a read fail."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import query, wait_for
from watcherd import config
from watcherd.broker.app import make_app
from watcherd.watch.files import sha256_file
from watcherd.watch.loop import Watcher


def make_cfg(tmp_path: Path, roots: list[Path], **watch: Any) -> config.Config:
    for r in roots:
        r.mkdir(parents=True, exist_ok=True)
    return config.from_dict({
        "watch": {"paths": [str(r) for r in roots], "settle_seconds": 0.3, **watch},
        "database": {"path": str(tmp_path / "w.db")},
        "broker": {"outbox_interval_seconds": 0.2},
        "embeddings": {"model": "local-dir:/nonexistent", "pretrained": ""},
    })


@contextmanager
def running(cfg: config.Config, *, observe: bool = True,
            before: Any = None) -> Iterator[Watcher]:
    w = Watcher(cfg, make_app(cfg))
    if before is not None:
        before(w)
    w.start(observe=observe)
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    try:
        yield w
    finally:
        w.stop()
        for lane in w.lanes.values():  # release any hasher a test holds
            getattr(lane.hasher, "release", lambda: None)()
        t.join(10)
        assert not t.is_alive(), "the main loop did not stop"
        w.close()


def live_names(db: Path) -> set[str]:
    return {Path(r["path"]).name for r in query(db, "SELECT path FROM images "
                                                    "WHERE deleted_at IS NULL")}


def jpg(path: Path, content: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff" + (content or path.name.encode()))
    return path


class Gate:
    """A hasher that blocks on chosen files until released (a hung network read)."""

    def __init__(self, block: set[str] | None = None, after: int | None = None) -> None:
        self.block, self.after = block or set(), after
        self.count = 0
        self.waiting = threading.Event()
        self._open = threading.Event()

    def release(self) -> None:
        self._open.set()

    def __call__(self, path: str) -> str:
        self.count += 1
        if os.path.basename(path) in self.block or (self.after and self.count > self.after):
            self.waiting.set()
            self._open.wait(60)
        return sha256_file(path)


def test_hidden_and_excluded_folders_never_get_rows_or_watches(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    jpg(photos / "ok.jpg")
    jpg(photos / ".hidden" / "a.jpg")
    jpg(photos / "@eaDir" / "ok.jpg" / "SYNOFILE_THUMB_XL.jpg")
    jpg(photos / "2024" / "@eaDir" / "x.jpg" / "SYNOFILE_THUMB_M.jpg")
    db = tmp_path / "w.db"
    with running(make_cfg(tmp_path, [photos])) as w:
        wait_for(lambda: live_names(db) == {"ok.jpg"}, 10, "the start scan")
        watched = set(w.observer.watched_folders())  # type: ignore[union-attr]
        assert watched == {str(photos), str(photos / "2024")}, watched
        # Live: a photo in a hidden folder, a new @eaDir: nothing, and no watch.
        jpg(photos / ".hidden" / "c.jpg")
        jpg(photos / "2024" / "@eaDir" / "y.jpg" / "SYNOFILE_THUMB_M.jpg")
        jpg(photos / "2024" / "y.jpg")
        wait_for(lambda: "y.jpg" in live_names(db), 10, "y.jpg")
        assert live_names(db) == {"ok.jpg", "y.jpg"}
        assert str(photos / "2024" / "@eaDir") not in w.observer.watched_folders()  # type: ignore
        # Renamed out of hidden: a take. Renamed into hidden: a delete, and its watches go.
        (photos / ".hidden").rename(photos / "shown")
        wait_for(lambda: live_names(db) == {"ok.jpg", "y.jpg", "a.jpg", "c.jpg"}, 10, "a take")
        assert str(photos / "shown") in w.observer.watched_folders()  # type: ignore
        (photos / "shown").rename(photos / ".private")
        wait_for(lambda: live_names(db) == {"ok.jpg", "y.jpg"}, 10, "a delete")
        assert not [f for f in w.observer.watched_folders()  # type: ignore[union-attr]
                    if ".private" in f]
        jpg(photos / ".private" / "d.jpg")  # no watch there: no event, no row
        # A rescan agrees with the live view: no flip-flop.
        w.request_rescan()
        wait_for(lambda: w.stats.scans >= 2, 10, "the rescan")
        time.sleep(0.5)
        assert live_names(db) == {"ok.jpg", "y.jpg"}


def test_a_folder_that_becomes_excluded_loses_its_rows_at_the_next_scan(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    jpg(photos / "Backup" / "old" / "x.jpg")
    jpg(photos / "keep.jpg")
    db = tmp_path / "w.db"
    with running(make_cfg(tmp_path, [photos])):
        wait_for(lambda: live_names(db) == {"x.jpg", "keep.jpg"}, 10, "the first scan")
    with running(make_cfg(tmp_path, [photos], exclude=[".*", "Backup"])) as w:
        wait_for(lambda: w.stats.scans >= 1, 10, "the scan")
        assert live_names(db) == {"keep.jpg"}


def test_the_scan_streams_and_a_stuck_root_stalls_nothing_else(tmp_path: Path) -> None:
    """Root A: 300 photos on disk, its lane's reads hang after 100. Rows and tasks flow for
    the first 100 while the scan is still going; root B's live photo is recorded; the main loop
    goes on and says which folder is not responding."""
    a, b = tmp_path / "A", tmp_path / "B"
    for i in range(300):
        jpg(a / f"d{i // 50}" / f"p{i:03d}.jpg")
    b.mkdir()
    old = time.time() - 60
    for p in a.rglob("*.jpg"):
        os.utime(p, (old, old))
    db = tmp_path / "w.db"
    gate = Gate(after=100)

    def hold(w: Watcher) -> None:
        w.lanes[a].hasher = gate
        w.stalled_after_s = 0.5

    with running(make_cfg(tmp_path, [a, b]), before=hold) as w:
        assert gate.waiting.wait(20)
        wait_for(lambda: len(query(db, "SELECT id FROM images WHERE thumbnail_queued_at "
                                       "IS NOT NULL")) == 100, 10, "100 photos sent")
        scan = wait_for(lambda: [r for r in query(db, "SELECT * FROM scans WHERE root = ?",
                                                  (str(a),)) if r["files"] > 100], 10,
                        "the scan's progress in the scans table")[0]
        assert scan["state"] == "scanning", dict(scan)
        jpg(b / "live.jpg")
        wait_for(lambda: "live.jpg" in live_names(db), 10, "root B's photo while A hangs")
        wait_for(lambda: "NOT RESPONDING" in w.status_line(), 10, "the stall to show")
        assert "scanning" in w.status_line()
        gate.release()
        wait_for(lambda: len(live_names(db)) == 301, 30, "the rest of the scan")
        wait_for(lambda: "NOT RESPONDING" not in w.status_line(), 10, "the stall to clear")
        scan = query(db, "SELECT * FROM scans WHERE root = ?", (str(a),))[0]
        assert (scan["state"], scan["files"], scan["to_take"]) == ("done", 300, 300)


def test_live_photos_go_ahead_of_the_scan(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for i in range(400):
        jpg(photos / f"scan{i:03d}.jpg")
    order: list[str] = []

    def slow(path: str) -> str:
        order.append(os.path.basename(path))
        time.sleep(0.005)
        return sha256_file(path)

    def hold(w: Watcher) -> None:
        w.lanes[photos].hasher = slow
        w.lanes[photos].settle_seconds = 0.0  # the scan's files were written moments ago

    db = tmp_path / "w.db"
    with running(make_cfg(tmp_path, [photos]), before=hold):
        wait_for(lambda: len(order) >= 20, 10, "the scan to start hashing")
        jpg(photos / "live.jpg")
        wait_for(lambda: "live.jpg" in live_names(db), 10, "the live photo")
        assert order.index("live.jpg") < 200, order.index("live.jpg")
        wait_for(lambda: len(live_names(db)) == 401, 30, "everything")


def test_a_read_error_is_a_failed_row_with_the_reason(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    jpg(photos / "fine.jpg")
    jpg(photos / "bad.jpg")

    def eio(path: str) -> str:
        if path.endswith("bad.jpg"):
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        return sha256_file(path)

    db = tmp_path / "w.db"
    with running(make_cfg(tmp_path, [photos]),
                 before=lambda w: setattr(w.lanes[photos], "hasher", eio)):
        wait_for(lambda: live_names(db) == {"fine.jpg", "bad.jpg"}, 10, "both rows")
    row = query(db, "SELECT * FROM images WHERE path LIKE '%bad.jpg'")[0]
    assert row["thumbnail_status"] == row["embedding_status"] == "failed"
    assert row["thumbnail_error"] == "read error: Input/output error"


@pytest.mark.parametrize("old,new", [("a", "z"), ("z", "a")])
def test_a_photo_moved_while_down_keeps_its_row(tmp_path: Path, old: str, new: str) -> None:
    """Either scan order: the new folder reached before or after the old one."""
    photos = tmp_path / "photos"
    src = jpg(photos / old / "x.jpg", b"same bytes")
    jpg(photos / old / "stays.jpg")
    db = tmp_path / "w.db"
    cfg = make_cfg(tmp_path, [photos])
    with running(cfg):
        wait_for(lambda: live_names(db) == {"x.jpg", "stays.jpg"}, 10, "the first scan")
    first = query(db, "SELECT id FROM images WHERE path = ?", (str(src),))[0]["id"]
    (photos / new).mkdir()
    src.rename(photos / new / "x.jpg")
    w = Watcher(cfg, make_app(cfg))
    w.start(observe=False)
    try:
        totals = w.scan_once([photos], timeout=30)
    finally:
        w.close()
    rows = query(db, "SELECT id, path, deleted_at FROM images WHERE path LIKE '%x.jpg'")
    assert [(r["id"], r["path"], r["deleted_at"]) for r in rows] == [
        (first, str(photos / new / "x.jpg"), None)]
    assert totals["unchanged"] == 1


def test_a_round_capped_at_drain_max_loses_nothing(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood larger than one round's cap (5,000 events from `cp -r`): the item that ends a
    round is handled in the next one, not dropped."""
    from watcherd.watch import loop
    from watcherd.watch.lane import Hashed

    monkeypatch.setattr(loop, "DRAIN_MAX", 10)
    photos = tmp_path / "photos"
    cfg = make_cfg(tmp_path, [photos])
    w = Watcher(cfg, make_app(cfg))
    try:
        for i in range(25):
            w.inbox.put(Hashed(f"{photos}/p{i}.jpg", 1, 1.0, f"sha{i}", time.monotonic(), "live"))
        for _ in range(3):
            w.step(timeout=0.0)
    finally:
        w.close()
    assert len(live_names(tmp_path / "w.db")) == 25
