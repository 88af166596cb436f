"""Shared test helpers: configs, brokers, the tiny model, a running daemon, waiting."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.requires import in_ci

BROKERS = {
    "embedded": "",
    "amqp": "amqp://guest:guest@127.0.0.1:5672//",
    "redis": "redis://127.0.0.1:6379/0",
}
WATCHERD = [sys.executable, "-m", "watcherd"]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def reachable(url: str) -> bool:
    if not url:
        return True
    host, port = "127.0.0.1", 5672 if url.startswith("amqp") else 6379
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_broker(name: str) -> str:
    url = BROKERS[name]
    if not reachable(url):
        msg = f"{name} broker not reachable at {url}"
        if in_ci():
            pytest.fail(msg + " (CI is set: brokers must be running)")
        pytest.skip(msg)
    return url


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from watcherd.testing import write_model_dir

    return write_model_dir(tmp_path_factory.mktemp("tiny-model"), arch="tiny")


def write_config(tmp_path: Path, *, broker_url: str = "", model: str = "", **sections: Any) -> Path:
    """A config file in tmp_path watching tmp_path/photos, with fast test timings."""
    photos = tmp_path / "photos"
    photos.mkdir(exist_ok=True)
    base: dict[str, dict[str, Any]] = {
        "watch": {"paths": [str(photos)], "settle_seconds": 1.0, "rescan_interval_seconds": 3600},
        "database": {"path": str(tmp_path / "watcherd.db")},
        "broker": {"url": broker_url, "queue_prefix": f"t{uuid.uuid4().hex[:8]}-",
                   "outbox_interval_seconds": 1.0},
        "thumbnails": {"sizes": [64, 256], "concurrency": 2},
        "embeddings": {"model": model or "local-dir:/nonexistent-model", "pretrained": "",
                       "batch_size": 8, "max_wait_ms": 100},
        "log": {"level": "info", "format": "json"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    lines: list[str] = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml(value)}")
        lines.append("")
    path = tmp_path / "watcherd.toml"
    path.write_text("\n".join(lines))
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def cli(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WATCHERD, "-c", str(config), *args], capture_output=True, text=True,
                          timeout=timeout)


class Daemon:
    """A real ``watcherd run`` (or any subcommand) process with its output in a log file."""

    def __init__(self, config: Path, *args: str) -> None:
        self.config = config
        self.args = args or ("run",)
        self.log_path = config.parent / f"daemon-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([*WATCHERD, "-c", str(self.config), *self.args],
                                     stdout=self.log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            # Nothing of ours may survive: kill the whole session if anything lingers.
            kill_group(self.proc.pid)
            self.log_file.close()
        return code


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()


def query(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    if not db_path.exists():
        return []
    conn = sqlite3.connect(db_path, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()


def rows_by_name(db_path: Path) -> dict[str, sqlite3.Row]:
    return {Path(r["path"]).name: r for r in query(db_path, "SELECT * FROM images")}


def all_final(db_path: Path, names: set[str]) -> bool:
    rows = rows_by_name(db_path)
    return names <= set(rows) and all(
        rows[n]["thumbnail_status"] != "pending" and rows[n]["embedding_status"] != "pending"
        for n in names
    )


def put_vectors(conn: Any, model: str, pretrained: str, dim: int, rows: Sequence[Any],
                precision: str | None = None) -> int:
    """Vectors as a finished library holds them, whatever each row's status (a fixture: several
    models' vectors for one photo, vectors for rows already done). The product's one writer,
    with its guards, is ``watcherd.store.outcomes.save_vectors``; ``rows`` are its
    ``EmbeddingRow``. Returns how many rows matched (same id and sha256)."""
    from watcherd.store.schema import now_iso, transaction

    now, n = now_iso(), 0
    with transaction(conn) as c:
        for r in rows:
            if c.execute("UPDATE images SET embedding_status = 'done', embedding_error = NULL, "
                         "width = coalesce(width, ?), height = coalesce(height, ?), "
                         "format = coalesce(format, ?), updated_at = ? WHERE id = ? AND "
                         "sha256 = ?", (r.width, r.height, r.format, now, r.image_id,
                                        r.sha256)).rowcount:
                c.execute("INSERT OR REPLACE INTO embeddings (image_id, model, pretrained, dim, "
                          "vector, created_at, precision) VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (r.image_id, model, pretrained, dim, r.vector, now, precision))
                n += 1
    return n
