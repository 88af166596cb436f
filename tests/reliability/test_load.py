"""Load: bursts of thousands of files, SQLite contention with a long reader, and RSS over a long
run. Sizes are scaled to fit CI's budget on a 2-core machine; the env vars below scale them up:

- ``WATCHERD_BURST_FILES`` (default 5000): files copied in one go through `watcherd run`.
- ``WATCHERD_NESTED_FILES`` (default 20000): files created in nested folders, watcher alone.
- ``WATCHERD_RELIABILITY_FILES`` (default 6000): files through `watcherd run` for the RSS
  curve, in 20 waves (10000 for docs/reliability.md's figures: the suite's time budget).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests import procs as ps
from tests.helpers import Daemon, query, require_broker, wait_for
from tests.reliability.conftest import (
    all_children,
    assert_clean,
    computations,
    computed_twice,
    record,
    reliability_config,
    rss_kb,
    state,
    wait_settled,
    write_burst,
)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _started(daemon: Daemon) -> None:
    wait_for(lambda: "embedding model loaded" in daemon.log(), 60, "the model to load")


@pytest.mark.parametrize("broker", ["embedded", "redis"])
def test_burst_copied_in_one_go(broker: str, tmp_path: Path, tiny_model: str,
                                daemons: list[Daemon]) -> None:
    """`cp -r` of a folder of small JPEGs into the watched folder while `watcherd run` runs.
    The embedded broker gets the full count, Redis a fifth of it (the budget)."""
    url = require_broker(broker)
    n = _env_int("WATCHERD_BURST_FILES", 5000) // (1 if broker == "embedded" else 5)
    config = reliability_config(tmp_path, url, tiny_model, embeddings={"batch_size": 32})
    photos, db_path = tmp_path / "photos", tmp_path / "watcherd.db"
    staging = tmp_path / "staging" / "burst"
    staging.mkdir(parents=True)
    write_burst(staging, n)
    daemon = Daemon(config).start()
    daemons.append(daemon)
    _started(daemon)
    started = time.monotonic()
    subprocess.run(["cp", "-r", str(staging), str(photos)], check=True)
    s = wait_settled(db_path, photos, 400, f"{n} copied files done", expect_files=n)
    took = time.monotonic() - started
    assert_clean(s)
    assert s["done"] == n
    log = daemon.log()
    overflow = "inotify queue overflowed" in log
    assert daemon.stop() == 0
    once = assert_computed_once(log, n)
    record(fault=f"burst: {n} files copied in one go (cp -r)", broker=broker, files=n,
           done=s["done"], failed=s["failed"], lost=s["lost"], **once,
           all_done_s=round(took, 1), files_per_s=round(n / took, 1), overflow=overflow)


def assert_computed_once(log: str, n: int) -> dict[str, int]:
    """Nothing died: every photo's thumbnails and embedding were computed exactly once (the
    workers' own log lines; all photos differ, so none is reused from a twin)."""
    counts = computations(log)
    for kind, c in counts.items():
        assert len(c) == n, (kind, len(c), n)
        assert computed_twice(log)[kind] == [], (kind, computed_twice(log)[kind])
    return {f"{kind}s_computed": sum(c.values()) for kind, c in counts.items()}


def test_nested_burst_watcher_alone(tmp_path: Path, daemons: list[Daemon]) -> None:
    """20,000 files created in 200 nested folders in one go, the watcher alone: every file is
    recorded (an inotify overflow, if any, is logged and answered with a rescan)."""
    n = _env_int("WATCHERD_NESTED_FILES", 20000)
    config = reliability_config(tmp_path, "", "")
    photos, db_path = tmp_path / "photos", tmp_path / "watcherd.db"
    daemon = Daemon(config, "watch").start()
    daemons.append(daemon)
    wait_for(lambda: '"watching"' in daemon.log() and "scan done" in daemon.log(), 30,
             "the watcher to start")
    started = time.monotonic()
    write_burst(photos, n, per_folder=100)
    written = time.monotonic() - started

    def recorded() -> int:
        return int(query(db_path, "SELECT count(*) FROM images WHERE deleted_at IS NULL")[0][0])

    wait_for(lambda: recorded() >= n, 300, f"{n} rows", interval=1)
    took = time.monotonic() - started
    s = state(db_path, photos)
    assert s["files"] == n and s["lost"] == 0 and s["ghosts"] == 0, s
    log = daemon.log()
    overflow = "inotify queue overflowed" in log
    if overflow:
        assert log.count('"scan done"') >= 2, "an overflow must be followed by a rescan"
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert daemon.stop() == 0
    record(fault=f"burst: {n} files created in nested folders (watcher alone)", broker="embedded",
           files=n, rows=s["rows"], lost=s["lost"],
           write_s=round(written, 1), all_recorded_s=round(took, 1), overflow=overflow)


@pytest.mark.parametrize("broker", ["embedded", "amqp"])
def test_sqlite_contention_with_a_long_reader(broker: str, tmp_path: Path, tiny_model: str,
                                              daemons: list[Daemon]) -> None:
    """Thumbnail concurrency 2 + embeddings + watcher, and a reader holding one read transaction
    open for the whole burst: no 'database is locked' reaches a row, everything is done."""
    url = require_broker(broker)
    n = 400
    config = reliability_config(tmp_path, url, tiny_model, thumbnails={"concurrency": 2},
                                embeddings={"batch_size": 8})
    photos, db_path = tmp_path / "photos", tmp_path / "watcherd.db"
    daemon = Daemon(config).start()
    daemons.append(daemon)
    _started(daemon)
    reader = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*), sum(length(path)) FROM images").fetchone()
    started = time.monotonic()
    try:
        write_burst(photos, n)
        s = wait_settled(db_path, photos, 180, "everything done beside a long reader",
                         expect_files=n)
        took = time.monotonic() - started
        assert reader.in_transaction
    finally:
        reader.execute("ROLLBACK")
        reader.close()
    assert_clean(s)
    assert s["done"] == n
    assert not [e for e in s["errors"] if "locked" in e or "busy" in e], s["errors"]
    log = daemon.log()
    once = assert_computed_once(log, n)
    wal = Path(str(db_path) + "-wal")
    wal_mb = round(wal.stat().st_size / 1e6, 1) if wal.exists() else 0.0  # before the last close
    assert daemon.stop() == 0
    record(fault="SQLite contention: 2 thumbnail procs + embeddings + watcher + long reader",
           broker=broker, files=n, done=s["done"], failed=s["failed"],
           lost=s["lost"], **once, all_done_s=round(took, 1),
           locked_give_backs=log.count("database locked; giving the task back"), wal_mb=wal_mb)


def _processes(run_pid: int) -> dict[str, int]:
    kids = all_children(run_pid)
    out = {"watcher": kids["watcher"], "thumbnails main": kids["thumbnails"],
           "embeddings": kids["embeddings"]}
    for i, p in enumerate(sorted(ps.children(kids["thumbnails"]))):
        out[f"thumbnails pool {i}"] = p
    return out


def test_rss_does_not_grow_without_bound(tmp_path: Path, tiny_model: str,
                                         daemons: list[Daemon]) -> None:
    """VmRSS of every process, sampled every second while files arrive in waves through
    `watcherd run`: the last third's mean stays within 1.5x the first third's mean + 30 MB."""
    n = _env_int("WATCHERD_RELIABILITY_FILES", 6000)
    wave = max(50, n // 20)
    config = reliability_config(tmp_path, "", tiny_model, embeddings={"batch_size": 32})
    photos, db_path = tmp_path / "photos", tmp_path / "watcherd.db"
    daemon = Daemon(config).start()
    daemons.append(daemon)
    assert daemon.proc is not None
    _started(daemon)
    procs = _processes(daemon.proc.pid)
    samples: dict[str, list[int]] = {k: [] for k in procs}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for role, pid in procs.items():
                if (kb := rss_kb(pid)) is not None:
                    samples[role].append(kb)
            stop.wait(1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        for start in range(0, n, wave):
            write_burst(photos, min(wave, n - start), start=start)
            wait_settled(db_path, photos, 300, "a wave to be done",
                         expect_files=min(n, start + wave))
            if time.monotonic() - started < 3 * len(range(0, n, wave)):
                time.sleep(1)  # at least a few samples per wave, however fast it goes
    finally:
        stop.set()
        sampler.join()
    took = time.monotonic() - started
    s = state(db_path, photos)
    assert_clean(s)
    assert _processes(daemon.proc.pid) == procs, "no process was restarted during the run"
    assert daemon.stop() == 0
    curve = {}
    for role, kb in samples.items():
        assert len(kb) >= 6, (role, kb)
        third = len(kb) // 3
        first, last = sum(kb[:third]) / third, sum(kb[-third:]) / third
        curve[role] = f"{kb[0] / 1024:.0f}→{kb[-1] / 1024:.0f} MB (thirds {first / 1024:.0f}"\
                      f"→{last / 1024:.0f})"
        assert last <= 1.5 * first + 30 * 1024, f"{role} grows: {kb}"
    record(fault=f"RSS over {n} files through watcherd run", broker="embedded", files=n,
           done=s["done"], duration_s=round(took, 1), samples=len(samples["watcher"]), **curve)
