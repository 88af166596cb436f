"""Celery's worker heartbeats from a thread (watcherd.fleet.celery_heart), on a real broker and
read back by a real Celery event receiver and Celery's own event state (what Flower keeps)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from celery.events.state import State

from tests.helpers import Events, require_broker, wait_for, write_config
from watcherd import config
from watcherd.broker.app import make_app
from watcherd.fleet.celery_heart import ThreadHeart


@pytest.mark.parametrize("broker", ["amqp", "redis"])
def test_heartbeats_go_on_while_the_worker_is_busy_and_it_stays_online(
        broker: str, tmp_path: Path) -> None:
    """worker-online, then a heartbeat every interval from a thread of its own, whatever the
    thread that started it does, then worker-offline; Celery's event state (what Flower keeps)
    sees the worker alive throughout."""
    cfg = config.load(write_config(tmp_path, broker_url=require_broker(broker)))
    app = make_app(cfg)
    ev = Events(app)
    ev.thread.start()
    try:
        name = f"embeddings@heart-{tmp_path.name}"
        # The receiver is bound once it has seen anything: a probe heart until then.
        probe = ThreadHeart(app, name + "-probe", interval=0.2)
        probe.start()
        wait_for(lambda: ev.of("worker-heartbeat"), 30, "the receiver to listen")
        probe.stop()
        heart = ThreadHeart(app, name, interval=0.5)
        heart.start()
        state, alive, fed = State(), [], 0
        started = time.monotonic()
        while time.monotonic() - started < 4.0:  # this thread is busy elsewhere meanwhile
            time.sleep(0.25)
            with ev.lock:
                new, fed = ev.seen[fed:], len(ev.seen)
            for e in new:
                if e["hostname"] == name:
                    state.event(e)
            worker = state.workers.get(name)
            alive.append(worker is not None and worker.alive)
        heart.stop()
        mine = [e for e in ev.seen if e["hostname"] == name]
        kinds = [e["type"] for e in mine]
        wait_for(lambda: "worker-offline" in [e["type"] for e in ev.seen
                                              if e["hostname"] == name], 10, "worker-offline")
    finally:
        ev.receiver.should_stop = True
        ev.thread.join(10)
    assert kinds[0] == "worker-online", kinds
    beats = [e for e in mine if e["type"] == "worker-heartbeat"]
    assert len(beats) >= 6, kinds  # 4 s at 0.5 s
    gaps = [b["timestamp"] - a["timestamp"] for a, b in itertools.pairwise(beats)]
    assert max(gaps) < 1.5, gaps
    assert {"freq", "active", "processed", "loadavg", "sw_ident", "sw_ver"} <= beats[0].keys()
    assert beats[0]["freq"] == 0.5 and beats[0]["sw_ident"] == "py-celery"
    assert alive[2:] and all(alive[2:]), alive  # after the first beats arrived
