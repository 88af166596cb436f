"""The embedded spool broker when things go wrong: damaged messages, writers that died, power
cuts (issue 7, items 9 and 12)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from tests.helpers import spool_connection, spool_drain, spool_publish


def _open_and_close(root: Path) -> None:
    with spool_connection(root) as conn:
        conn.connect()


def _queued(root: Path) -> list[Path]:
    return sorted((root / "queues" / "q").iterdir())


def test_a_message_that_cannot_be_decoded_is_set_aside_and_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An empty file (a power cut before the data reached the disk), a truncated one and one
    that is not a kombu message are moved to bad/q/ with a log line naming the file and the
    reason; the good messages around them are delivered."""
    spool_publish(tmp_path, range(3))
    good = _queued(tmp_path)
    whole = good[1].read_bytes()
    # Names that sort between the good ones, so they are claimed in the middle of the drain.
    damaged = {
        good[0].name + "-empty": b"",
        good[0].name + "-truncated": whole[: len(whole) // 2],
        good[1].name + "-foreign": b'{"hello": "world"}',
    }
    for name, data in damaged.items():
        (tmp_path / "queues" / "q" / name).write_bytes(data)

    with caplog.at_level(logging.ERROR, logger="watcherd.broker.spool"):
        assert sorted(spool_drain(tmp_path)) == [0, 1, 2]

    bad = tmp_path / "bad" / "q"
    assert {p.name: p.read_bytes() for p in bad.iterdir()} == damaged  # kept, byte for byte
    assert _queued(tmp_path) == []
    lines = [r.getMessage() for r in caplog.records if r.name == "watcherd.broker.spool"]
    reasons = {"-empty": "empty file", "-truncated": "JSONDecodeError",
               "-foreign": "not a kombu message"}
    for suffix, reason in reasons.items():
        assert any(suffix in line and reason in line and str(bad) in line for line in lines), \
            (suffix, lines)


def test_tmp_leftovers_are_removed_when_a_channel_opens(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A writer that died between write and rename left its file in tmp/: removed once older
    than TMP_MAX_AGE (its send failed, the outbox sends the row again); a fresh one, which a
    live writer may be about to rename, is left alone. (A consumer that stays connected does
    the same periodically: test_broker's test_a_connected_consumer_takes_over_when_another_dies.)"""
    from watcherd.broker.spool import TMP_MAX_AGE

    _open_and_close(tmp_path)  # creates the folders
    old, fresh = tmp_path / "tmp" / "old.msg", tmp_path / "tmp" / "fresh.msg"
    old.write_bytes(b"{}")
    fresh.write_bytes(b"{}")
    then = time.time() - TMP_MAX_AGE - 60
    os.utime(old, (then, then))
    with caplog.at_level(logging.WARNING, logger="watcherd.broker.spool"):
        _open_and_close(tmp_path)
    assert os.listdir(tmp_path / "tmp") == ["fresh.msg"]
    assert any("old.msg" in r.getMessage() for r in caplog.records)


