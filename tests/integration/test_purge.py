"""The watcher's own purge (keep_deleted_days), in a real `watcherd watch` daemon."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import Daemon, wait_for, write_config
from tests.libraries import purge_library as library
from tests.libraries import purge_names as names


def test_the_watcher_purges_by_keep_deleted_days(tmp_path: Path,
                                                  daemons: list[Daemon]) -> None:
    config = write_config(tmp_path, database={"keep_deleted_days": 30})
    db_path = tmp_path / "watcherd.db"
    library(db_path)
    daemon = Daemon(config, "watch").start()
    daemons.append(daemon)
    wait_for(lambda: "purged deleted photos" in daemon.log(), 30, "the purge")
    assert "old" not in names(db_path) and "recent" in names(db_path)
    assert daemon.stop() == 0
