"""Faults injected into the real processes of `watcherd run`: kill -9 of each child in the middle
of its work, and the broker server stopped for ~30 s during a burst. After each fault every file
must end in exactly one row with a final status, with no manual `retry`.

Time to recovery = from the fault (the kill, or the broker's return) until every file on disk has
a final row."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests import procs as ps
from tests.conftest import Daemon, query, require_broker, wait_for
from tests.reliability.conftest import (
    BackgroundBurst,
    all_children,
    assert_clean,
    broker_up,
    record_recovery,
    start_broker,
    start_running,
    stop_broker,
    wait_settled,
    write_burst,
)

SETTLE_TIMEOUT = 120


def _count(db_path: Path, sql: str) -> int:
    rows = query(db_path, sql)
    return int(rows[0][0]) if rows else 0


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["embedded", "amqp", "redis"])
def test_kill_9_each_child_mid_work(broker: str, tmp_path: Path, tiny_model: str,
                                    daemons: list[Daemon]) -> None:
    daemon, photos, db_path = start_running(tmp_path, require_broker(broker), tiny_model,
                                            daemons)
    assert daemon.proc is not None
    all_children(daemon.proc.pid)

    def kill(role: str, group: bool = False) -> float:
        pid = all_children(daemon.proc.pid)[role]
        (os.killpg if group else os.kill)(pid, signal.SIGKILL)
        return time.monotonic()

    def kill_once_started(role: str, column: str, first_id: int, what: str) -> dict[str, Any]:
        """Kill ``role`` as soon as it has finished its first file of the burst that starts at
        ``first_id``; wait until every file is final again. The recovery's figures."""
        wait_for(lambda: _count(db_path, f"SELECT count(*) FROM images WHERE id > {first_id} "
                                f"AND {column} != 'pending'") >= 1, 60, f"the first {what}")
        left = _count(db_path, f"SELECT count(*) FROM images WHERE {column} = 'pending'")
        killed_at = kill(role)
        s = wait_settled(db_path, photos, SETTLE_TIMEOUT, f"recovery after the {role} kill",
                         expect_files=total)
        assert_clean(s)
        return {"s": s, "took": time.monotonic() - killed_at, "pending_at_kill": left}

    total = 0
    # 1. The embedding worker, while it works through a batch.
    n = 300
    write_burst(photos, n, start=total, prefix="emb")
    total += n
    r = kill_once_started("embeddings", "embedding_status", 0, "embeddings")
    record_recovery("kill -9 embedding worker mid-batch", broker, n, r["s"], r["took"],
                    pending_at_kill=r["pending_at_kill"])

    # 2. The thumbnail worker (its main process; the pool children must not linger), mid-task.
    thumbs_before = all_children(daemon.proc.pid)["thumbnails"]
    pool = ps.children(thumbs_before)
    write_burst(photos, n, start=total, prefix="thu", size=320)  # bigger: slower thumbnails
    total += n
    r = kill_once_started("thumbnails", "thumbnail_status", n, "thumbnails")
    assert all_children(daemon.proc.pid)["thumbnails"] != thumbs_before
    wait_for(lambda: not [p for p in pool if ps.alive(p)], 30,
             "the killed worker's pool children to exit")
    record_recovery("kill -9 thumbnail worker mid-task", broker, n, r["s"], r["took"],
                    pending_at_kill=r["pending_at_kill"])

    # 3. The watcher, in the middle of a burst of files being written.
    burst = BackgroundBurst(photos, n, start=total, prefix="wat")
    burst.start()
    wait_for(lambda: burst.written >= n // 3, 60, "a third of the burst")
    killed_at = kill("watcher")
    burst.finish()
    total += n
    s = wait_settled(db_path, photos, SETTLE_TIMEOUT, "recovery after the watcher's kill",
                     expect_files=total)
    took = time.monotonic() - killed_at
    assert_clean(s)
    record_recovery("kill -9 watcher during a burst", broker, n, s, took)
    assert s["done"] == total
    assert daemon.stop() == 0


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["amqp", "redis"])
def test_broker_stopped_30s_during_a_burst(broker: str, tmp_path: Path, tiny_model: str,
                                           daemons: list[Daemon],
                                           broker_restorer: list[str]) -> None:
    """The embedded spool broker has no server to stop (it is a folder), so this fault runs
    against the two server brokers. Redis keeps nothing on disk here: its queued messages are
    lost with the restart and the outbox re-sends them."""
    daemon, photos, db_path = start_running(tmp_path, require_broker(broker), tiny_model,
                                            daemons)
    assert daemon.proc is not None
    kids = all_children(daemon.proc.pid)
    n = 300
    burst = BackgroundBurst(photos, n)
    burst.start()
    wait_for(lambda: burst.written >= n // 3, 60, "a third of the burst")
    broker_restorer.append(broker)
    stop_broker(broker)
    stopped_at = time.monotonic()
    burst.finish()
    while time.monotonic() - stopped_at < 30:
        assert daemon.proc.poll() is None, "watcherd run must stay up"
        time.sleep(1)
    rows_while_down = _count(db_path, "SELECT count(*) FROM images")
    assert all_children(daemon.proc.pid)["watcher"] == kids["watcher"], "the watcher stays up"
    start_broker(broker)
    back_at = time.monotonic()
    s = wait_settled(db_path, photos, SETTLE_TIMEOUT, "everything done after the broker returned",
                     expect_files=n)
    took = time.monotonic() - back_at
    assert_clean(s)
    assert s["done"] == n
    assert broker_up(broker)
    # The workers tried again every few seconds (Celery's own backoff grows to 30 s).
    waits = [float(w) for w in re.findall(r"Trying again in (\d+\.\d+) seconds?", daemon.log())]
    assert waits and max(waits) <= 5, waits
    record_recovery("broker stopped 30 s during a burst", broker, n, s, took,
                    rows_recorded_while_down=rows_while_down,
                    watcher_restarts=int(all_children(daemon.proc.pid)["watcher"]
                                         != kids["watcher"]))
    assert daemon.stop() == 0
