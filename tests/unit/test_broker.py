"""The embedded spool broker: atomic writes, exactly one consumer per message, FIFO order."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

from kombu import Connection, Exchange, Queue

from watcherd.broker import spool_options

QUEUE = Queue("q", Exchange("q", "direct"), routing_key="q")


def _connection(root: Path) -> Connection:
    return Connection("spool://", transport_options=spool_options(root, polling_interval=0.01))


def _consume(root: str, out: str, stop_after_idle: float) -> None:
    got: list[int] = []
    with _connection(Path(root)) as conn:

        def on_message(body: dict[str, int], message: object) -> None:
            got.append(body["n"])
            message.ack()  # type: ignore[attr-defined]

        with conn.Consumer(QUEUE, callbacks=[on_message], accept=["json"]):
            while True:
                try:
                    conn.drain_events(timeout=stop_after_idle)
                except TimeoutError:
                    break
    Path(out).write_text("\n".join(map(str, got)))


def _publish(root: Path, numbers: range) -> None:
    with _connection(root) as conn, conn.Producer() as producer:
        for n in numbers:
            producer.publish({"n": n}, exchange=QUEUE.exchange, routing_key="q", declare=[QUEUE],
                             serializer="json")


def test_two_consumers_get_every_message_exactly_once(tmp_path: Path) -> None:
    n = 1500
    ctx = mp.get_context("spawn")
    consumers = [ctx.Process(target=_consume, args=(str(tmp_path), str(tmp_path / f"c{i}"), 2.0))
                 for i in range(2)]
    for p in consumers:
        p.start()
    _publish(tmp_path, range(n))  # published while both consume
    for p in consumers:
        p.join(60)
        assert p.exitcode == 0
    got = [int(x) for i in range(2) for x in (tmp_path / f"c{i}").read_text().split()]
    assert sorted(got) == list(range(n)), "lost or duplicated messages"
    assert all(len((tmp_path / f"c{i}").read_text().split()) > 0 for i in range(2))
    # Nothing left behind: no half-written, claimed or queued files.
    for sub in ("tmp", "claimed", "queues/q"):
        assert os.listdir(tmp_path / sub) == []


def test_order_and_size(tmp_path: Path) -> None:
    _publish(tmp_path, range(20))
    with _connection(tmp_path) as conn:
        assert conn.default_channel.queue_declare("q", passive=True).message_count == 20
        got = []
        with conn.SimpleQueue(QUEUE) as q:
            for _ in range(20):
                msg = q.get(timeout=1)
                got.append(msg.payload["n"])
                msg.ack()
        assert got == list(range(20))
        assert conn.default_channel.queue_declare("q", passive=True).message_count == 0


def test_a_reader_never_sees_a_partial_message(tmp_path: Path) -> None:
    # A big payload: written to tmp/ and renamed, so the queue folder only ever holds whole files.
    _connection(tmp_path).connect()
    big = "x" * 2_000_000
    with _connection(tmp_path) as conn, conn.Producer() as producer:
        producer.publish({"n": 1, "big": big}, exchange=QUEUE.exchange, routing_key="q",
                         declare=[QUEUE], serializer="json")
    with _connection(tmp_path) as conn, conn.SimpleQueue(QUEUE) as q:
        msg = q.get(timeout=1)
        assert msg.payload["big"] == big
        msg.ack()
