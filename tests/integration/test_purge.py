"""The watcher's own purge (keep_deleted_days), in a real `watcherd watch` daemon."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import Daemon, query, wait_for, write_config
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



def test_the_watcher_purges_by_keep_deleted_days(tmp_path: Path,
                                                  daemons: list[Daemon]) -> None:
    config = write_config(tmp_path, database={"keep_deleted_days": 30})
    db_path = tmp_path / "watcherd.db"
    library(db_path)
    daemon = Daemon(config, "watch").start()
    daemons.append(daemon)
    wait_for(lambda: "purged deleted photos" in daemon.log(), 30, "the purge")
    assert "old" not in names(db_path) and "recent" in names(db_path)
    assert daemon.stop() == 0
