"""Celery's own tools against a real `watcherd run` on RabbitMQ and Redis: `celery -A watcherd
inspect` (a subprocess, with $WATCHERD_CONFIG) reaches both workers, a real event receiver sees
task events for thumbnails and embeddings (the batches' per-request events) and the workers'
heartbeats, and `celery -A watcherd purge` leaves the rows pending for the outbox to send again.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    Daemon,
    Events,
    all_final,
    photo,
    require_broker,
    rows_by_name,
    wait_for,
    write_config,
)
from watcherd import config
from watcherd.broker.app import make_app, queue_depths, queue_names

NAMES = {"e1.jpg", "e2.jpg", "e3.jpg"}


def celery_cli(cfg_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WATCHERD_CONFIG": str(cfg_path)}
    return subprocess.run([sys.executable, "-m", "celery", "-A", "watcherd", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def embedding_beats(ev: Events) -> list[float]:
    return [e["timestamp"] for e in ev.of("worker-heartbeat")
            if e["hostname"].startswith("embeddings@")]


@pytest.fixture
def events() -> Iterator[list[Events]]:
    started: list[Events] = []
    yield started
    for ev in started:
        if ev.receiver is not None:
            ev.receiver.should_stop = True
        ev.thread.join(10)


@pytest.mark.parametrize("broker", ["amqp", "redis"])
def test_inspect_and_events_reach_the_workers(broker: str, tmp_path: Path, tiny_model: str,
                                              daemons: list[Daemon],
                                              events: list[Events]) -> None:
    cfg_path = write_config(tmp_path, broker_url=require_broker(broker), model=tiny_model)
    cfg = config.load(cfg_path)
    app = make_app(cfg)
    daemons.append(Daemon(cfg_path).start())
    wait_for(lambda: len(app.control.ping(timeout=1.0)) == 2, 90, "both workers to answer")

    ping = celery_cli(cfg_path, "inspect", "ping")
    assert ping.returncode == 0, ping.stderr
    assert "thumbnails@" in ping.stdout and "embeddings@" in ping.stdout
    assert "2 nodes online" in ping.stdout
    queues = celery_cli(cfg_path, "inspect", "active_queues")
    assert queues.returncode == 0, queues.stderr
    for name in queue_names(cfg).values():
        assert f"'name': '{name}'" in queues.stdout

    ev = Events(app)
    events.append(ev)
    ev.thread.start()
    # An embedding worker's heartbeat proves both that the receiver listens and that heartbeats
    # are on, and starts the span of beats checked below before the first batch.
    wait_for(lambda: embedding_beats(ev), 30, "an embedding worker's heartbeat event")
    photos = tmp_path / "photos"
    for i, name in enumerate(sorted(NAMES)):
        (photos / name).write_bytes(photo(320, 240, 40 + i))
    wait_for(lambda: all_final(tmp_path / "watcherd.db", NAMES), 90, "the photos to be done")
    wait_for(lambda: len(ev.succeeded("watcherd.embed")) == len(NAMES)
             and len(ev.succeeded("watcherd.thumbnail")) == len(NAMES),
             30, "task-succeeded for every thumbnail and embedding")
    rows = rows_by_name(tmp_path / "watcherd.db")
    assert {(r["thumbnail_status"], r["embedding_status"]) for r in rows.values()} == {
        ("done", "done")}
    embed_ids = {e["uuid"] for e in ev.succeeded("watcherd.embed")}
    started = [e for e in ev.of("task-started") if e["uuid"] in embed_ids]
    assert len(started) == len(NAMES)
    for e in ev.succeeded("watcherd.embed"):
        assert e["hostname"].startswith("embeddings@") and e["runtime"] > 0
    stats = app.control.inspect(timeout=2.0).stats() or {}
    totals = {name.split("@")[0]: s["total"] for name, s in stats.items()}
    assert totals["embeddings"] == {"watcherd.embed": len(NAMES)}
    # The solo embedding worker's heartbeats come from a thread of their own (its batches
    # block Celery's heart): every 2 s, batches included, never a gap Flower calls offline (4 s).
    # The span checked runs from a beat before the first batch to one after the last: on a fast
    # machine the three photos take less than one interval, so wait for that last beat.
    last_done = max(e["timestamp"] for e in ev.succeeded("watcherd.embed"))
    wait_for(lambda: embedding_beats(ev)[-1] > last_done, 15, "a heartbeat after the batches")
    beats = embedding_beats(ev)
    first_start = min(e["timestamp"] for e in started)
    assert beats[0] < first_start < last_done < beats[-1], (beats, first_start, last_done)
    assert max(b - a for a, b in itertools.pairwise(beats)) < 3.5, beats


def test_purge_leaves_rows_pending_and_the_outbox_sends_them_again(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    """RabbitMQ; the watcher alone first, so the messages wait in their queue."""
    cfg_path = write_config(tmp_path, broker_url=require_broker("amqp"),
                            broker={"resend_after_seconds": 2})
    cfg = config.load(cfg_path)
    app = make_app(cfg)
    queue = queue_names(cfg)["thumbnail"]
    daemons.append(Daemon(cfg_path, "watch").start())
    names = {"p1.jpg", "p2.jpg"}
    for i, name in enumerate(sorted(names)):
        (tmp_path / "photos" / name).write_bytes(photo(160, 120, 60 + i))
    wait_for(lambda: queue_depths(app, cfg)[queue] == 2, 60, "two messages in the queue")

    purged = celery_cli(cfg_path, "purge", "-f", "-Q", queue)
    assert purged.returncode == 0, purged.stderr
    assert "Purged 2 messages" in purged.stdout
    assert queue_depths(app, cfg)[queue] == 0
    rows = rows_by_name(tmp_path / "watcherd.db")
    assert {rows[n]["thumbnail_status"] for n in names} == {"pending"}

    daemons.append(Daemon(cfg_path, "worker", "thumbnails").start())
    wait_for(lambda: {r["thumbnail_status"] for r in rows_by_name(
        tmp_path / "watcherd.db").values()} == {"done"}, 60, "the purged rows to be done")


def test_a_request_refused_for_another_model_is_rejected_not_succeeded(
        tmp_path: Path, daemons: list[Daemon], events: list[Events]) -> None:
    """A worker of another model acknowledges the photo's message without doing it (the
    watcher sends it again later): Flower must see task-rejected, not task-succeeded."""
    from watcherd.testing import write_model_dir

    url = require_broker("amqp")
    model_a, model_b = tmp_path / "models" / "a", tmp_path / "models" / "b"
    write_model_dir(model_a, seed=1)
    write_model_dir(model_b, seed=2)
    config_a = write_config(tmp_path, broker_url=url, model=f"local-dir:{model_a}")
    cfg_a = config.load(config_a)
    (tmp_path / "b").mkdir()
    config_b = write_config(tmp_path / "b", broker_url=url, model=f"local-dir:{model_b}",
                            watch={"paths": [str(tmp_path / "photos")]},
                            database={"path": str(cfg_a.database.path)},
                            broker={"queue_prefix": cfg_a.broker.queue_prefix})
    ev = Events(make_app(cfg_a))
    events.append(ev)
    ev.thread.start()
    daemons.append(Daemon(config_b, "worker", "embeddings").start())
    wait_for(lambda: [e for e in ev.of("worker-heartbeat")
                      if e["hostname"].startswith("embeddings@")], 60, "worker B's heartbeat")
    daemons.append(Daemon(config_a, "watch").start())
    (tmp_path / "photos" / "a.jpg").write_bytes(photo(200, 150, 40))
    wait_for(lambda: ev.of("task-rejected"), 60, "the refused request's task-rejected")
    received = {e["uuid"] for e in ev.of("task-received") if e["name"] == "watcherd.embed"}
    rejected = {e["uuid"] for e in ev.of("task-rejected")}
    assert rejected and rejected <= received, (rejected, received)
    assert not rejected & {e["uuid"] for e in ev.of("task-succeeded")}
    (row,) = rows_by_name(cfg_a.database.path).values()
    assert row["embedding_status"] == "pending"
