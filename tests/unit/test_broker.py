"""The embedded spool broker in one process: atomic writes, FIFO order, reject and requeue
(consumers in processes of their own: tests/process/test_spool_consumers.py)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers import SPOOL_QUEUE, spool_connection, spool_drain, spool_publish


def test_order_and_size(tmp_path: Path) -> None:
    spool_publish(tmp_path, range(20))
    with spool_connection(tmp_path) as conn:
        assert conn.default_channel.queue_declare("q", passive=True).message_count == 20
        got = []
        with conn.SimpleQueue(SPOOL_QUEUE) as q:
            for _ in range(20):
                msg = q.get(timeout=1)
                got.append(msg.payload["n"])
                msg.ack()
        assert got == list(range(20))
        assert conn.default_channel.queue_declare("q", passive=True).message_count == 0


def test_a_reader_never_sees_a_partial_message(tmp_path: Path) -> None:
    # A big payload: written to tmp/ and renamed, so the queue folder only ever holds whole files.
    spool_connection(tmp_path).connect()
    big = "x" * 2_000_000
    with spool_connection(tmp_path) as conn, conn.Producer() as producer:
        producer.publish({"n": 1, "big": big}, exchange=SPOOL_QUEUE.exchange, routing_key="q",
                         declare=[SPOOL_QUEUE], serializer="json")
    with spool_connection(tmp_path) as conn, conn.SimpleQueue(SPOOL_QUEUE) as q:
        msg = q.get(timeout=1)
        assert msg.payload["big"] == big
        msg.ack()


def _claimed_files(root: Path) -> list[str]:
    return [f for _, _, files in os.walk(root / "claimed") for f in files if f != ".lock"]


def test_reject_with_requeue_and_a_clean_close_give_messages_back(tmp_path: Path) -> None:
    spool_publish(tmp_path, range(6))
    received: list[object] = []
    conn = spool_connection(tmp_path)
    with conn, conn.Consumer(SPOOL_QUEUE, callbacks=[lambda _b, m: received.append(m)],
                             accept=["json"], prefetch_count=4):
        while len(received) < 4:
            conn.drain_events(timeout=5)
        received[0].ack()  # type: ignore[attr-defined]
        received[1].reject(requeue=True)  # type: ignore[attr-defined]
        received[2].reject(requeue=False)  # type: ignore[attr-defined]
        assert len(_claimed_files(tmp_path)) == 1  # only the 4th is still held
    # closing the connection gave the unacknowledged 4th back
    assert _claimed_files(tmp_path) == []
    bodies = [m.payload["n"] for m in received]  # type: ignore[attr-defined]
    again = spool_drain(tmp_path)
    assert sorted(again) == sorted({bodies[1], bodies[3], 4, 5}), (bodies, again)


