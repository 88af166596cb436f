"""The embedded spool broker when things go wrong: damaged messages, writers that died, power
cuts (issue 7, items 9 and 12)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.unit.test_broker import _connection, _drain, _publish


def _open_and_close(root: Path) -> None:
    with _connection(root) as conn:
        conn.connect()


def _queued(root: Path) -> list[Path]:
    return sorted((root / "queues" / "q").iterdir())


def test_a_message_that_cannot_be_decoded_is_set_aside_and_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An empty file (a power cut before the data reached the disk), a truncated one and one
    that is not a kombu message are moved to bad/q/ with a log line naming the file and the
    reason; the good messages around them are delivered."""
    _publish(tmp_path, range(3))
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

    with caplog.at_level(logging.ERROR, logger="watcherd.queue.spool"):
        assert sorted(_drain(tmp_path)) == [0, 1, 2]

    bad = tmp_path / "bad" / "q"
    assert {p.name: p.read_bytes() for p in bad.iterdir()} == damaged  # kept, byte for byte
    assert _queued(tmp_path) == []
    lines = [r.getMessage() for r in caplog.records if r.name == "watcherd.queue.spool"]
    reasons = {"-empty": "empty file", "-truncated": "JSONDecodeError",
               "-foreign": "not a kombu message"}
    for suffix, reason in reasons.items():
        assert any(suffix in line and reason in line and str(bad) in line for line in lines), \
            (suffix, lines)
