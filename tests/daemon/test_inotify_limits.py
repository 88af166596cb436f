"""inotify's limits, for real: a queue overflow must trigger a rescan (not silence), and running
out of watches must fall back to polling with advice, not kill the watcher.

These lower machine-wide sysctls for a few seconds (restored in `finally`), so they need root and
are marked slow; they run the watcher alone (rows recorded is what is checked)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import Daemon, query, wait_for, write_config

pytestmark = pytest.mark.skipif(
    not os.access("/proc/sys/fs/inotify/max_queued_events", os.W_OK),
    reason="needs root to change fs.inotify limits")


@contextmanager
def sysctl(name: str, value: int) -> Iterator[None]:
    path = Path("/proc/sys/fs/inotify") / name
    old = path.read_text().strip()
    path.write_text(str(value))
    try:
        yield
    finally:
        path.write_text(old)


def count_rows(db: Path) -> int:
    return len(query(db, "SELECT id FROM images"))


def test_queue_overflow_triggers_a_rescan_and_nothing_is_missed(tmp_path: Path,
                                                                daemons: list[Daemon]) -> None:
    config = write_config(tmp_path, watch={"settle_seconds": 0.5})
    daemon = Daemon(config, "watch")
    # The queue limit is read when the inotify instance is created: lower it just for that.
    with sysctl("max_queued_events", 64):
        daemon.start()
        daemons.append(daemon)
        wait_for(lambda: '"event": "watching"' in daemon.log(), 30, "the watcher to start")
    photos = tmp_path / "photos"
    n = 3000
    for i in range(n):
        (photos / f"burst-{i:05d}.jpg").write_bytes(b"\xff\xd8\xff" + i.to_bytes(4, "big"))
    db = tmp_path / "watcherd.db"
    wait_for(lambda: count_rows(db) == n, 120, f"all {n} files recorded", interval=0.5)
    log = daemon.log()
    assert "inotify queue overflowed" in log.lower()
    assert "rescanning now" in log
    assert daemon.stop() == 0


def test_out_of_watches_falls_back_to_polling(tmp_path: Path, daemons: list[Daemon]) -> None:
    config = write_config(tmp_path, watch={"polling_interval_seconds": 0.5})
    (tmp_path / "photos" / "a" / "b").mkdir(parents=True)
    daemon = Daemon(config, "watch")
    # 0: the kernel counts watches in per-CPU batches, so a small non-zero limit is not exact.
    with sysctl("max_user_watches", 0):
        daemon.start()
        daemons.append(daemon)
        wait_for(lambda: '"event": "watching"' in daemon.log(), 30, "the watcher to start")
    log = daemon.log()
    assert "max_user_watches" in log and "falling back to polling" in log
    assert '"observer": "polling"' in log
    (tmp_path / "photos" / "a" / "b" / "late.jpg").write_bytes(b"\xff\xd8\xffdata")
    db = tmp_path / "watcherd.db"
    wait_for(lambda: count_rows(db) == 1, 30, "the polling observer to record the file")
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert daemon.stop() == 0
