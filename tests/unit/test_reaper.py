"""Ending a stuck worker process from outside, on real processes (no broker)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for
from watcherd.queue import reaper

HOST = socket.gethostname()


def _spawn(*argv: str) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv])
    wait_for(lambda: argv[0].encode() in Path(f"/proc/{p.pid}/cmdline").read_bytes(), 5,
             "the exec")
    return p


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_a_stopped_worker_is_killed_a_running_one_only_when_forced(
        procs: list[subprocess.Popen[bytes]]) -> None:
    w = _spawn("watcherd", "worker", "embeddings")
    procs.append(w)
    assert reaper.end(HOST, w.pid, force=False) == reaper.RUNNING
    os.kill(w.pid, signal.SIGSTOP)
    wait_for(lambda: reaper._state(w.pid) == "T", 5, "the process to stop")
    assert reaper.end(HOST, w.pid, force=False) == reaper.KILLED
    assert w.wait(5) == -signal.SIGKILL
    assert reaper.end(HOST, w.pid, force=True) == reaper.GONE
    forced = _spawn("watcherd", "worker", "thumbnails")
    procs.append(forced)
    assert reaper.end(HOST, forced.pid, force=True) == reaper.KILLED
    assert forced.wait(5) == -signal.SIGKILL


def test_other_programs_and_other_hosts_are_left_alone(
        procs: list[subprocess.Popen[bytes]]) -> None:
    other = _spawn("something", "else")
    procs.append(other)
    assert reaper.end(HOST, other.pid, force=True) == reaper.NOT_OURS
    w = _spawn("watcherd", "worker", "embeddings")
    procs.append(w)
    assert reaper.end("another-host", w.pid, force=True) == reaper.REMOTE
    assert other.poll() is None and w.poll() is None
