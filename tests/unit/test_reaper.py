"""Which pid space a worker is in, as the reaper compares them (ending real processes:
tests/process/test_reaper.py)."""

from __future__ import annotations

from watcherd.fleet import reaper


def test_a_part_one_side_cannot_read_decides_nothing() -> None:
    """Under systemd the watcher's unit (ProcSubset=pid) or an older worker may know less: only
    a part both sides know can make a worker someone else's."""
    assert reaper.same_space("m/1", "m/1")
    assert not reaper.same_space("m/2", "m/1") and not reaper.same_space("x/1", "m/1")
    assert reaper.same_space("/1", "m/1") and reaper.same_space("m/1", "/1")
    assert reaper.same_space("m/", "m/1") and reaper.same_space("", "m/1")
