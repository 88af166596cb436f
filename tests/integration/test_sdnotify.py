"""The watcher talks to systemd over a real notify socket: READY once watching, STATUS with the
scan's progress, and WATCHDOG=1 keep-alives from its main loop (the unit has WatchdogSec=)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from itertools import pairwise
from pathlib import Path

from tests.helpers import WATCHERD, write_config

ROOT = Path(__file__).resolve().parents[2]


def test_ready_status_and_watchdog_keepalives(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    for i in range(50):
        (tmp_path / "photos" / f"p{i}.jpg").write_bytes(b"\xff\xd8\xff" + bytes([i]))
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.5)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000"}
    proc = subprocess.Popen([*WATCHERD, "-c", str(config), "watch"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    messages: list[tuple[float, str]] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                messages.append((time.monotonic(), sock.recv(4096).decode()))
            except TimeoutError:
                continue
            keepalives = [t for t, m in messages if m == "WATCHDOG=1"]
            if len(keepalives) >= 4:
                break
    finally:
        proc.terminate()
        proc.wait(20)
        sock.close()
    texts = [m for _, m in messages]
    assert texts and texts[0].startswith("READY=1\nSTATUS=watching 1 folder"), texts[:3]
    keepalives = [t for t, m in messages if m == "WATCHDOG=1"]
    assert len(keepalives) >= 4, texts
    # At least once a second: well inside the 2 s this test's WatchdogSec asks for.
    assert max(b - a for a, b in pairwise(keepalives)) < 1.6


def test_the_unit_asks_for_keepalives() -> None:
    unit = (ROOT / "systemd" / "watcherd.service").read_text()
    assert "\nWatchdogSec=" in unit and "\nType=notify" in unit
