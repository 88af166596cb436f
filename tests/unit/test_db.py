"""Schema migration and the row logic the daemon's guarantees rest on, on real SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from watcherd.store import admin, browse, discovery, migrations, outcomes, schema, sending

REUSE = discovery.Reuse("m", "p", (64, 256), "webp")


def test_migrate_creates_schema_once_and_is_idempotent(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    assert migrations.schema_version(conn) == migrations.SCHEMA_VERSION
    assert migrations.migrate(conn) == (migrations.SCHEMA_VERSION, migrations.SCHEMA_VERSION)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(images)")}
    assert {"id", "path", "sha256", "size", "mtime", "width", "height", "format",
            "discovered_at", "thumbnail_status", "thumbnail_error", "embedding_status",
            "embedding_error", "deleted_at"} <= cols
    assert {r[1] for r in conn.execute("PRAGMA table_info(thumbnails)")} >= {
        "image_id", "size", "width", "height", "format", "data", "created_at"}
    assert {r[1] for r in conn.execute("PRAGMA table_info(embeddings)")} >= {
        "image_id", "model", "pretrained", "dim", "vector", "created_at"}
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # A second process connecting migrates nothing and sees the same version.
    other = schema.connect(tmp_path / "a.db")
    assert migrations.schema_version(other) == migrations.SCHEMA_VERSION


def _schema(conn: Any) -> list[tuple[str, str]]:
    return sorted((r[0], r[1]) for r in conn.execute(
        "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))


def test_migration_7_keeps_every_row_and_blob_and_never_reuses_an_id(tmp_path: Path) -> None:
    """A database of the previous schema (6), rebuilt with AUTOINCREMENT: rows, thumbnails and
    vectors stay (dropping the old table must not cascade), columns and indexes are the same,
    and an id deleted at the top is not handed out again."""
    path = tmp_path / "v6.db"
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA foreign_keys = ON")
    for script in migrations.MIGRATIONS[:6]:
        for statement in (s.strip() for s in script.split(";") if s.strip()):
            raw.execute(statement)
    raw.execute("PRAGMA user_version = 6")
    for i in (1, 2, 3):
        raw.execute("INSERT INTO images (id, path, discovered_at, thumbnail_status) "
                    "VALUES (?, ?, 'now', 'done')", (i, f"/p/{i}.jpg"))
        raw.execute("INSERT INTO thumbnails (image_id, size, data) VALUES (?, 64, x'00')", (i,))
        raw.execute("INSERT INTO embeddings (image_id, model, pretrained, vector) "
                    "VALUES (?, 'm', 'p', x'00')", (i,))
    columns = [tuple(r) for r in raw.execute("PRAGMA table_info(images)")]
    tables = _schema(raw)
    raw.close()

    conn = schema.connect(path)
    assert migrations.schema_version(conn) == migrations.SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == 3
    assert conn.execute("SELECT count(*) FROM thumbnails").fetchone()[0] == 3
    assert conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 3
    # (migration 9 appends images' media columns; 8 and 9 add tables and indexes, nothing else)
    assert [tuple(r) for r in conn.execute("PRAGMA table_info(images)")][:len(columns)] == columns
    later = ("metadata", "shot_identifiers", "images_stem", "images_shot")
    assert [t for t in _schema(conn) if not t[1].startswith(later)] == tables
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.execute("DELETE FROM thumbnails WHERE image_id = 3")
    conn.execute("DELETE FROM embeddings WHERE image_id = 3")
    conn.execute("DELETE FROM images WHERE id = 3")
    assert discovery.record_file(conn, "/p/new.jpg", 1, 1.0, "new", REUSE).id == 4
    # foreign keys hold again after the migration: a thumbnail of no photo is refused
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO thumbnails (image_id, size) VALUES (999, 64)")


def test_migration_8_puts_every_processed_live_photo_in_the_metadata_backfill(
        tmp_path: Path) -> None:
    """A library made before metadata existed: its processed, live photos are due for a
    metadata-only read; pending ones get theirs from their thumbnail task, deleted ones none."""
    path = tmp_path / "v7.db"
    raw = sqlite3.connect(path, isolation_level=None)
    for script in migrations.MIGRATIONS[:7]:
        for statement in (s.strip() for s in script.split(";") if s.strip()):
            raw.execute(statement)
    raw.execute("PRAGMA user_version = 7")
    for i, status, deleted in ((1, "done", None), (2, "failed", None), (3, "pending", None),
                               (4, "done", "2026-01-01T00:00:00.000Z")):
        raw.execute("INSERT INTO images (id, path, sha256, discovered_at, thumbnail_status, "
                    "deleted_at) VALUES (?, ?, ?, 'now', ?, ?)",
                    (i, f"/p/{i}.jpg", f"h{i}", status, deleted))
    raw.close()
    conn = schema.connect(path)
    assert [tuple(r) for r in conn.execute(
        "SELECT image_id, sha256, reason, queued_at FROM metadata_due ORDER BY image_id")] == [
        (1, "h1", "backfill", None), (2, "h2", "backfill", None)]
    assert conn.execute("SELECT count(*) FROM metadata").fetchone()[0] == 0


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    conn.execute(f"PRAGMA user_version = {migrations.SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        schema.connect(tmp_path / "a.db")


def test_status_values_are_constrained(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    rec = discovery.record_file(conn, "/p/a.jpg", 1, 1.0, "aa", REUSE)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE images SET thumbnail_status = 'bogus' WHERE id = ?", (rec.id,))


def test_record_new_unchanged_changed(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    a = discovery.record_file(conn, "/p/a.jpg", 10, 1.0, "h1", REUSE)
    assert a.action == "new"
    assert discovery.record_file(conn, "/p/a.jpg", 10, 2.0, "h1", REUSE) == discovery.Recorded(
        a.id, "unchanged")
    conn.execute("UPDATE images SET thumbnail_status='done', thumbnail_attempts=2 WHERE id=?",
                 (a.id,))
    changed = discovery.record_file(conn, "/p/a.jpg", 11, 3.0, "h2", REUSE)
    assert changed == discovery.Recorded(a.id, "changed")
    row = conn.execute("SELECT * FROM images WHERE id = ?", (a.id,)).fetchone()
    assert (row["sha256"], row["thumbnail_status"], row["thumbnail_attempts"]) == ("h2",
                                                                                  "pending", 0)


def test_deleted_then_same_content_elsewhere_is_a_move(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    a = discovery.record_file(conn, "/p/a.jpg", 10, 1.0, "h1", REUSE)
    assert discovery.mark_deleted(conn, ["/p/a.jpg"]) == 1
    moved = discovery.record_file(conn, "/p/sub/b.jpg", 10, 1.0, "h1", REUSE)
    assert moved == discovery.Recorded(a.id, "moved")
    row = conn.execute("SELECT path, deleted_at FROM images WHERE id = ?", (a.id,)).fetchone()
    assert tuple(row) == ("/p/sub/b.jpg", None)


def test_identical_content_reuses_embedding_and_thumbnails(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    a = discovery.record_file(conn, "/p/a.jpg", 10, 1.0, "h1", REUSE)
    thumbs = [outcomes.ThumbRow(64, 64, 48, "webp", b"x"),
              outcomes.ThumbRow(256, 256, 192, "webp", b"y")]
    assert outcomes.save_thumbnails(conn, a.id, "h1", 640, 480, "JPEG", thumbs)
    saved = outcomes.save_vectors(conn, [outcomes.Vectors(
        "m", "p", 2, None, [outcomes.EmbeddingRow(a.id, "h1", b"12345678")])],
        configured=("m", "p"))
    assert saved.saved == 1
    b = discovery.record_file(conn, "/p/copy.jpg", 10, 1.0, "h1", REUSE)
    assert b.action == "new" and b.id != a.id
    row = conn.execute("SELECT * FROM images WHERE id = ?", (b.id,)).fetchone()
    assert (row["thumbnail_status"], row["embedding_status"]) == ("done", "done")
    assert (row["width"], row["height"], row["format"]) == (640, 480, "JPEG")
    assert conn.execute("SELECT vector FROM embeddings WHERE image_id = ?",
                        (b.id,)).fetchone()[0] == b"12345678"
    assert conn.execute("SELECT count(*) FROM thumbnails WHERE image_id = ?",
                        (b.id,)).fetchone()[0] == 2
    # Another model's embedding is not reused.
    other = discovery.Reuse("other", "p", (64, 256), "webp")
    c = discovery.record_file(conn, "/p/copy2.jpg", 10, 1.0, "h1", other)
    assert conn.execute("SELECT embedding_status FROM images WHERE id = ?",
                        (c.id,)).fetchone()[0] == "pending"


def test_moves_keep_the_row(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    a = discovery.record_file(conn, "/p/d/a.jpg", 10, 1.0, "h1", REUSE)
    b = discovery.record_file(conn, "/p/d/e/b.jpg", 10, 1.0, "h2", REUSE)
    c = discovery.record_file(conn, "/p/dd/c.jpg", 10, 1.0, "h3", REUSE)
    assert discovery.move_path(conn, "/p/d/a.jpg", "/p/d/a2.jpg") == a.id
    assert discovery.move_path(conn, "/p/nothing.jpg", "/p/x.jpg") is None
    assert discovery.move_folder(conn, Path("/p/d"), Path("/p/z")) == 2
    paths = dict(conn.execute("SELECT id, path FROM images").fetchall())
    assert paths == {a.id: "/p/z/a2.jpg", b.id: "/p/z/e/b.jpg", c.id: "/p/dd/c.jpg"}
    # Moving onto an existing file replaces that file's row: retired, its id never reused.
    assert discovery.move_path(conn, "/p/z/a2.jpg", "/p/dd/c.jpg") == a.id
    assert dict(conn.execute("SELECT id, path FROM images").fetchall()) == {
        a.id: "/p/dd/c.jpg", b.id: "/p/z/e/b.jpg", c.id: f"retired:{c.id}:/p/dd/c.jpg"}
    assert discovery.mark_folder_deleted(conn, Path("/p/z")) == 1


def test_outbox_and_task_claims(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    a = discovery.record_file(conn, "/p/a.jpg", 10, 1.0, "h1", REUSE)
    assert sending.due_for_dispatch(conn, "thumbnail", resend_before=None) == [(a.id, "h1")]
    sending.mark_queued(conn, "thumbnail", [a.id])
    assert sending.due_for_dispatch(conn, "thumbnail", resend_before=None) == []
    assert sending.due_for_dispatch(conn, "thumbnail",
                                    resend_before=schema.iso_ago(-60)) == [(a.id, "h1")]
    assert sending.due_for_dispatch(conn, "thumbnail", resend_before=schema.iso_ago(60)) == []
    # A stale message (other content) claims nothing; the right one does, as often as it comes
    # (attempts count worker deaths, written by the watcher: tests/unit/test_db_workers.py).
    assert outcomes.begin_task(conn, "thumbnail", a.id, "old") is None
    for _ in range(5):
        assert outcomes.begin_task(conn, "thumbnail", a.id, "h1") == "/p/a.jpg"
    assert outcomes.died_while_processing(conn, "thumbnail", [(a.id, "h1")] * 2, 2)[-1].failed
    assert outcomes.begin_task(conn, "thumbnail", a.id, "h1") is None
    row = conn.execute("SELECT thumbnail_status, thumbnail_error FROM images").fetchone()
    assert row[0] == "failed" and "the worker died 2 times" in row[1]
    assert admin.requeue(conn, failed=False) == {"thumbnail": 0, "embedding": 1}
    assert admin.requeue(conn, failed=True)["thumbnail"] == 1
    assert outcomes.begin_task(conn, "thumbnail", a.id, "h1") == "/p/a.jpg"


def test_results_for_changed_content_are_dropped(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    a = discovery.record_file(conn, "/p/a.jpg", 10, 1.0, "h1", REUSE)
    discovery.record_file(conn, "/p/a.jpg", 12, 2.0, "h2", REUSE)
    assert not outcomes.save_thumbnails(conn, a.id, "h1", 1, 1, "PNG",
                                        [outcomes.ThumbRow(64, 1, 1, "webp", b"x")])
    assert outcomes.save_vectors(conn, [outcomes.Vectors(
        "m", "p", 2, None, [outcomes.EmbeddingRow(a.id, "h1", b"v" * 8)])],
        configured=("m", "p")).saved == 0
    assert not outcomes.fail(conn, "embedding", a.id, "h1", "nope")
    assert conn.execute("SELECT count(*) FROM thumbnails").fetchone()[0] == 0
    counts = browse.status_counts(conn)
    assert counts["thumbnail"] == {"pending": 1, "done": 0, "failed": 0}


def test_unreadable_file_gets_a_failed_row_and_is_taken_once_readable(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "a.db")
    image_id = discovery.record_unreadable(conn, "/p/secret.jpg", "unreadable: Permission denied")
    row = conn.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
    assert (row["thumbnail_status"], row["embedding_status"]) == ("failed", "failed")
    assert row["thumbnail_error"] == row["embedding_error"] == "unreadable: Permission denied"
    assert (row["sha256"], row["size"], row["mtime"]) == (None, None, None)  # the scan retries
    assert discovery.record_unreadable(conn, "/p/secret.jpg", "unreadable: again") == image_id
    # `retry --failed` cannot send a row without a hash: it leaves it failed, not stuck pending.
    assert admin.requeue(conn, failed=True) == {"thumbnail": 0, "embedding": 0}
    # Readable again: recorded as changed, pending, same row.
    rec = discovery.record_file(conn, "/p/secret.jpg", 10, 1.0, "ab" * 32, REUSE)
    assert (rec.id, rec.action) == (image_id, "changed")
    assert sending.due_for_dispatch(conn, "thumbnail", resend_before=None) == [
        (image_id, "ab" * 32)]
