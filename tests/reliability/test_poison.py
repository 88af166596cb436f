"""A photo that kills the worker processing it (a decoder crash, the out-of-memory killer) ends
`failed` with a reason after ``max_attempts`` deaths, and only that photo: the others of its
batch end `done`, never charged an attempt.

The poison is simulated from outside, exactly: a real worker process is sent SIGKILL while it
has announced (its busy marker on the broker) that it is decoding that one photo, and again
each time it comes back to it. The poison is a 100-megapixel PNG, so its decode lasts long
enough to be caught; the photos around it are small JPEGs.

The test plays the watcher's part with the watcher's own fleet code (a real ``FleetMonitor``
reading the real broker, a real ``Outbox``), because it must see the markers as they arrive;
the fleet queue has one reader, and here it is the test's.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.helpers import Daemon, require_broker, wait_for
from tests.reliability.conftest import jpeg, record, reliability_config
from watcherd import config
from watcherd.broker.app import make_app
from watcherd.config import Config
from watcherd.dispatch.outbox import Outbox
from watcherd.fleet.monitor import FleetMonitor
from watcherd.store import discovery, schema

MAX_ATTEMPTS = 3


def poison_png() -> bytes:
    """10000 x 10000 (the default max_pixels), a smooth gradient: 1.5 MB on disk, about a
    second to decode and as long again to scale to the model's input."""
    side = np.linspace(0, 255, 10_000, dtype=np.float32)
    plane = (np.add.outer(side, side) / 2).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.stack([plane, plane[::-1], plane.T], -1)).save(buf, "PNG",
                                                                       compress_level=9)
    return buf.getvalue()


class WatcherSide:
    """The watcher's fleet monitor and outbox on the test's thread."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.conn = schema.connect(cfg.database.path)
        self.monitor = FleetMonitor(cfg, self.conn)
        self.outbox = Outbox(make_app(cfg), self.conn, cfg)
        self.monitor.start()
        assert self.monitor.listener is not None
        wait_for(lambda: self.monitor.listener.connected_since is not None, 15,
                 "the fleet listener")

    def add(self, name: str, data: bytes) -> tuple[int, str]:
        path = Path(self.cfg.watch.paths[0]) / name
        path.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        rec = discovery.record_file(self.conn, str(path), len(data), 1.0, sha,
                             discovery.Reuse("m", "p", (64,), "webp"))
        return rec.id, sha

    def tick(self) -> None:
        self.monitor.tick()
        self.outbox.send_due(resend_stale=True)

    def steps(self, worker: str) -> dict[int, tuple[Any, ...]]:
        w = self.monitor.fleet.workers.get(worker)
        return {pid: step.items for pid, step in w.steps.items()} if w else {}

    def row(self, image_id: int) -> dict[str, Any]:
        return dict(self.conn.execute("SELECT * FROM images WHERE id = ?",
                                      (image_id,)).fetchone())

    def ticking_until(self, condition: Any, timeout: float, what: str) -> Any:
        def tick_and_check() -> Any:
            self.tick()
            return condition()
        return wait_for(tick_and_check, timeout, what, interval=0.05)

    def close(self) -> None:
        self.monitor.close()
        self.conn.close()


@pytest.fixture
def side(request: pytest.FixtureRequest, tmp_path: Path, tiny_model: str) -> Iterator[WatcherSide]:
    url = require_broker(request.param)
    path = reliability_config(tmp_path, url, tiny_model,
                              broker={"max_attempts": MAX_ATTEMPTS},
                              embeddings={"batch_size": 8, "max_wait_ms": 1000})
    s = WatcherSide(config.load(path))
    s.config_path = path  # type: ignore[attr-defined]
    yield s
    s.close()


def worker_name(role: str, d: Daemon) -> str:
    assert d.proc is not None
    return f"{role}@{os.uname().nodename}:{d.proc.pid}"


def photos(side: WatcherSide) -> tuple[list[tuple[int, str]], tuple[int, str]]:
    """Two small photos, the poison, two more: one batch, decoded in this order."""
    before = [side.add(f"a{i}.jpg", jpeg(i)) for i in range(2)]
    poison = side.add("poison.png", poison_png())
    after = [side.add(f"b{i}.jpg", jpeg(10 + i)) for i in range(2)]
    return before + after, poison


def assert_only_the_poison_failed(side: WatcherSide, innocents: list[tuple[int, str]],
                                  poison: tuple[int, str], kind: str) -> None:
    side.ticking_until(lambda: all(side.row(i)[f"{kind}_status"] == "done"
                                   for i, _ in innocents), 60, "the innocents done")
    r = side.row(poison[0])
    assert r[f"{kind}_status"] == "failed"
    assert r[f"{kind}_error"] == (f"the worker died {MAX_ATTEMPTS} times while processing this "
                                  "photo (a decoder crash or the out-of-memory killer?)")
    assert r[f"{kind}_attempts"] == MAX_ATTEMPTS
    for image_id, _ in innocents:
        assert side.row(image_id)[f"{kind}_attempts"] == 0, image_id


@pytest.mark.parametrize("side", ["embedded", "amqp", "redis"], indirect=True)
def test_a_photo_that_kills_the_embedding_worker_fails_alone(side: WatcherSide,
                                                             daemons: list[Daemon]) -> None:
    innocents, poison = photos(side)
    config_path = side.config_path  # type: ignore[attr-defined]
    started = time.monotonic()
    kills = 0
    while True:
        worker = Daemon(config_path, "worker", "embeddings").start()
        daemons.append(worker)
        assert worker.proc is not None
        wait_for(lambda w=worker: "embedding model loaded" in w.log(), 60, "the model")
        name = worker_name("embeddings", worker)
        # Caught while it decodes the poison (after the photos before it in the batch).
        side.ticking_until(lambda n=name, p=worker.proc.pid: side.steps(n).get(p) == (poison,),
                           60, "the worker to be decoding the poison")
        os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()
        kills += 1
        # The watcher finds it dead from its silent heartbeat and charges the poison only.
        side.ticking_until(lambda k=kills: side.row(poison[0])["embedding_attempts"] == k, 30,
                           f"death {kills} to be charged")
        if kills == MAX_ATTEMPTS:
            break
    assert side.row(poison[0])["embedding_status"] == "failed"
    # The next worker skips the failed poison and embeds the rest of its batch.
    worker = Daemon(config_path, "worker", "embeddings").start()
    daemons.append(worker)
    assert_only_the_poison_failed(side, innocents, poison, "embedding")
    record(fault="poison photo: embedding worker killed while decoding it",
           broker=side.cfg.broker.url.split(":")[0] or "embedded", kills=kills,
           innocents_done=len(innocents), all_final_s=round(time.monotonic() - started, 1))


@pytest.mark.parametrize("side", ["embedded", "amqp", "redis"], indirect=True)
def test_a_photo_that_kills_a_thumbnail_pool_child_fails_alone(side: WatcherSide,
                                                               daemons: list[Daemon]) -> None:
    """The pool child that renders the poison is killed; Celery's main process gives the
    message back and forks a new child; the watcher sees the child vanish from the main
    process's heartbeat and charges the poison."""
    innocents, poison = photos(side)
    worker = Daemon(side.config_path, "worker", "thumbnails").start()  # type: ignore[attr-defined]
    daemons.append(worker)
    name = worker_name("thumbnails", worker)
    started = time.monotonic()
    killed: set[int] = set()

    def poisoned() -> bool:
        """Like a real poison: every child that renders it dies, until the watcher has failed
        it (a child may get it again before the watcher has counted the last death)."""
        for pid, items in side.steps(name).items():
            if items == (poison,) and pid not in killed:
                assert worker.proc is not None and pid != worker.proc.pid
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        return side.row(poison[0])["thumbnail_status"] == "failed"

    side.ticking_until(poisoned, 90, "the poison to be failed")
    assert len(killed) >= MAX_ATTEMPTS
    assert_only_the_poison_failed(side, innocents, poison, "thumbnail")
    assert worker.proc is not None and worker.proc.poll() is None, "the worker itself lives"
    record(fault="poison photo: thumbnail pool child killed while rendering it",
           broker=side.cfg.broker.url.split(":")[0] or "embedded", kills=len(killed),
           innocents_done=len(innocents), all_final_s=round(time.monotonic() - started, 1))
