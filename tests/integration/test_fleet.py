"""The fleet queue and the workers' side of it, on the real brokers and real worker processes:
heartbeats and busy markers through the embedded spool, RabbitMQ and Redis; one ``workers`` row
per worker process in `watcherd status`; a locked database gives tasks back to the queue."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests import procs as ps
from tests.helpers import Daemon, cli, jpeg, query, require_broker, wait_for, write_config
from watcherd import config
from watcherd.broker.app import TASKS, make_app, queue_names
from watcherd.broker.channel import Listener, Publisher, connect, fleet_queue
from watcherd.store import discovery, schema


@pytest.mark.parametrize("broker", ["embedded", "amqp", "redis"])
def test_fleet_queue_round_trip_from_a_forked_child_and_stale_messages_dropped(
        broker: str, tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path, broker_url=require_broker(broker)))
    publisher = Publisher(cfg)
    heard: list[Any] = []
    listener = Listener(cfg, lambda body, at: heard.append(body))
    try:
        assert publisher.publish({"said": "before the watcher listened"})
        listener.start()
        wait_for(lambda: listener.connected_since is not None, 15, "the listener to connect")
        assert listener.purged == 1
        assert publisher.publish({"said": "parent", "n": -1})  # the parent's connection opens
        n = 200
        pid = os.fork()
        if pid == 0:  # a pool child: its own connection, the parent's left alone
            ok = all(publisher.publish({"said": "child", "n": i}) for i in range(n))
            os._exit(0 if ok else 1)
        # Both at once: on a shared connection their frames and confirms would mix (and a
        # publish could wait for ever for a confirm the other process read).
        results: list[bool] = []
        parent = threading.Thread(target=lambda: results.extend(
            publisher.publish({"said": "parent", "n": i}) for i in range(n)), daemon=True)
        parent.start()
        parent.join(30)
        status = _wait_child(pid, 30)
        assert not parent.is_alive() and all(results) and len(results) == n
        assert status == 0
        wait_for(lambda: len(heard) >= 2 * n + 1, 30, "every message")
        time.sleep(0.3)
        assert sorted((m["said"], m["n"]) for m in heard) == sorted(
            [("child", i) for i in range(n)] + [("parent", i) for i in range(-1, n)])
        publisher.close()  # not in finally: a publish stuck on a mixed-up connection holds it
    finally:
        listener.stop()
        with connect(cfg) as conn:
            fleet_queue(cfg)(conn.channel()).delete()


def _wait_child(pid: int, timeout: float) -> int | None:
    """The child's exit status, or None (and the child killed) if it has not exited in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def test_fleet_queue_has_a_message_ttl_on_rabbitmq(tmp_path: Path) -> None:
    """Declaring the queue again without the TTL argument is refused as inequivalent."""
    from kombu import Queue
    from kombu.exceptions import OperationalError

    cfg = config.load(write_config(tmp_path, broker_url=require_broker("amqp")))
    with connect(cfg) as conn:
        queue = fleet_queue(cfg)(conn.channel())
        queue.declare()
        try:
            plain = Queue(queue.name, queue.exchange, routing_key=queue.routing_key,
                          durable=True)
            with pytest.raises((OperationalError, Exception), match="x-message-ttl"):
                plain(conn.channel()).declare()
        finally:
            fleet_queue(cfg)(connect(cfg).channel()).delete()


def _workers(config_path: Path) -> list[dict[str, Any]]:
    r = cli(config_path, "status", "--json")
    assert r.returncode == 0, r.stderr
    return list(json.loads(r.stdout)["workers"])


@pytest.mark.slow  # two daemon starts and stops (~25 s): kept out of the everyday run
def test_status_lists_each_worker_process_alive_then_stopped(tmp_path: Path, tiny_model: str,
                                                             daemons: list[Daemon]) -> None:
    config_path = write_config(tmp_path, model=tiny_model)
    daemon = Daemon(config_path).start()
    daemons.append(daemon)
    assert daemon.proc is not None

    def alive() -> list[dict[str, Any]] | None:
        ws = _workers(config_path)
        return ws if len(ws) == 2 and all(w["liveness"] == "alive" and w["state"] == "ready"
                                          for w in ws) else None

    workers = {w["role"]: w for w in wait_for(alive, 60, "two live workers in status")}
    kids = {ps.cmdline(p).rsplit(" ", 1)[-1]: p for p in ps.children(daemon.proc.pid)}
    assert workers["thumbnails"]["pid"] == kids["thumbnails"]
    assert workers["embeddings"]["pid"] == kids["embeddings"]
    assert workers["thumbnails"]["name"].endswith(f":{kids['thumbnails']}")
    assert workers["embeddings"]["model"].startswith("local-dir")
    assert workers["embeddings"]["rss_kb"] > 100_000  # torch is in there
    assert workers["thumbnails"]["last_seen_s"] < 10
    text = cli(config_path, "status").stdout
    assert f"worker      {workers['thumbnails']['name']}: alive (last seen" in text, text
    assert daemon.stop() == 0
    # The watcher stops before the workers have finished (systemd orders it so too), so the
    # workers' last "stopped" waits in the fleet queue; the next watcher reads it there.
    watcher = Daemon(config_path, "watch").start()
    daemons.append(watcher)
    names = {workers["thumbnails"]["name"], workers["embeddings"]["name"]}
    wait_for(lambda: {w["name"]: w["liveness"] for w in _workers(config_path)}
             == dict.fromkeys(names, "stopped"), 30, "both workers stopped in status")
    assert watcher.stop() == 0


@pytest.mark.slow  # both workers, a 4 s lock (~20 s): the in-process test covers the logic
def test_a_locked_database_gives_tasks_back_to_the_queue_and_costs_no_attempt(
        tmp_path: Path, tiny_model: str, daemons: list[Daemon]) -> None:
    """Both real workers, no watcher: the test sends the tasks and holds the database's write
    lock for 4 s; with a busy timeout of 0.5 s every save is refused several times, given back
    (thumbnails: Celery's reject; embeddings: celery-batches' flush), and done once the lock
    goes."""
    config_path = write_config(tmp_path, model=tiny_model,
                               database={"busy_timeout_seconds": 0.5})
    cfg = config.load(config_path)
    conn = schema.connect(cfg.database.path)
    items = []
    for i in range(3):
        data = jpeg(i)
        path = tmp_path / "photos" / f"{i}.jpg"
        path.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        items.append((discovery.record_file(conn, str(path), len(data), 1.0, sha,
                                     discovery.Reuse("m", "p", (64,), "webp")).id, sha))
    thumbs = Daemon(config_path, "worker", "thumbnails").start()
    embeds = Daemon(config_path, "worker", "embeddings").start()
    daemons.extend([thumbs, embeds])
    wait_for(lambda: "embedding model loaded" in embeds.log(), 60, "the model")
    app = make_app(cfg)
    locker = sqlite3.connect(cfg.database.path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        with app.producer_or_acquire() as producer:
            for kind in schema.KINDS:
                q = queue_names(cfg)[kind]
                for image_id, sha in items:
                    app.send_task(TASKS[kind], args=[image_id, sha], queue=q, routing_key=q,
                                  producer=producer)
        wait_for(lambda: thumbs.log().count("database locked") >= 2
                 and embeds.log().count("database locked") >= 2, 30, "saves refused")
        time.sleep(2)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    wait_for(lambda: len(query(cfg.database.path, "SELECT 1 FROM images WHERE thumbnail_status "
                               "= 'done' AND embedding_status = 'done'")) == 3, 30, "all done")
    rows = query(cfg.database.path, "SELECT * FROM images")
    assert all(r["thumbnail_attempts"] == r["embedding_attempts"] == 0 for r in rows)
    assert all(r["thumbnail_error"] is None and r["embedding_error"] is None for r in rows)
    for d in (thumbs, embeds):
        assert d.proc is not None and d.proc.poll() is None, "the workers stay up"
        assert "database locked for 0.5 s" in d.log()
        d.proc.send_signal(signal.SIGTERM)  # both warm shutdowns at once
    for d in (thumbs, embeds):
        assert d.proc is not None and d.proc.wait(30) == 0
        d.stop()


def test_redis_gives_a_killed_workers_messages_back_exactly(tmp_path: Path,
                                                            daemons: list[Daemon]) -> None:
    """A real thumbnail worker on Redis keeps its unacknowledged messages under keys of its
    own; after `kill -9`, ``give_back`` moves exactly those back to the queue (kombu would
    after its one-hour visibility timeout), and ``orphans`` finds them before that."""
    from watcherd.broker import redis_unacked
    from watcherd.broker.app import queue_depths

    config_path = write_config(tmp_path, broker_url=require_broker("redis"),
                               thumbnails={"concurrency": 1, "sizes": [64, 1024]})
    cfg = config.load(config_path)
    conn = schema.connect(cfg.database.path)
    items = []
    for i in range(12):  # big enough to take a while each: the worker holds the rest
        data = jpeg(i, size=1600)
        path = tmp_path / "photos" / f"{i}.jpg"
        path.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        items.append((discovery.record_file(conn, str(path), len(data), 1.0, sha,
                                     discovery.Reuse("m", "p", (64,), "webp")).id, sha))
    worker = Daemon(config_path, "worker", "thumbnails").start()
    daemons.append(worker)
    assert worker.proc is not None
    name = f"thumbnails@{os.uname().nodename}:{worker.proc.pid}"
    app = make_app(cfg)
    q = queue_names(cfg)["thumbnail"]
    with app.producer_or_acquire() as producer:
        for image_id, sha in items:
            app.send_task(TASKS["thumbnail"], args=[image_id, sha], queue=q, routing_key=q,
                          producer=producer)
    wait_for(lambda: "thumbnails done" in worker.log(), 60, "the first thumbnails")
    os.killpg(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait()
    done = len(query(cfg.database.path, "SELECT 1 FROM images WHERE thumbnail_status = 'done'"))
    waiting = queue_depths(app, cfg)[q]
    assert name in redis_unacked.orphans(cfg)
    given = redis_unacked.give_back(cfg, name)
    assert given >= 1
    assert queue_depths(app, cfg)[q] == waiting + given
    assert done + waiting + given >= len(items)  # none lost (one may be done and unacked)
    assert name not in redis_unacked.orphans(cfg)
    assert redis_unacked.give_back(cfg, name) == 0
    with app.connection_for_write() as c:
        c.default_channel.queue_delete(q)
