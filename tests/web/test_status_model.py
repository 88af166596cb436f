"""The status model reads the workers table generically: a row with more columns (the
per-process table: name, host, model, last_seen ...) shows in `status`, `status --json`."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

from tests.conftest import cli, write_config
from watcherd import config
from watcherd.config import ConfigError
from watcherd.store import db


def test_per_process_worker_rows(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    conn = db.connect(tmp_path / "watcherd.db")
    conn.conn.close()
    raw = sqlite3.connect(tmp_path / "watcherd.db")
    raw.executescript(
        "DROP TABLE workers; CREATE TABLE workers (name TEXT PRIMARY KEY, role TEXT, host TEXT,"
        " pid INTEGER, state TEXT, message TEXT, model TEXT, started_at TEXT, last_seen TEXT,"
        " processed INTEGER, rss_kb INTEGER);")
    raw.execute("INSERT INTO workers VALUES ('embeddings-1', 'embeddings', ?, 999999999, "
                "'ready', NULL, 'ViT-B-32 (laion2b_s34b_b79k)', '2026-01-01T00:00:00.000Z', "
                "'2026-01-01T00:01:00.000Z', 42, 1000)", (socket.gethostname(),))
    raw.commit()
    raw.close()
    report = json.loads(cli(path, "status", "--json").stdout)
    (w,) = report["workers"]
    assert w["name"] == "embeddings-1" and w["processed"] == 42
    assert w["state"] == "not running (last: ready)" and w["alive"] is False  # no such pid
    assert report["models"]["embedding_worker"] == "ViT-B-32 (laion2b_s34b_b79k)"
    text = cli(path, "status").stdout
    assert "worker      embeddings-1: not running (last: ready) (pid 999999999, since " \
           "2026-01-01T00:01:00.000Z)" in text, text


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
