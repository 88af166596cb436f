"""The alert rule (watcherd.alerts) over a real SQLite database: photos recorded and worker rows
written through the store's own functions (as the watcher writes them from heartbeats), read
back the way every surface reads them (watcherd.status.alerts)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from tests.helpers import put_vectors
from watcherd import config, status
from watcherd.store import discovery, outcomes, schema, workers
from watcherd.store.vectors import ModelKey

CONFIGURED = ModelKey("local-dir", "sha256:5571aaaaaaaaaaaa")
OTHER = ModelKey("local-dir", "sha256:a9aabbbbbbbbbbbb")
REUSE = discovery.Reuse(CONFIGURED.model, CONFIGURED.pretrained, (64,), "webp")


def library(tmp_path: Path, *, pending: bool = True) -> tuple[config.Config, sqlite3.Connection]:
    """Three photos, pending both kinds of work (or with all their work done)."""
    cfg = config.from_dict({"watch": {"paths": [str(tmp_path)]},
                            "database": {"path": str(tmp_path / "watcherd.db")}},
                           check_paths=False)
    conn = schema.connect(cfg.database.path)
    for i in range(3):
        rec = discovery.record_file(conn, f"/photos/{i}.jpg", 10, 1.0, f"{i:064x}", REUSE)
        if not pending:
            outcomes.save_thumbnails(conn, rec.id, f"{i:064x}", 8, 8, "jpeg",
                               [outcomes.ThumbRow(64, 8, 8, "webp", b"x")])
            vec = np.ones(4, dtype=np.float32).tobytes()
            put_vectors(conn, CONFIGURED.model, CONFIGURED.pretrained, 4,
                               [outcomes.EmbeddingRow(rec.id, f"{i:064x}", vec)])
    return cfg, conn


def worker(conn: sqlite3.Connection, role: str, *, pid: int = 1, state: str = "ready",
           model: ModelKey | None = None, started_s_ago: float = 600.0,
           message: str | None = None, seen_s_ago: float = 0.0) -> str:
    now = datetime.now(UTC)
    name = f"{role}@host:{pid}"
    workers.save_workers(conn, [workers.WorkerRow(
        name=name, role=role, host="host", pid=pid, state=state, message=message,
        model=model.model if model else None, pretrained=model.pretrained if model else None,
        device="cpu" if model else None,
        started_at=schema.now_iso(now - timedelta(seconds=started_s_ago)),
        last_seen=schema.now_iso(now - timedelta(seconds=seen_s_ago)), processed=0, rss_kb=1000)])
    return name


def alerts(cfg: config.Config, conn: sqlite3.Connection) -> dict[str, str]:
    found = status.alerts(cfg, conn, configured=CONFIGURED)
    by_kind = {a["kind"]: a["message"] for a in found}
    assert len(by_kind) == len(found), found  # one alert per kind
    return by_kind


def test_no_live_worker_with_pending_work(tmp_path: Path) -> None:
    """No rows at all (a daemon that is not running, or started seconds ago), then only rows of
    workers the watcher no longer hears: both kinds of work wait, and say so."""
    cfg, conn = library(tmp_path)
    expected = {"embeddings_wait": "EMBEDDINGS WAIT: no live embedding worker",
                "thumbnails_wait": "THUMBNAILS WAIT: no live thumbnail worker"}
    assert alerts(cfg, conn) == expected
    worker(conn, "embeddings", model=CONFIGURED, seen_s_ago=3600)  # dead: not heard for an hour
    worker(conn, "thumbnails", pid=2, state="stopped")
    assert alerts(cfg, conn) == expected


def test_only_a_worker_of_another_model(tmp_path: Path) -> None:
    cfg, conn = library(tmp_path)
    worker(conn, "thumbnails", pid=2)
    other = worker(conn, "embeddings", model=OTHER)
    assert alerts(cfg, conn) == {"embeddings_wait": (
        "EMBEDDINGS WAIT: no live embedding worker runs the configured model local-dir "
        f"sha256:5571aaaaaaaaaaaa; running: {other} (local-dir sha256:a9aabbbbbbbbbbbb)")}
    worker(conn, "embeddings", pid=3, model=CONFIGURED)  # one of the configured model joins
    assert alerts(cfg, conn) == {}


def test_a_worker_refusing_work_does_not_count(tmp_path: Path) -> None:
    cfg, conn = library(tmp_path)
    worker(conn, "thumbnails", pid=2)
    name = worker(conn, "embeddings", model=CONFIGURED, state="refusing",
                  message="another watcherd version")
    assert alerts(cfg, conn)["embeddings_wait"].endswith(
        f"; running: {name} (refusing work, local-dir sha256:5571aaaaaaaaaaaa)")


def test_a_worker_starting_in_its_first_minute_is_not_missing(tmp_path: Path) -> None:
    """Loading its model, its row carries the configured strings, not the identity: during its
    first minute it is given the benefit of the doubt."""
    cfg, conn = library(tmp_path)
    worker(conn, "thumbnails", pid=2, state="starting", started_s_ago=5)
    worker(conn, "embeddings", state="starting", started_s_ago=20,
           model=ModelKey("local-dir:/models/clip", ""))
    assert alerts(cfg, conn) == {}


def test_a_worker_starting_for_more_than_a_minute_is_missing(tmp_path: Path) -> None:
    cfg, conn = library(tmp_path)
    thumbs = worker(conn, "thumbnails", pid=2, state="starting", started_s_ago=180)
    embeds = worker(conn, "embeddings", state="starting", started_s_ago=140,
                    model=ModelKey("local-dir:/models/clip", ""))
    assert alerts(cfg, conn) == {
        "embeddings_wait": "EMBEDDINGS WAIT: no live embedding worker runs the configured "
                           "model local-dir sha256:5571aaaaaaaaaaaa; running: "
                           f"{embeds} (starting for 2 min)",
        "thumbnails_wait": f"THUMBNAILS WAIT: no thumbnail worker is ready; running: {thumbs} "
                           "(starting for 3 min)"}


def test_model_failed(tmp_path: Path) -> None:
    """The failure is said whether or not photos are pending (the next one will wait); with
    photos pending, they wait too."""
    cfg, conn = library(tmp_path)
    worker(conn, "thumbnails", pid=2)
    name = worker(conn, "embeddings", state="model failed",
                  model=ModelKey("local-dir:/models/clip", ""),
                  message="the embedding model could not be loaded: no such folder\ntraceback")
    found = alerts(cfg, conn)
    assert found["model_failed"] == (
        f"EMBEDDINGS ARE NOT BEING COMPUTED: the model could not be loaded by {name} (the "
        "embedding model could not be loaded: no such folder); the worker tries again on its "
        "own (fix [embeddings] or the weights), and queues the photos that failed for it once "
        "it loads")
    assert found["embeddings_wait"].endswith(f"; running: {name} (model failed to load)")
    for row in conn.execute("SELECT id, sha256 FROM images").fetchall():
        outcomes.fail(conn, "embedding", row[0], row[1], "the model could not be loaded")
    assert list(alerts(cfg, conn)) == ["model_failed"]
    worker(conn, "embeddings", pid=3, model=CONFIGURED)  # another host computes them
    assert alerts(cfg, conn)["model_failed"].startswith(
        "AN EMBEDDING WORKER CANNOT LOAD THE MODEL (others compute the embeddings): ")


def test_nothing_pending_nothing_to_wait_for(tmp_path: Path) -> None:
    """A finished library with no worker running (``serve`` alone, a daemon stopped on
    purpose) raises nothing; a new pending photo does."""
    cfg, conn = library(tmp_path, pending=False)
    assert conn.execute("SELECT count(*) FROM images WHERE thumbnail_status = 'done' AND "
                        "embedding_status = 'done'").fetchone()[0] == 3
    assert alerts(cfg, conn) == {}
    discovery.record_file(conn, "/photos/new.jpg", 10, 1.0, "e" * 64, REUSE)
    assert set(alerts(cfg, conn)) == {"embeddings_wait", "thumbnails_wait"}


def test_remote_embeddings_need_a_thumbnail_worker_to_prepare_them(tmp_path: Path) -> None:
    """With ``[embeddings] remote`` the thumbnail workers prepare the photos: none, and the
    embeddings wait even with a worker of the configured model."""
    _, conn = library(tmp_path)
    cfg = config.from_dict({"watch": {"paths": [str(tmp_path)]},
                            "database": {"path": str(tmp_path / "watcherd.db")},
                            "broker": {"url": "redis://127.0.0.1:1/0"},
                            "embeddings": {"remote": True}}, check_paths=False)
    worker(conn, "embeddings", model=CONFIGURED)
    assert alerts(cfg, conn)["embeddings_wait"] == (
        "EMBEDDINGS WAIT: no thumbnail worker is ready to prepare the photos for the embedding "
        "workers ([embeddings] remote)")
    worker(conn, "thumbnails", pid=2)
    assert alerts(cfg, conn) == {}
