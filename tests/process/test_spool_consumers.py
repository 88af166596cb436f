"""The embedded spool broker with consumers in processes of their own (spawned): every message
exactly once, and a consumer killed or alive while holding messages (the spool in one process is
tested in tests/unit/test_broker.py)."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

from tests.helpers import SPOOL_QUEUE, spool_connection, spool_drain, spool_publish


def _consume(root: str, out: str, stop_after_idle: float) -> None:
    Path(out).write_text("\n".join(map(str, spool_drain(Path(root), stop_after_idle))))



def test_two_consumers_get_every_message_exactly_once(tmp_path: Path) -> None:
    n = 1500
    ctx = mp.get_context("spawn")
    consumers = [ctx.Process(target=_consume, args=(str(tmp_path), str(tmp_path / f"c{i}"), 2.0))
                 for i in range(2)]
    for p in consumers:
        p.start()
    spool_publish(tmp_path, range(n))  # published while both consume
    for p in consumers:
        p.join(60)
        assert p.exitcode == 0
    got = [int(x) for i in range(2) for x in (tmp_path / f"c{i}").read_text().split()]
    assert sorted(got) == list(range(n)), "lost or duplicated messages"
    assert all(len((tmp_path / f"c{i}").read_text().split()) > 0 for i in range(2))
    # Nothing left behind: no half-written, claimed or queued files.
    for sub in ("tmp", "claimed", "queues/q"):
        assert os.listdir(tmp_path / sub) == []



def _take_and_hold(root: str, take: int, die: bool, ready: str) -> None:
    """Receive ``take`` messages without acknowledging them; then die by SIGKILL (``die``) or
    sleep until killed."""
    got: list[int] = []
    with spool_connection(Path(root)) as conn:
        with conn.Consumer(SPOOL_QUEUE, callbacks=[lambda body, _m: got.append(body["n"])],
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
    spool_publish(tmp_path, range(20))
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=_take_and_hold, args=(str(tmp_path), 8, True, str(tmp_path / "ready")))
    p.start()
    p.join(60)
    assert p.exitcode == -9 and (tmp_path / "ready").read_text() == "8"
    assert len(_claimed_files(tmp_path)) >= 8  # the dead consumer's claims, still on disk
    assert sorted(spool_drain(tmp_path)) == list(range(20))
    assert _claimed_files(tmp_path) == [] and os.listdir(tmp_path / "claimed") == []



def test_a_live_consumers_claims_are_left_alone(tmp_path: Path) -> None:
    spool_publish(tmp_path, range(10))
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
        others = spool_drain(tmp_path)  # a second consumer while the first one lives
        assert len(others) == 10 - held and len(_claimed_files(tmp_path)) == held
    finally:
        p.kill()
        p.join(10)
    assert sorted(others + spool_drain(tmp_path)) == list(range(10))  # once it is gone



def test_a_connected_consumer_takes_over_when_another_dies(tmp_path: Path) -> None:
    """The second consumer connects while the first lives (nothing to give back then); when the
    first is killed later, the second gets its messages without reconnecting. The same periodic
    pass removes what a dead writer left in tmp/ since the consumer connected."""
    from watcherd.broker.spool import TMP_MAX_AGE

    spool_publish(tmp_path, range(10))
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
        with spool_connection(tmp_path) as conn:

            def on_message(body: dict[str, int], message: object) -> None:
                got.append(body["n"])
                message.ack()  # type: ignore[attr-defined]

            with conn.Consumer(SPOOL_QUEUE, callbacks=[on_message], accept=["json"]):
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
