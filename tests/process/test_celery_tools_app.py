"""The Celery app for Celery's own tools, seen from real processes: `import watcherd` in a fresh
interpreter and the `celery` command (the app itself is tested in-process in
tests/unit/test_celery_tools_app.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_config
from watcherd.broker import celery_cli


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(celery_cli, "_app", None)


def _celery_cli(*args: str, config: Path | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WATCHERD_CONFIG"}
    if config is not None:
        env["WATCHERD_CONFIG"] = str(config)
    return subprocess.run([sys.executable, "-m", "celery", "-A", "watcherd", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_import_watcherd_builds_no_app_and_imports_no_celery(tmp_path: Path) -> None:
    env = {**os.environ, "WATCHERD_CONFIG": str(tmp_path / "missing.toml")}
    code = ("import sys, watcherd, watcherd.config; "
            "print(sorted(m for m in sys.modules if m == 'celery' or m.startswith('kombu') "
            "or m == 'watcherd.broker.celery_cli'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_celery_cli_prints_the_reason_verbatim_and_exits_2(tmp_path: Path) -> None:
    unset = _celery_cli("inspect", "ping", config=None)
    assert unset.returncode == 2, unset.stderr
    assert "$WATCHERD_CONFIG is not set" in unset.stderr  # not lower-cased by Celery
    spool = _celery_cli("inspect", "ping", config=write_config(tmp_path))
    assert spool.returncode == 2, spool.stderr
    assert "`watcherd status`" in spool.stderr and str(tmp_path) in spool.stderr
    assert "Traceback" not in unset.stderr + spool.stderr


