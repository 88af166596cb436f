"""Small libraries the tests build, shared by the folders that test the same code at different
depths (in-process in ``unit/``, through the command in ``process/``, in a daemon in
``integration/``): a scanned tree, a library with deleted rows to purge, a spool queue whose
folder cannot be listed."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import query
from watcherd.config import Config
from watcherd.store import discovery, schema
from watcherd.watch import scan
from watcherd.watch.rules import Rules

EXTS = ("jpg", "png")
REUSE = discovery.Reuse("m", "p", (64,), "webp")


def scan_rules(root: Path) -> Rules:
    return Rules.of([root], EXTS)


def record_all(conn: sqlite3.Connection, root: Path) -> None:
    """Record every file a scan of ``root`` takes, as the watcher would."""
    for info in scan.reconcile(conn, root, scan_rules(root)).to_take:
        discovery.record_file(conn, info.path, info.size, info.mtime, info.path, REUSE)


def deleted_names(conn: sqlite3.Connection) -> set[str]:
    return {Path(r[0]).name for r in conn.execute(
        "SELECT path FROM images WHERE deleted_at IS NOT NULL")}


def make_tree(root: Path) -> None:
    """Two photos, a sub-folder's photo, and what a scan must leave out (text, hidden, partial)."""
    (root / "sub").mkdir(parents=True)
    for rel in ("a.jpg", "B.PNG", "notes.txt", ".hidden.jpg", "x.jpg.part", "sub/c.jpg"):
        (root / rel).write_bytes(b"x" * 10)


def purge_library(db_path: Path) -> dict[str, int]:
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


def purge_names(db_path: Path) -> set[str]:
    return {r["path"].removeprefix("/p/").removesuffix(".jpg")
            for r in query(db_path, "SELECT path FROM images")}


@contextlib.contextmanager
def spool_folder_is_a_file(cfg: Config) -> Iterator[None]:
    """The thumbnails queue's spool folder replaced by a plain file: listing it fails
    (ENOTDIR)."""
    from watcherd.broker.app import queue_names

    folder = cfg.spool_dir / "queues" / queue_names(cfg)["thumbnail"]
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("not a folder")
    try:
        yield
    finally:
        folder.unlink()
