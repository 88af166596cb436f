"""What a server throws at the daemon: a model that cannot load, a broker that is not there yet,
a crashed worker, SIGTERM, polling mode. Real processes, real brokers, real files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests import procs as ps
from tests.helpers import (
    Daemon,
    all_final,
    cli,
    free_port,
    photo,
    require_broker,
    rows_by_name,
    wait_for,
    write_config,
)

DONE_TIMEOUT = 90


def test_model_that_cannot_load_fails_embeddings_with_reason_and_thumbnails_go_on(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    config = write_config(tmp_path, model=f"local-dir:{tmp_path / 'no-such-model'}")
    daemon = Daemon(config).start()
    daemons.append(daemon)
    (tmp_path / "photos" / "a.jpg").write_bytes(photo(320, 240, 1))
    db_path = tmp_path / "watcherd.db"
    wait_for(lambda: all_final(db_path, {"a.jpg"}), DONE_TIMEOUT, "a final status")
    row = rows_by_name(db_path)["a.jpg"]
    assert row["thumbnail_status"] == "done"
    assert row["embedding_status"] == "failed"
    assert "model could not be loaded" in row["embedding_error"]
    assert "no-such-model" in row["embedding_error"]
    # The watcher writes the worker's row from its heartbeats at its next outbox tick.
    wait_for(lambda: "EMBEDDINGS ARE NOT BEING COMPUTED" in cli(config, "status").stdout, 10,
             "status to show that the model failed")
    assert daemon.stop() == 0
    assert "embedding model could not be loaded" in daemon.log()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_broker_down_at_start_then_up_nothing_lost(tmp_path: Path, tiny_model: str,
                                                   daemons: list[Daemon]) -> None:
    """The watcher keeps running with no broker; rows stay pending; when a broker appears on
    that address everything is sent and processed without a manual retry."""
    port = free_port()
    config = write_config(tmp_path, broker_url=f"redis://127.0.0.1:{port}/0", model=tiny_model)
    daemon = Daemon(config).start()
    daemons.append(daemon)
    db_path = tmp_path / "watcherd.db"
    for i in range(3):
        (tmp_path / "photos" / f"{i}.jpg").write_bytes(photo(200, 150, i))
    wait_for(lambda: len(rows_by_name(db_path)) == 3, 30, "rows recorded with no broker")
    wait_for(lambda: "broker unreachable" in daemon.log(), 30, "the watcher to notice")
    assert all(r["thumbnail_status"] == "pending" for r in rows_by_name(db_path).values())
    assert daemon.proc is not None and daemon.proc.poll() is None, "the daemon must stay up"
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: all_final(db_path, {"0.jpg", "1.jpg", "2.jpg"}), DONE_TIMEOUT,
                 "pending rows to be sent and processed once the broker is up")
        assert all(r["embedding_status"] == "done" for r in rows_by_name(db_path).values())
        assert daemon.stop() == 0
    finally:
        server.terminate()
        server.wait(10)
    assert "broker unreachable" in daemon.log()


def children_of(pid: int) -> dict[str, int]:
    """role → pid of `watcherd run`'s direct children, read from /proc."""
    out = {}
    for role in ("watch", "worker thumbnails", "worker embeddings"):
        for p in ps.children(pid):
            if ps.cmdline(p).endswith(role):
                out[role] = p
    return out


@pytest.mark.parametrize("broker", ["embedded", "amqp"])
def test_crashed_worker_is_restarted_and_sigterm_stops_everything(
        broker: str, tmp_path: Path, tiny_model: str, daemons: list[Daemon]) -> None:
    url = require_broker(broker)
    config = write_config(tmp_path, broker_url=url, model=tiny_model,
                          broker={"resend_after_seconds": 5})
    daemon = Daemon(config).start()
    daemons.append(daemon)
    assert daemon.proc is not None
    db_path = tmp_path / "watcherd.db"
    (tmp_path / "photos" / "first.jpg").write_bytes(photo(320, 240, 1))
    wait_for(lambda: all_final(db_path, {"first.jpg"}), DONE_TIMEOUT, "the first file")
    kids = wait_for(lambda: (k := children_of(daemon.proc.pid)) and len(k) == 3 and k,
                    10, "three children")
    # Every role is visible in ps by its command line.
    assert set(kids) == {"watch", "worker thumbnails", "worker embeddings"}
    os.kill(kids["worker embeddings"], signal.SIGKILL)
    (tmp_path / "photos" / "after-crash.jpg").write_bytes(photo(320, 240, 2))
    wait_for(lambda: all_final(db_path, {"after-crash.jpg"}), DONE_TIMEOUT,
             "work to finish after the embedding worker was killed")
    assert rows_by_name(db_path)["after-crash.jpg"]["embedding_status"] == "done"
    new_kids = children_of(daemon.proc.pid)
    assert new_kids["worker embeddings"] != kids["worker embeddings"]
    assert "child exited; restarting" in daemon.log()

    all_pids = [daemon.proc.pid, *ps.descendants(daemon.proc.pid)]
    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(15) == 0
    took = time.monotonic() - started
    assert took < 12, f"stopping took {took:.1f}s"
    wait_for(lambda: not [p for p in all_pids if ps.alive(p)], 5, "no process left behind")
    daemon.stop()


def test_polling_observer(tmp_path: Path, tiny_model: str, daemons: list[Daemon]) -> None:
    config = write_config(tmp_path, model=tiny_model,
                          watch={"polling": True, "polling_interval_seconds": 0.5})
    daemon = Daemon(config).start()
    daemons.append(daemon)
    db_path = tmp_path / "watcherd.db"
    (tmp_path / "photos" / "polled.png").write_bytes(photo(100, 100, 3))  # a JPEG named .png
    wait_for(lambda: all_final(db_path, {"polled.png"}), DONE_TIMEOUT, "the polled file")
    row = rows_by_name(db_path)["polled.png"]
    assert (row["thumbnail_status"], row["embedding_status"], row["format"]) == (
        "done", "done", "JPEG")
    assert daemon.stop() == 0
    assert '"observer": "polling"' in daemon.log()
