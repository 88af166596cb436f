"""The fleet queue and the workers' side of it, on the real brokers and real worker processes:
heartbeats and busy markers through the embedded spool, RabbitMQ and Redis (one ``workers`` row
per worker process in `watcherd status`, and a locked database giving tasks back to the queue,
with full daemons: tests/daemon/test_fleet.py)."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Daemon, jpeg, query, require_broker, wait_for, write_config
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
