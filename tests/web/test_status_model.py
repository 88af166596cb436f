"""The status model reads the workers table generically: a row with more columns (the
per-process table: name, host, model, last_seen ...) shows in `status`, `status --json`."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

from tests.helpers import cli, write_config
from watcherd import config, status
from watcherd.config import ConfigError
from watcherd.store import browse, schema, workers


def test_per_process_worker_rows(tmp_path: Path) -> None:
    """A worker the watcher last heard of long ago is dead, in `status`, `status --json` and
    so `/api/status`; its model still shows."""
    path = write_config(tmp_path)
    conn = schema.connect(tmp_path / "watcherd.db")
    conn.close()
    raw = sqlite3.connect(tmp_path / "watcherd.db")
    raw.execute("INSERT INTO workers (name, role, host, pid, state, model, pretrained, device, "
                "started_at, last_seen, processed, rss_kb) VALUES ('embeddings-1', "
                "'embeddings', ?, 999999999, 'ready', 'ViT-B-32', 'laion2b_s34b_b79k', 'cpu', "
                "'2026-01-01T00:00:00.000Z', '2026-01-01T00:01:00.000Z', 42, 1000)",
                (socket.gethostname(),))
    raw.commit()
    raw.close()
    report = json.loads(cli(path, "status", "--json").stdout)
    (w,) = report["workers"]
    assert w["name"] == "embeddings-1" and w["processed"] == 42
    assert w["liveness"] == "dead" and w["alive"] is False  # not heard of since January
    assert report["models"]["embedding_worker"] == "ViT-B-32"
    text = cli(path, "status").stdout
    assert "worker      embeddings-1: dead (last seen " in text, text
    assert "model ViT-B-32 laion2b_s34b_b79k on cpu" in text, text


def test_web_listen_is_checked() -> None:
    base = {"watch": {"paths": ["/"]}, "database": {"path": "/tmp/x.db"}}
    for bad in ("8470", "localhost", "127.0.0.1:0", "127.0.0.1:http", ":8470"):
        try:
            config.from_dict({**base, "web": {"listen": bad}})
        except ConfigError as exc:
            assert "web.listen" in str(exc)
        else:
            raise AssertionError(f"{bad!r} accepted")
    cfg = config.from_dict({**base, "web": {"listen": "[::1]:9000"}})
    assert cfg.web.loopback and cfg.web.port == 9000 and cfg.web.host == "::1"
    assert not config.from_dict({**base, "web": {"listen": "192.168.1.5:80"}}).web.loopback


def test_each_live_workers_memory_shows_in_status_and_metrics(tmp_path: Path) -> None:
    """The RSS a worker's heartbeat carries (its pool children included): `status`, `status
    --json` (so /api/status and the page) and /metrics's watcherd_worker_rss_bytes."""
    from prometheus_client import CollectorRegistry, generate_latest

    from watcherd.web.metrics import LibraryCollector

    path = write_config(tmp_path)
    conn = schema.connect(tmp_path / "watcherd.db")
    workers.save_workers(conn, [workers.WorkerRow(
        name="thumbnails@h:7", role="thumbnails", host=socket.gethostname(),
        pid=7, state="ready", message=None,
        model=None, pretrained=None, device=None, started_at=schema.now_iso(),
        last_seen=schema.now_iso(), processed=3, rss_kb=512_000)])
    report = json.loads(cli(path, "status", "--json").stdout)
    (w,) = report["workers"]
    assert w["alive"] is True and w["rss_kb"] == 512_000
    assert "worker      thumbnails@h:7: alive (last seen " in (text := cli(path, "status").stdout)
    assert "RSS 500 MB, 3 tasks done" in text, text
    cfg = config.load(path)
    registry = CollectorRegistry()
    registry.register(LibraryCollector(lambda: conn, lambda: None,
                                       lambda: status.with_liveness(cfg, browse.workers(conn)),
                                       lambda: status.alerts(cfg, conn)))
    metrics = generate_latest(registry).decode()
    assert ('watcherd_worker_rss_bytes{role="thumbnails",worker="thumbnails@h:7"} 5.24288e+08'
            in metrics), metrics
