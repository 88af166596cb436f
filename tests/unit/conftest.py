"""tests/unit runs in-process and fast: no subprocess, no broker, no wait over a second. A test
that needs a process of its own, a broker or a real daemon belongs in tests/process/ or
tests/integration/ (see tests/conftest.py); this guard keeps the rule from eroding."""

from __future__ import annotations

import multiprocessing.process
import socket
import subprocess
from typing import Any

import pytest

BROKER_PORTS = {5672, 6379}  # RabbitMQ, Redis (tests.helpers.BROKERS)


def _refuse(what: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        pytest.fail(f"tests/unit is in-process: this test {what}; move it to tests/process/ "
                    "(its own processes) or tests/integration/ (daemons, brokers)",
                    pytrace=True)
    return refuse


@pytest.fixture(autouse=True)
def in_process_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail a unit test that starts a process (subprocess, multiprocessing) or connects to a
    broker's port."""
    monkeypatch.setattr(subprocess, "Popen", _refuse("starts a subprocess (subprocess.Popen)"))
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start",
                        _refuse("starts a process (multiprocessing)"))
    connect = socket.socket.connect
    connect_ex = socket.socket.connect_ex

    def broker(address: Any) -> bool:
        return (isinstance(address, tuple) and len(address) >= 2
                and address[1] in BROKER_PORTS)

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if broker(address):
            _refuse(f"connects to a broker at {address}")()
        connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        if broker(address):
            _refuse(f"connects to a broker at {address}")()
        return connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
