"""The embedded spool broker: atomic writes, exactly one consumer per message, FIFO order."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

from kombu import Connection, Exchange, Queue

from watcherd.broker.spool import spool_options

QUEUE = Queue("q", Exchange("q", "direct"), routing_key="q")


def _connection(root: Path) -> Connection:
    return Connection("spool://", transport_options=spool_options(root, polling_interval=0.01))


def _drain(root: Path, idle: float = 0.5) -> list[int]:
    """Consume and ack until the queue has been idle for ``idle`` seconds."""
    got: list[int] = []
    with _connection(root) as conn:

        def on_message(body: dict[str, int], message: object) -> None:
            got.append(body["n"])
            message.ack()  # type: ignore[attr-defined]

        with conn.Consumer(QUEUE, callbacks=[on_message], accept=["json"]):
            while True:
                try:
                    conn.drain_events(timeout=idle)
                except TimeoutError:
                    break
    return got


def _consume(root: str, out: str, stop_after_idle: float) -> None:
    Path(out).write_text("\n".join(map(str, _drain(Path(root), stop_after_idle))))


def _publish(root: Path, numbers: range, delivery_mode: int = 2) -> None:
    with _connection(root) as conn, conn.Producer() as producer:
        for n in numbers:
            producer.publish({"n": n}, exchange=QUEUE.exchange, routing_key="q", declare=[QUEUE],
                             serializer="json", delivery_mode=delivery_mode)


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


def _take_and_hold(root: str, take: int, die: bool, ready: str) -> None:
    """Receive ``take`` messages without acknowledging them; then die by SIGKILL (``die``) or
    sleep until killed."""
    got: list[int] = []
    with _connection(Path(root)) as conn:
        with conn.Consumer(QUEUE, callbacks=[lambda body, _m: got.append(body["n"])],
                           accept=["json"], prefetch_count=take):
            while len(got) < take:
                conn.drain_events(timeout=10)
        Path(ready).write_text(str(len(got)))
        if die:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)


def _claimed_files(root: Path) -> list[str]:
    return [f for _, _, files in os.walk(root / "claimed") for f in files if f != ".lock"]


def test_messages_of_a_killed_consumer_are_delivered_again(tmp_path: Path) -> None:
    """kill -9 with 8 messages received and unacknowledged: the next consumer gets them (and
    the rest), nothing is lost and nothing is left claimed."""
    _publish(tmp_path, range(20))
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=_take_and_hold, args=(str(tmp_path), 8, True, str(tmp_path / "ready")))
    p.start()
    p.join(60)
    assert p.exitcode == -9 and (tmp_path / "ready").read_text() == "8"
    assert len(_claimed_files(tmp_path)) >= 8  # the dead consumer's claims, still on disk
    assert sorted(_drain(tmp_path)) == list(range(20))
    assert _claimed_files(tmp_path) == [] and os.listdir(tmp_path / "claimed") == []


def test_a_live_consumers_claims_are_left_alone(tmp_path: Path) -> None:
    _publish(tmp_path, range(10))
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=_take_and_hold, args=(str(tmp_path), 4, False, str(tmp_path / "ready")))
    p.start()
    try:
        for _ in range(300):
            if (tmp_path / "ready").exists():
                break
            time.sleep(0.1)
        held = len(_claimed_files(tmp_path))
        assert held >= 4
        others = _drain(tmp_path)  # a second consumer while the first one lives
        assert len(others) == 10 - held and len(_claimed_files(tmp_path)) == held
    finally:
        p.kill()
        p.join(10)
    assert sorted(others + _drain(tmp_path)) == list(range(10))  # once it is gone


def test_reject_with_requeue_and_a_clean_close_give_messages_back(tmp_path: Path) -> None:
    _publish(tmp_path, range(6))
    received: list[object] = []
    conn = _connection(tmp_path)
    with conn, conn.Consumer(QUEUE, callbacks=[lambda _b, m: received.append(m)],
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
    again = _drain(tmp_path)
    assert sorted(again) == sorted({bodies[1], bodies[3], 4, 5}), (bodies, again)


def test_a_connected_consumer_takes_over_when_another_dies(tmp_path: Path) -> None:
    """The second consumer connects while the first lives (nothing to give back then); when the
    first is killed later, the second gets its messages without reconnecting. The same periodic
    pass removes what a dead writer left in tmp/ since the consumer connected."""
    from watcherd.broker.spool import TMP_MAX_AGE

    _publish(tmp_path, range(10))
    leftover = tmp_path / "tmp" / "left-by-a-dead-writer.msg"
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=_take_and_hold, args=(str(tmp_path), 4, False, str(tmp_path / "ready")))
    p.start()
    got: list[int] = []
    try:
        for _ in range(300):
            if (tmp_path / "ready").exists():
                break
            time.sleep(0.1)
        with _connection(tmp_path) as conn:

            def on_message(body: dict[str, int], message: object) -> None:
                got.append(body["n"])
                message.ack()  # type: ignore[attr-defined]

            with conn.Consumer(QUEUE, callbacks=[on_message], accept=["json"]):
                deadline = time.monotonic() + 20
                while len(got) < 10 and time.monotonic() < deadline:
                    if len(got) >= 10 - 4 and p.is_alive():
                        p.kill()  # all the free ones taken: now the holder dies
                        p.join(10)
                        leftover.write_bytes(b"{}")
                        then = time.time() - TMP_MAX_AGE - 60
                        os.utime(leftover, (then, then))
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=0.5)
    finally:
        p.kill()
        p.join(10)
    assert sorted(got) == list(range(10))
    assert _claimed_files(tmp_path) == []
    assert not leftover.exists()
