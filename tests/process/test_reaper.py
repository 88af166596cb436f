"""Ending a stuck worker process from outside, on real processes (no broker); how two pid spaces
compare is tested in-process in tests/unit/test_reaper.py."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for
from watcherd.fleet import reaper

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



def test_a_worker_in_another_pid_space_is_left_alone(
        procs: list[subprocess.Popen[bytes]]) -> None:
    """The same host name is not enough: a worker in a container that shares the host's
    network and name (its own pid namespace), or on another machine of the same name, reports
    another pid space, and its pid is not ours to kill; one that reports ours is."""
    w = _spawn("watcherd", "worker", "embeddings")
    procs.append(w)
    here = reaper.pid_space()
    assert here and "/" in here
    assert reaper.end(HOST, w.pid, force=True, space=f"another-machine/{here.split('/')[1]}") \
        == reaper.REMOTE
    assert reaper.end(HOST, w.pid, force=True, space=f"{here.split('/')[0]}/1") == reaper.REMOTE
    assert w.poll() is None
    assert reaper.end(HOST, w.pid, force=True, space=here) == reaper.KILLED
    assert w.wait(5) == -signal.SIGKILL



def test_a_pid_namespace_is_another_pid_space() -> None:
    """What a worker in its own pid namespace reports (a real one, made with unshare: root)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1)")
    code = "from watcherd.fleet.reaper import pid_space; print(pid_space())"
    inside = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=60, check=True,
        cwd=Path(__file__).parents[2]).stdout.strip()
    here = reaper.pid_space()
    assert inside and inside != here
    assert inside.split("/")[0] == here.split("/")[0]  # the same machine: another namespace
