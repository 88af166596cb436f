"""The settle state machine with a fake clock and a fake stat: no sleeping, no files."""

from __future__ import annotations

from watcherd.watch.files import FileInfo
from watcherd.watch.settle import SettleTracker


class World:
    def __init__(self) -> None:
        self.now = 100.0
        self.files: dict[str, tuple[int, float]] = {}

    def clock(self) -> float:
        return self.now

    def stat(self, path: str) -> FileInfo | None:
        f = self.files.get(path)
        return None if f is None else FileInfo(path, *f)


def tracker(w: World, settle: float = 2.0) -> SettleTracker:
    return SettleTracker(settle, clock=w.clock, stat=w.stat)


def test_complete_files_are_due_at_once() -> None:
    w = World()
    w.files["a"] = (10, 1.0)
    t = tracker(w)
    t.mark("a", ready=True)
    assert t.due() == ["a"] and len(t) == 0


def test_a_growing_file_waits_until_still_for_settle_seconds() -> None:
    w = World()
    t = tracker(w)
    w.files["a"] = (10, 1.0)
    t.mark("a", ready=False)
    w.now += 1.5
    assert t.due() == []
    w.files["a"] = (20, 2.0)  # still being written
    w.now += 1.9
    assert t.due() == []       # changed: the clock starts again
    w.now += 1.9
    assert t.due() == []
    w.now += 0.2
    assert t.due() == ["a"]


def test_a_close_after_write_overrides_waiting() -> None:
    w = World()
    t = tracker(w)
    w.files["a"] = (10, 1.0)
    t.mark("a", ready=False)
    t.mark("a", ready=True)
    assert t.due() == ["a"]


def test_vanished_files_are_dropped() -> None:
    w = World()
    t = tracker(w)
    w.files["a"] = (10, 1.0)
    t.mark("a", ready=False)
    del w.files["a"]
    w.now += 5
    assert t.due() == [] and len(t) == 0
    t.mark("gone", ready=True)  # deleted before its event was handled
    assert len(t) == 0


def test_forget_and_move_under_a_folder() -> None:
    w = World()
    t = tracker(w)
    for p in ("/r/A/x", "/r/A/y", "/r/AB/z"):
        w.files[p] = (1, 1.0)
        t.mark(p, ready=False)
    assert sorted(t.pop_under("/r/A")) == ["/r/A/x", "/r/A/y"]
    assert "/r/AB/z" in t and len(t) == 1
    t.forget_under("/r/AB/")
    assert len(t) == 0
