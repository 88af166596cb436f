"""Shared pieces of the fault-injection suite: test configs with fast recovery timings, bursts of
small distinct JPEGs, the "nothing lost, nothing stuck" check, broker stop/start, and the figures
every test records (printed at the end of the run; also written as JSON to
``$WATCHERD_FIGURES`` when set)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests import procs as ps
from tests.helpers import Daemon, jpeg, query, wait_for, write_config
from watcherd.config import DEFAULT_EXTENSIONS
from watcherd.fleet import procinfo
from watcherd.watch.rules import Rules
from watcherd.watch.scan import walk

_FIGURES: list[dict[str, Any]] = []


def record(**figure: Any) -> None:
    """Keep one measured figure (a dict) for the end-of-run table."""
    _FIGURES.append(figure)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("watcherd reliability figures")
    for f in _FIGURES:
        terminalreporter.write_line(json.dumps(f, default=str))
    if out := os.environ.get("WATCHERD_FIGURES"):
        Path(out).write_text(json.dumps(_FIGURES, indent=1, default=str))


def reliability_config(tmp_path: Path, url: str, model: str, **sections: Any) -> Path:
    """The production recovery settings (``resend_after_seconds`` 120: a recovery that leaned
    on the outbox's stale re-send would show), with the outbox ticking every second unless a
    test asks for the default (``broker={"outbox_interval_seconds": 5.0}``)."""
    broker = {"url": url, "outbox_interval_seconds": 1.0, **sections.pop("broker", {})}
    embeddings = {"batch_size": 16, "max_wait_ms": 100, **sections.pop("embeddings", {})}
    return write_config(tmp_path, broker_url=url, model=model, broker=broker,
                        embeddings=embeddings, **sections)


def start_running(tmp_path: Path, url: str, model: str, daemons: list[Daemon],
                  **sections: Any) -> tuple[Daemon, Path, Path]:
    """`watcherd run` with the reliability config, once its model is loaded: (daemon, photos
    folder, database path)."""
    daemon = Daemon(reliability_config(tmp_path, url, model, **sections)).start()
    daemons.append(daemon)
    wait_for(lambda: "embedding model loaded" in daemon.log(), 60, "the model to load")
    return daemon, tmp_path / "photos", tmp_path / "watcherd.db"


def record_recovery(fault: str, broker: str, files: int, s: dict[str, Any], took: float,
                    **extra: Any) -> None:
    """One fault's figures: final states from ``wait_settled`` and the time to recovery."""
    record(fault=fault, broker=broker, files=files, **extra, done=s["done"], failed=s["failed"],
           lost=s["lost"], max_attempts=s.get("max_attempts"), recovery_s=round(took, 1))


# ------------------------------------------------------------- what the workers computed


def log_events(log: str) -> list[dict[str, Any]]:
    """The JSON lines of a daemon's log (every child's lines land in the same file)."""
    out = []
    for line in log.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def computations(log: str, *, pids: set[int] | None = None,
                 after: float | None = None) -> dict[str, Counter[int]]:
    """How many times each image's thumbnails and embedding were actually computed, counted
    from the workers' own log lines ("thumbnails done" / "thumbnails stale, dropped" carry an
    image_id, "embeddings done" the image_ids of its batch): optionally only lines from
    ``pids`` written at or after the wall-clock time ``after``."""
    out: dict[str, Counter[int]] = {"thumbnail": Counter(), "embedding": Counter()}
    for e in log_events(log):
        if pids is not None and e.get("pid") not in pids:
            continue
        if after is not None and datetime.fromisoformat(e["timestamp"]).timestamp() < after:
            continue
        if e.get("event") in ("thumbnails done", "thumbnails stale, dropped"):
            out["thumbnail"][int(e["image_id"])] += 1
        elif e.get("event") == "embeddings done":
            out["embedding"].update(int(i) for i in e.get("image_ids") or ())
    return out


def computed_twice(log: str) -> dict[str, list[int]]:
    """Image ids whose thumbnails / embedding were computed more than once."""
    return {kind: sorted(i for i, n in c.items() if n > 1)
            for kind, c in computations(log).items()}


def write_burst(folder: Path, n: int, *, start: int = 0, prefix: str = "f",
                per_folder: int = 0, size: int = 40) -> list[Path]:
    """n distinct JPEGs written as fast as possible (``per_folder`` > 0: nested folders)."""
    paths = []
    for i in range(start, start + n):
        sub = folder
        if per_folder:
            sub = folder / f"d{i // per_folder // 10:03d}" / f"e{i // per_folder:04d}"
            sub.mkdir(parents=True, exist_ok=True)
        p = sub / f"{prefix}{i:06d}.jpg"
        p.write_bytes(jpeg(i, size))
        paths.append(p)
    return paths


class BackgroundBurst(threading.Thread):
    """write_burst in a thread, so a fault can be injected while files arrive."""

    def __init__(self, folder: Path, n: int, **kw: Any) -> None:
        super().__init__(daemon=True)
        self.folder, self.n, self.kw = folder, n, kw
        self.written = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            start = self.kw.pop("start", 0)
            for i in range(start, start + self.n):
                write_burst(self.folder, 1, start=i, **self.kw)
                self.written += 1
        except BaseException as exc:
            self.error = exc

    def finish(self, timeout: float = 120) -> None:
        self.join(timeout)
        assert not self.is_alive(), "burst writer did not finish"
        if self.error:
            raise self.error


# -------------------------------------------------------------- nothing lost, nothing stuck


def state(db_path: Path, root: Path) -> dict[str, Any]:
    """Compare the files on disk with the rows: the core invariant of this suite."""
    files = {info.path for info in walk(root, Rules.of([root], DEFAULT_EXTENSIONS))}
    rows = query(db_path, "SELECT path, deleted_at, thumbnail_status, embedding_status, "
                 "thumbnail_error, embedding_error, thumbnail_attempts, embedding_attempts "
                 "FROM images")
    live = {r["path"]: r for r in rows if r["deleted_at"] is None}
    pending = [p for p, r in live.items()
               if r["thumbnail_status"] == "pending" or r["embedding_status"] == "pending"]
    return {
        "files": len(files),
        "rows": len(rows),
        "lost": len(files - set(live)),
        "ghosts": len(set(live) - files),  # live rows for files that are not there
        "pending": len(pending),
        "done": sum(1 for r in live.values()
                    if r["thumbnail_status"] == "done" and r["embedding_status"] == "done"),
        "failed": sum(1 for r in live.values()
                      if "failed" in (r["thumbnail_status"], r["embedding_status"])),
        "max_attempts": max([max(r["thumbnail_attempts"], r["embedding_attempts"])
                             for r in live.values()] or [0]),
        "errors": sorted({e for r in live.values()
                          for e in (r["thumbnail_error"], r["embedding_error"]) if e}),
    }


def settled(db_path: Path, root: Path, expect_files: int | None = None) -> dict[str, Any] | None:
    s = state(db_path, root)
    ok = (s["lost"] == s["ghosts"] == s["pending"] == 0
          and (expect_files is None or s["files"] == expect_files))
    return s if ok else None


def wait_settled(db_path: Path, root: Path, timeout: float, what: str,
                 expect_files: int | None = None) -> dict[str, Any]:
    try:
        return wait_for(lambda: settled(db_path, root, expect_files), timeout, what, interval=0.25)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; state: {state(db_path, root)}") from None


def assert_clean(s: dict[str, Any], *, failed: int = 0) -> None:
    """Every file has its one row (``path`` is UNIQUE: a file cannot have two), final."""
    assert s["lost"] == 0 and s["pending"] == 0 and s["ghosts"] == 0, s
    assert s["failed"] == failed, s


# -------------------------------------------------------------------------- processes


ROLES = {"watch": "watcher", "worker thumbnails": "thumbnails",
         "worker embeddings": "embeddings"}


def children_of(pid: int) -> dict[str, int]:
    """role (watcher/thumbnails/embeddings) → pid of `watcherd run`'s direct children."""
    out = {}
    for p in ps.children(pid):
        cmd = ps.cmdline(p)
        for suffix, role in ROLES.items():
            if cmd.endswith(suffix):
                out[role] = p
    return out


def all_children(pid: int) -> dict[str, int]:
    return wait_for(lambda: (k := children_of(pid)) and len(k) == 3 and k, 30, "three children")


def rss_kb(pid: int) -> int | None:
    """VmRSS in KiB, None once the process is gone (procinfo reads it)."""
    return procinfo.rss_kb(pid) or None


# ---------------------------------------------------------------------------- brokers


REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port",
               "6379", "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
               "--logfile", "/var/log/redis/ci.log"]


def _ok(cmd: list[str]) -> bool:
    return subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0


def broker_up(name: str) -> bool:
    if name == "redis":
        return _ok(["redis-cli", "ping"])
    return _ok(["rabbitmqctl", "await_startup", "--timeout", "5"]) and _ok(
        ["rabbitmq-diagnostics", "-q", "check_port_listener", "5672"])


def stop_broker(name: str) -> None:
    if name == "redis":
        subprocess.run(["redis-cli", "shutdown", "nosave"], capture_output=True, timeout=30)
    else:
        subprocess.run(["rabbitmqctl", "stop_app"], capture_output=True, timeout=120, check=True)


def start_broker(name: str) -> None:
    if name == "redis":
        if not _ok(["redis-cli", "ping"]):
            subprocess.run(REDIS_START, capture_output=True, timeout=30, check=True)
        wait_for(lambda: _ok(["redis-cli", "ping"]), 30, "redis to answer")
    else:
        if not _ok(["rabbitmqctl", "start_app"]):
            subprocess.run(["rabbitmq-server", "-detached"], capture_output=True, timeout=60)
        wait_for(lambda: broker_up("amqp"), 120, "rabbitmq to listen", interval=1)


@pytest.fixture
def broker_restorer() -> Iterator[list[str]]:
    """Brokers named in the list are started again after the test, whatever happened."""
    stopped: list[str] = []
    yield stopped
    for name in stopped:
        start_broker(name)


def now() -> float:
    return time.monotonic()
