"""The task and worker side of the database: claims that write nothing, attempts charged for
worker deaths, the outbox hints, the ``workers`` table and its migration. Real SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from watcherd.store import discovery, migrations, outcomes, schema, sending, workers

REUSE = discovery.Reuse("m", "p", (64,), "webp")


def test_begin_task_counts_no_attempt_and_writes_nothing(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    a = discovery.record_file(conn, "/p/a.jpg", 10, 1.0, "h1", REUSE)
    other = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    try:
        conn.execute("PRAGMA busy_timeout = 0")
        for _ in range(5):  # a read: a redelivered message costs nothing, even when locked
            assert outcomes.begin_task(conn, "embedding", a.id, "h1") == "/p/a.jpg"
    finally:
        other.execute("ROLLBACK")
    assert conn.execute("SELECT embedding_attempts FROM images").fetchone()[0] == 0


def test_died_while_processing_charges_pending_rows_and_fails_them_at_max(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    a = discovery.record_file(conn, "/p/a.jpg", 10, 1.0, "h1", REUSE)
    b = discovery.record_file(conn, "/p/b.jpg", 10, 1.0, "h2", REUSE)
    items = [(a.id, "h1"), (b.id, "stale")]
    assert outcomes.died_while_processing(conn, "embedding", items, 2) == [
        outcomes.Charged(a.id, 1, False)]
    assert outcomes.died_while_processing(conn, "embedding", [(a.id, "h1")], 2) == [
        outcomes.Charged(a.id, 2, True)]
    assert outcomes.died_while_processing(conn, "embedding", [(a.id, "h1")], 2) == []  # failed now
    row = conn.execute("SELECT * FROM images WHERE id = ?", (a.id,)).fetchone()
    assert row["embedding_status"] == "failed"
    assert row["embedding_error"] == outcomes.died_reason(2)
    assert "died 2 times" in row["embedding_error"] and "out-of-memory" in row["embedding_error"]
    assert row["thumbnail_attempts"] == 0
    assert outcomes.died_reason(1).startswith("the worker died once")


def test_still_queued_keeps_a_held_row_from_looking_lost(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    a = discovery.record_file(conn, "/p/a.jpg", 10, 1.0, "h1", REUSE)
    assert outcomes.still_queued(conn, "thumbnail", [(a.id, "h1")]) == 0  # never sent: stays due
    assert sending.due_for_dispatch(conn, "thumbnail", resend_before=None) == [(a.id, "h1")]
    sending.mark_queued(conn, "thumbnail", [a.id])
    conn.execute("UPDATE images SET thumbnail_queued_at = ?", (schema.iso_ago(600),))
    assert sending.due_for_dispatch(conn, "thumbnail",
                                    resend_before=schema.iso_ago(120)) == [(a.id, "h1")]
    assert outcomes.still_queued(conn, "thumbnail", [(a.id, "other content")]) == 0
    assert outcomes.still_queued(conn, "thumbnail", [(a.id, "h1")]) == 1
    assert sending.due_for_dispatch(conn, "thumbnail", resend_before=schema.iso_ago(120)) == []


def test_note_error_on_a_pending_row_only(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    a = discovery.record_file(conn, "/p/a.jpg", 10, 1.0, "h1", REUSE)
    assert outcomes.note_error(conn, "thumbnail", a.id, "h1", "database locked for 30 s")
    row = conn.execute("SELECT thumbnail_status, thumbnail_error FROM images").fetchone()
    assert tuple(row) == ("pending", "database locked for 30 s")
    outcomes.save_thumbnails(conn, a.id, "h1", 1, 1, "PNG", [])
    assert conn.execute("SELECT thumbnail_error FROM images").fetchone()[0] is None
    assert not outcomes.note_error(conn, "thumbnail", a.id, "h1", "late")


def test_workers_rows(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    row = workers.WorkerRow("thumbnails@h:1", "thumbnails", "h", 1, "ready", None, None, None, None,
                       "2026-01-01T00:00:00.000Z", schema.iso_ago(7200), 3, 1000)
    workers.save_workers(conn, [row, workers.WorkerRow(**{**row.__dict__, "name": "thumbnails@h:2",
                                                 "last_seen": schema.iso_ago(1)})])
    workers.save_workers(conn, [workers.WorkerRow(**{**row.__dict__, "processed": 9})])
    rows = {r["name"]: r for r in workers.worker_states(conn)}
    assert rows["thumbnails@h:1"]["processed"] == 9 and len(rows) == 2
    assert workers.forget_workers(conn, last_seen_before=schema.iso_ago(3600)) == 1
    assert [r["name"] for r in workers.worker_states(conn)] == ["thumbnails@h:2"]


def test_migration_replaces_the_per_role_workers_table(tmp_path: Path) -> None:
    """A database of schema 1 (one row per role) upgrades to one row per worker process."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path, isolation_level=None)
    for statement in migrations._statements(migrations.MIGRATIONS[0]):
        old.execute(statement)
    old.execute("PRAGMA user_version = 1")
    old.execute("INSERT INTO workers VALUES ('embeddings', 1, 'h', 'ready', NULL, 'x')")
    old.close()
    conn = schema.connect(path)
    assert migrations.schema_version(conn) == migrations.SCHEMA_VERSION
    cols = [r[1] for r in conn.execute("PRAGMA table_info(workers)")]
    assert cols[:2] == ["name", "role"] and {"last_seen", "rss_kb", "processed"} <= set(cols)
    assert workers.worker_states(conn) == []
