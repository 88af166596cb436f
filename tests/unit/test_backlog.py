"""Which photos a model or thumbnail settings change queues, how the backlog is fed behind new
photos (a real embedded broker, no worker), and which stored model answers a search meanwhile."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.helpers import put_vectors, write_config
from watcherd import config
from watcherd.broker.app import make_app, queue_depths, queue_names
from watcherd.dispatch.current_model import CurrentModel
from watcherd.dispatch.outbox import Outbox
from watcherd.search.model_choice import best_covering
from watcherd.store import admin, backlog, discovery, outcomes, schema, sending
from watcherd.store.vectors import ModelKey, StoredModel

A, B = ("local-dir", "sha256:aaaa"), ("local-dir", "sha256:bbbb")
REUSE = discovery.Reuse("x", "", [64], "webp")


def library(tmp_path: Path, n: int) -> tuple[sqlite3.Connection, list[int]]:
    conn = schema.connect(tmp_path / "w.db")
    ids = [discovery.record_file(conn, f"/p/{i}.jpg", 1, 1.0, f"h{i}", REUSE).id for i in range(n)]
    return conn, ids


def statuses(conn: sqlite3.Connection) -> dict[int, tuple[str, str | None]]:
    return {r[0]: (r[1], r[2]) for r in conn.execute(
        "SELECT id, embedding_status, embedding_queued_at FROM images ORDER BY id")}


def test_a_model_change_queues_exactly_the_photos_without_its_vector(tmp_path: Path) -> None:
    conn, (done_a, done_both, failed, new, sent) = library(tmp_path, 5)
    put_vectors(conn, *A, 2, [outcomes.EmbeddingRow(done_a, "h0", b"v" * 8),
                                     outcomes.EmbeddingRow(done_both, "h1", b"v" * 8)])
    put_vectors(conn, *B, 2, [outcomes.EmbeddingRow(done_both, "h1", b"w" * 8)])
    outcomes.fail(conn, "embedding", failed, "h2", "corrupt")
    sending.mark_queued(conn, "embedding", [sent])  # in a queue, with A's key
    unreadable = discovery.record_unreadable(conn, "/p/locked.jpg", "permission denied")
    assert backlog.sync_embeddings(conn, *A) == 2  # first sync: failed + sent, new stays new
    assert backlog.sync_embeddings(conn, *A) is None  # nothing changed since
    assert backlog.sync_embeddings(conn, *B) == 3  # A's photo joins failed + sent
    got = statuses(conn)
    assert got[done_both] == ("done", None)  # B covers it already
    for i in (done_a, failed, sent):
        assert got[i] == ("pending", schema.BACKLOG), i
    assert got[new] == ("pending", None), "a photo never sent stays new: it goes first"
    assert got[unreadable][0] == "failed", "unreadable files wait for the scan, not the model"
    admin.requeue(conn, failed=True)  # `watcherd retry` leaves the backlog to be fed in slices
    assert statuses(conn)[done_a] == ("pending", schema.BACKLOG)
    # back to A: what A covers is done at once, nothing recomputed
    backlog.sync_embeddings(conn, *A)
    assert statuses(conn)[done_a] == ("done", None)
    # A's vectors stayed through it all
    assert conn.execute("SELECT count(*) FROM embeddings WHERE pretrained = ?",
                        (A[1],)).fetchone()[0] == 2


def test_thumbnail_settings_changes(tmp_path: Path) -> None:
    conn, ids = library(tmp_path, 3)
    s64 = backlog.ThumbSettings((64,), "webp", 80)
    assert backlog.sync_thumbnails(conn, s64) is None  # no thumbnails yet: nothing to backfill
    for i in ids[:2]:
        outcomes.save_thumbnails(conn, i, f"h{i - 1}", 10, 10, "JPEG",
                           [outcomes.ThumbRow(64, 10, 10, "webp", b"x" * 100)])
    added = backlog.sync_thumbnails(conn, backlog.ThumbSettings((64, 128), "webp", 80))
    assert added == (2, "sizes added: 128")  # the third photo is still pending: it gets both
    assert backlog.due_backlog(conn, "thumbnail", 10) == [(ids[1], "h1"), (ids[0], "h0")]
    e = backlog.estimate(conn, "thumbnail", 2, "sizes added", new_sizes=(128,))
    assert e.photos == 2 and e.bytes == 800  # 100 bytes at 64 px -> 400 at 128 px, x 2
    # a size removed: nothing to do (its thumbnails are kept until `purge --thumbnail-size`)
    assert backlog.sync_thumbnails(conn, backlog.ThumbSettings((128,), "webp", 80)) is None
    outcomes.save_thumbnails(conn, ids[0], "h0", 10, 10, "JPEG",
                       [outcomes.ThumbRow(128, 10, 10, "webp", b"y" * 400)])
    assert {r[0] for r in conn.execute("SELECT size FROM thumbnails WHERE image_id = ?",
                                       (ids[0],))} == {64, 128}
    # a quality change: every photo with thumbnails again
    changed = backlog.sync_thumbnails(conn, backlog.ThumbSettings((128,), "webp", 60))
    assert changed is not None and changed[0] == 1 and "quality" in changed[1]


def test_the_backlog_is_fed_in_slices_behind_new_photos(tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path, embeddings={"batch_size": 8}))
    conn = schema.connect(cfg.database.path)
    reuse = discovery.Reuse(*A, [64], "webp")
    old = [discovery.record_file(conn, f"/p/{i}.jpg", 1, 1.0, f"h{i}", reuse).id
           for i in range(400)]
    put_vectors(conn, *A, 2, [outcomes.EmbeddingRow(i, f"h{n}", b"v" * 8)
                                           for n, i in enumerate(old)])
    assert backlog.sync_embeddings(conn, *B) == 400
    app = make_app(cfg)
    outbox = Outbox(app, conn, cfg, model=CurrentModel(B))
    queue = queue_names(cfg)["embedding"]
    new = discovery.record_file(conn, "/p/new.jpg", 1, 1.0, "new", reuse).id
    assert outbox.send_due()["embedding"] == 1, "the new photo is sent at once"
    target = outbox.backlog_target("embedding")
    assert outbox.feed_backlog()["embedding"] == target - 1  # topped up to the target
    assert queue_depths(app, cfg)[queue] == target
    assert outbox.feed_backlog()["embedding"] == 0  # the queue is not short yet
    # however old "sent" is, rows still in the backlog are never taken for lost messages
    due = sending.due_for_dispatch(conn, "embedding", resend_before="9999", limit=1000)
    assert len(due) == target
    left = backlog.backlog_size(conn, "embedding")
    assert left == 400 - (target - 1)
    # the slice went out newest first, and the new photo is not in the backlog
    sent = {r[0] for r in conn.execute("SELECT id FROM images WHERE embedding_queued_at != ?",
                                       (schema.BACKLOG,))}
    assert new in sent and max(old) in sent and min(old) not in sent


def test_search_uses_the_model_that_covers_the_library_best() -> None:
    a, b = ModelKey(*A), ModelKey(*B)
    during = best_covering([StoredModel(a, 1000), StoredModel(b, 10)], b)
    assert during is not None and during.key == a and during.note
    assert "covers 10 photos" in during.note
    after = best_covering([StoredModel(b, 1000), StoredModel(a, 1000)], b)
    assert after is not None and (after.key, after.note) == (b, None)
    assert best_covering([StoredModel(a, 5)], b) is not None  # nothing of b yet: a answers
    assert best_covering([], b) is None


