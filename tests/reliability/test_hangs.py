"""No photo hangs a worker forever: a SIGSTOPped thumbnail pool child and a SIGSTOPped embedding
worker, in a real ``watcherd run`` on RabbitMQ, mid-work. A stopped process cannot end itself
(its heartbeat thread stops with it); the watcher ends it from outside (``fleet/reaper``),
``watcherd run`` starts a new one, the broker gives its messages back. Every photo ends final
within ``max_attempts`` x the limit + 60 s; nothing is lost; only the stopped step's photos are
charged an attempt.

And a photo that hangs every time it is rendered ends ``failed``, "timed out after N s", alone:
Celery's hard time limit kills the pool child, the watcher's liveness logic charges it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import procs as ps
from tests.helpers import Daemon, query, require_broker, wait_for
from tests.reliability.conftest import (
    all_children,
    assert_clean,
    log_events,
    record,
    reliability_config,
    start_running,
    wait_settled,
    write_burst,
)
from tests.reliability.test_poison import WatcherSide, photos, worker_name
from watcherd import config
from watcherd.fleet import procinfo

SOFT, HARD, STEP, ATTEMPTS = 2.0, 3.0, 5.0, 3
BOUND_S = ATTEMPTS * max(HARD, STEP) + 60


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2:].split()[0]


def _count(db_path: Path, sql: str) -> int:
    return int(query(db_path, sql)[0][0])


@pytest.mark.parametrize("broker", ["amqp", "redis"])
def test_sigstop_of_a_thumbnail_child_and_of_the_embedding_worker_mid_work(
        broker: str, tmp_path: Path, tiny_model: str, daemons: list[Daemon]) -> None:
    daemon, photos_dir, db_path = start_running(
        tmp_path, require_broker(broker), tiny_model, daemons,
        broker={"max_attempts": ATTEMPTS},
        thumbnails={"soft_time_limit_seconds": SOFT, "time_limit_seconds": HARD},
        embeddings={"step_time_limit_seconds": STEP})
    assert daemon.proc is not None
    kids = all_children(daemon.proc.pid)
    n = 200
    write_burst(photos_dir, n, size=900)  # ~50 ms of thumbnails each: the pool stays busy
    wait_for(lambda: _count(db_path, "SELECT count(*) FROM images WHERE thumbnail_status = "
                            "'done'") >= 1, 60, "the first thumbnails")
    # A pool child caught running (in a task), stopped.
    child = wait_for(lambda: next((p for p in ps.children(kids["thumbnails"])
                                   if _state(p) == "R"), None), 30, "a busy pool child",
                     interval=0.005)
    os.kill(child, signal.SIGSTOP)
    stopped_at = time.monotonic()
    # The embedding worker, mid-batch.
    wait_for(lambda: _count(db_path, "SELECT count(*) FROM images WHERE embedding_status = "
                            "'done'") >= 1, 60, "the first embeddings")
    os.kill(kids["embeddings"], signal.SIGSTOP)
    pending_at_stop = _count(db_path, "SELECT count(*) FROM images WHERE "
                             "embedding_status = 'pending'")
    s = wait_settled(db_path, photos_dir, BOUND_S, "every photo final after the stops",
                     expect_files=n)
    took = time.monotonic() - stopped_at
    assert_clean(s)  # all done: a photo stopped once is tried again and succeeds
    assert took <= BOUND_S
    # The stopped processes were ended from outside and replaced.
    wait_for(lambda: not ps.alive(child) and not ps.alive(kids["embeddings"]), 30,
             "the stopped processes to be gone")
    assert all_children(daemon.proc.pid)["embeddings"] != kids["embeddings"]
    assert all_children(daemon.proc.pid)["thumbnails"] == kids["thumbnails"]  # its pool healed
    log = daemon.log()
    ended = [e for e in log_events(log) if e.get("event") == "ended a stuck worker process"]
    # Celery's hard limit or the watcher (a child stopped for 6 s), whichever comes first: on
    # Redis the pool's timeout handler can be later than the watcher.
    assert "Hard time limit (3.0s) exceeded" in log or child in {e["worker_pid"] for e in ended}
    assert {e["worker_pid"] for e in ended} <= {child, kids["embeddings"]}
    assert kids["embeddings"] in {e["worker_pid"] for e in ended}
    # Only the stopped steps' photos were charged, once each (a child: its one photo; the
    # embedding worker: the photo it was decoding or the batch it was encoding).
    charged = query(db_path, "SELECT thumbnail_attempts t, embedding_attempts e FROM images "
                    "WHERE thumbnail_attempts > 0 OR embedding_attempts > 0")
    assert sum(r["t"] for r in charged) <= 1 and max([r["t"] for r in charged] or [0]) <= 1
    # One step's photos: one photo's decode, or one batch's encode, i.e. at most batch_size,
    # which the reliability suite sets to 16 (tests/reliability/conftest.py). Stopped during a
    # decode, 1 photo is charged; during an encode, the batch (16, seen under the full suite).
    assert sum(r["e"] for r in charged) <= 16 and max([r["e"] for r in charged] or [0]) <= 1
    record(fault="SIGSTOP of a thumbnail pool child and of the embedding worker", broker=broker,
           ended=[("child" if e["worker_pid"] == child else "embeddings", e["why"])
                  for e in ended],
           files=n, done=s["done"], failed=s["failed"], lost=s["lost"],
           embeddings_pending_at_stop=pending_at_stop,
           charged_thumbnail=sum(r["t"] for r in charged),
           charged_embedding=sum(r["e"] for r in charged),
           all_final_s=round(took, 1), bound_s=BOUND_S)
    assert daemon.stop() == 0


@pytest.fixture
def side(tmp_path: Path, tiny_model: str) -> Iterator[WatcherSide]:
    """The watcher's fleet monitor and outbox in the test (they must see the markers), with the
    thumbnail time limits of this module."""
    path = reliability_config(tmp_path, require_broker("amqp"), tiny_model,
                              broker={"max_attempts": ATTEMPTS},
                              thumbnails={"soft_time_limit_seconds": SOFT,
                                          "time_limit_seconds": HARD},
                              embeddings={"batch_size": 8, "max_wait_ms": 1000})
    s = WatcherSide(config.load(path))
    s.config_path = path  # type: ignore[attr-defined]
    yield s
    s.close()


def test_a_photo_that_hangs_its_thumbnail_child_every_time_fails_alone_timed_out(
        side: WatcherSide, daemons: list[Daemon]) -> None:
    """The poison photo's child is SIGSTOPped each time it starts on it (a decode that never
    returns): Celery's hard limit kills it, gives the message back, and the watcher's fleet
    logic (here the test's own FleetMonitor) charges it as timed out, until it fails."""
    path = side.config_path  # type: ignore[attr-defined]
    innocents, poison = photos(side)
    worker = Daemon(path, "worker", "thumbnails").start()
    daemons.append(worker)
    name = worker_name("thumbnails", worker)
    started = time.monotonic()
    stopped: set[int] = set()

    def hang_the_poison() -> bool:
        for pid, items in side.steps(name).items():
            if items == (poison,) and pid not in stopped:
                os.kill(pid, signal.SIGSTOP)
                stopped.add(pid)
        return side.row(poison[0])["thumbnail_status"] == "failed"

    side.ticking_until(hang_the_poison, 3 * HARD * 3 + 60, "the hanging photo to be failed")
    took = time.monotonic() - started
    side.ticking_until(lambda: all(side.row(i)["thumbnail_status"] == "done"
                                   for i, _ in innocents), 60, "the innocents done")
    r = side.row(poison[0])
    assert r["thumbnail_error"] == (f"timed out after {HARD:g} s ({ATTEMPTS} attempts): a "
                                    "pathological file, or a read stuck on its disk?")
    assert r["thumbnail_attempts"] == ATTEMPTS
    assert all(side.row(i)["thumbnail_attempts"] == 0 for i, _ in innocents)
    assert took <= ATTEMPTS * HARD + 60
    assert worker.proc is not None and worker.proc.poll() is None, "the worker itself lives"
    # A child may have taken the message again before the last death was counted: it is
    # stopped too, and ended like the others.
    side.ticking_until(lambda: not [p for p in stopped if procinfo.stopped(p)], 2 * HARD + 10,
                       "no stopped child left")
    record(fault="photo that hangs its thumbnail child every time", broker="amqp",
           children_stopped=len(stopped), failed_after_s=round(took, 1))
