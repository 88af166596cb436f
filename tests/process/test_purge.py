"""`watcherd purge` as a real command."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import cli, query, write_config
from watcherd.store import discovery, schema

REUSE = discovery.Reuse("m", "p", (64,), "webp")



def library(db_path: Path) -> dict[str, int]:
    """Six rows: live, deleted 40 days ago (two, one with BLOBs), deleted just now, a retired
    one from 40 days ago, and the newest row (the highest id), deleted 40 days ago with its
    BLOBs."""
    conn = schema.connect(db_path)
    ids = {}
    for name in ("live", "old", "old_blobs", "recent", "retired"):
        ids[name] = discovery.record_file(conn, f"/p/{name}.jpg", 1, 1.0, name, REUSE).id
    discovery.record_file(conn, "/p/x.jpg", 1, 1.0, "x", REUSE)  # then retired by a rename onto it
    discovery.move_path(conn, "/p/x.jpg", "/p/retired.jpg")
    ids["newest"] = discovery.record_file(conn, "/p/newest.jpg", 1, 1.0, "newest", REUSE).id
    for name in ("old_blobs", "newest"):
        conn.execute("INSERT INTO thumbnails (image_id, size, data) "
                     "VALUES (?, 64, zeroblob(5000))", (ids[name],))
        conn.execute("INSERT INTO embeddings (image_id, model, pretrained, dim, vector) "
                     "VALUES (?, 'm', 'p', 512, zeroblob(2048))", (ids[name],))
    discovery.mark_deleted(conn, [f"/p/{n}.jpg" for n in ("old", "old_blobs", "recent", "newest")])
    conn.execute("UPDATE images SET deleted_at = ? WHERE path NOT LIKE '/p/recent.jpg' AND "
                 "deleted_at IS NOT NULL", (schema.iso_ago(40 * 86400),))
    assert ids["newest"] == conn.execute("SELECT max(id) FROM images").fetchone()[0]
    conn.close()
    return ids



def names(db_path: Path) -> set[str]:
    return {r["path"].removeprefix("/p/").removesuffix(".jpg")
            for r in query(db_path, "SELECT path FROM images")}



def test_purge_removes_old_deleted_rows_and_their_blobs(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    db_path = tmp_path / "watcherd.db"
    ids = library(db_path)
    before = names(db_path)
    r = cli(config, "purge", "--older-than", "30")
    assert r.returncode == 0, r.stderr
    assert "removed 4 photos deleted more than 30 days ago, with 2 thumbnails and 2 embeddings"\
        in r.stdout, r.stdout
    retired = next(n for n in before if n.startswith("retired:"))
    # the newest row goes too: its id is never handed out again
    assert before - names(db_path) == {"old", "old_blobs", retired, "newest"}
    assert names(db_path) >= {"live", "recent", "retired"}
    assert query(db_path, "SELECT count(*) AS n FROM thumbnails")[0]["n"] == 0
    assert query(db_path, "SELECT count(*) AS n FROM embeddings")[0]["n"] == 0
    newest = max(ids.values())
    conn = schema.connect(db_path)
    assert discovery.record_file(conn, "/p/after.jpg", 1, 1.0, "after", REUSE).id == newest + 1
    conn.close()
    again = cli(config, "purge", "--older-than", "0", "--vacuum")
    assert again.returncode == 0 and "removed 1 photos" in again.stdout  # 'recent'
    assert "vacuumed" in again.stdout
    bad = cli(config, "purge", "--older-than", "-1")
    assert bad.returncode == 2 and "older-than" in bad.stderr
