"""The worker fleet seen through real `watcherd` daemons: each worker process in status, alive
then stopped, and a locked database giving tasks back (the fleet queue itself is tested against
each broker in tests/integration/test_fleet.py)."""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from tests import procs as ps
from tests.helpers import Daemon, cli, jpeg, query, wait_for, write_config
from watcherd import config
from watcherd.broker.app import TASKS, make_app, queue_names
from watcherd.store import discovery, schema


def _workers(config_path: Path) -> list[dict[str, Any]]:
    r = cli(config_path, "status", "--json")
    assert r.returncode == 0, r.stderr
    return list(json.loads(r.stdout)["workers"])


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
