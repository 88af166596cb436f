"""The embedded spool broker when things go wrong: damaged messages, writers that died, power
cuts (issue 7, items 9 and 12)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import requires
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

    with caplog.at_level(logging.ERROR, logger="watcherd.broker.spool"):
        assert sorted(_drain(tmp_path)) == [0, 1, 2]

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


def _traced_publish(root: Path, delivery_mode: int) -> list[str]:
    """The syscalls of a real publish of two messages into a new queue folder."""
    requires.tool("strace")
    _open_and_close(root)  # the spool's folders exist; the queue's folder does not yet
    script = (
        "import sys; from pathlib import Path; from tests.unit.test_broker import _publish; "
        "_publish(Path(sys.argv[1]), range(2), int(sys.argv[2]))"
    )
    trace = root / "trace"
    repo = Path(__file__).parents[2]
    subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=openat,mkdir,mkdirat,fdatasync,fsync,rename,"
         "renameat,renameat2", "-o", str(trace), sys.executable, "-c", script, str(root),
         str(delivery_mode)],
        check=True, timeout=60, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    return trace.read_text().splitlines()


def _fd_of(line: str) -> str:
    return line.rsplit("= ", 1)[1].strip()


def _synced(lines: list[str], fd: str, start: int, end: int) -> bool:
    return any(f"fdatasync({fd})" in lines[j] or f"fsync({fd})" in lines[j]
               for j in range(start, end))


def _synced_before_rename(lines: list[str]) -> list[bool]:
    """For each message renamed into the queue: was its file synced between open and rename?"""
    renames = [i for i, line in enumerate(lines)
               if "rename" in line and "/tmp/" in line and "/queues/q/" in line]
    assert len(renames) == 2, lines
    out = []
    for i in renames:
        name = lines[i].split("/tmp/")[1].split('"')[0]
        opened = next(j for j in range(i, -1, -1) if "openat(" in lines[j] and name in lines[j])
        out.append(_synced(lines, _fd_of(lines[opened]), opened, i))
    return out


def test_a_message_is_on_disk_before_its_name(tmp_path: Path) -> None:
    """The syscalls of a real publish, in order: each persistent message file's data is synced
    before its rename into the queue (a power cut cannot leave an empty message there), and a
    new queue folder is synced into ``queues/`` when it is created."""
    lines = _traced_publish(tmp_path, delivery_mode=2)
    made = next(i for i, line in enumerate(lines) if "mkdir" in line and "queues/q" in line)
    opened = next(i for i in range(made, len(lines))
                  if "O_DIRECTORY" in lines[i] and lines[i].split('"')[1].endswith("/queues"))
    assert _synced(lines, _fd_of(lines[opened]), opened, opened + 3), lines[made:opened + 3]
    assert _synced_before_rename(lines) == [True, True]


def test_a_transient_message_is_not_synced(tmp_path: Path) -> None:
    """Heartbeats and busy markers are transient (delivery mode 1): they need to outlive a
    process, not a power cut, so their files are renamed into the queue without a sync (a sync
    per marker cost ~0.3 ms on an idle disk, more behind a busy one)."""
    assert _synced_before_rename(_traced_publish(tmp_path, delivery_mode=1)) == [False, False]
