"""Embeddings waiting for a worker of the configured model say so on every surface: a real
``watcherd serve`` (/api/status, the /status page, /metrics) and the ``watcherd status`` command
(text and --json), over a database whose only embedding worker runs another model."""

from __future__ import annotations

import html
import json
import socket
import sqlite3
from pathlib import Path

from tests.helpers import cli
from tests.web.weblib import Serve, build, get
from watcherd.media.identity import identify
from watcherd.store import schema, workers

OTHER = ("local-dir", "sha256:a9aa00000000beef")


def save_rows(conn: sqlite3.Connection, model: tuple[str, str]) -> None:
    """What the watcher writes from the workers' heartbeats, refreshed as it does every tick (a
    row not refreshed for a few seconds is a dead worker's)."""
    now = schema.now_iso()
    workers.save_workers(conn, [
        workers.WorkerRow(name="thumbnails@photos:41", role="thumbnails", host=socket.gethostname(),
                          pid=41, state="ready", message=None, model=None, pretrained=None,
                          device=None, started_at=now, last_seen=now, processed=5, rss_kb=90_000),
        workers.WorkerRow(name="embeddings@gpubox:4242", role="embeddings", host="gpubox", pid=4242,
                          state="ready", message=None, model=model[0], pretrained=model[1],
                          device="cuda", started_at=now, last_seen=now, processed=0,
                          rss_kb=900_000)])


def test_embeddings_wait_for_the_configured_model_on_every_surface(tmp_path: Path,
                                                                   tiny_model: str) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    lib = build(tmp_path, tiny_model, photos=4)  # pending: the link's row, 3 broken files
    configured = identify(tiny_model, "")
    expected = {"kind": "embeddings_wait", "message": (
        f"EMBEDDINGS WAIT: no live embedding worker runs the configured model local-dir "
        f"{configured.pretrained}; running: embeddings@gpubox:4242 (local-dir "
        f"{OTHER[1]})")}
    conn = schema.connect(lib.db_path)
    server = Serve(lib.config).wait_ready()
    try:
        save_rows(conn, OTHER)
        api = get(server.base + "/api/status")
        assert api.status == 200 and api.json()["alerts"] == [expected], api.body[:2000]

        save_rows(conn, OTHER)
        page = get(server.base + "/status")
        assert page.status == 200
        assert expected["message"] in html.unescape(page.body.decode()), page.body.decode()

        save_rows(conn, OTHER)
        metrics = get(server.base + "/metrics")
        assert metrics.status == 200, metrics.body[:2000]
        alert = {s.labels["kind"]: s.value
                 for f in text_string_to_metric_families(metrics.body.decode())
                 for s in f.samples if s.name == "watcherd_alert"}
        assert alert == {"embeddings_wait": 1, "thumbnails_wait": 0, "model_failed": 0}, alert

        save_rows(conn, OTHER)
        run = cli(lib.config, "status", "--json")
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["alerts"] == [expected]
        save_rows(conn, OTHER)
        text = cli(lib.config, "status").stdout
        assert f"\n{expected['message']}\n" in text, text

        # a worker of the configured model (its identity, though the fixture's vectors still
        # carry the pre-identity key: the watcher relabels them at its start)
        save_rows(conn, (configured.model, configured.pretrained))
        assert get(server.base + "/api/status").json()["alerts"] == []
    finally:
        server.stop()
        conn.close()
