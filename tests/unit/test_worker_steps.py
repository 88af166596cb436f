"""The workers' steps driven in-process: claim, render/prepare, encode, save, on a real SQLite file
with the tiny open_clip model; busy markers go through a real embedded (spool) broker and are
read back with the watcher's own Listener. No Celery worker here (tests/integration has them)."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from celery.exceptions import Reject

from tests.helpers import jpeg, wait_for
from watcherd import config
from watcherd.broker.app import THUMBNAIL_TASK, make_app
from watcherd.broker.channel import Listener
from watcherd.config import Config
from watcherd.fleet.busy import Markers
from watcherd.fleet.messages import Busy, parse
from watcherd.store import discovery, schema
from watcherd.worker import tasks
from watcherd.worker.database import database
from watcherd.worker.embedding import EmbedderHolder, embed_batch
from watcherd.worker.thumbnail import thumbnail_one, timed_out

REUSE = discovery.Reuse("m", "p", (32,), "webp")


def make_cfg(tmp_path: Path, model: str, **database: Any) -> Config:
    return config.from_dict({
        "watch": {"paths": [str(tmp_path)]},
        "database": {"path": str(tmp_path / "w.db"), **database},
        "broker": {"url": "", "queue_prefix": "t-"},
        "thumbnails": {"sizes": [32]},
        "embeddings": {"model": model, "pretrained": "", "batch_size": 8},
    }, check_paths=False)


def add_photo(conn: Any, folder: Path, name: str, data: bytes) -> tuple[int, str]:
    path = folder / name
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    return discovery.record_file(conn, str(path), len(data), 1.0, sha, REUSE).id, sha


@pytest.fixture(scope="module")
def holder(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> EmbedderHolder:
    h = EmbedderHolder()
    h.load(make_cfg(tmp_path_factory.mktemp("h"), tiny_model))
    assert h.embedder is not None, h.error
    return h


class Heard:
    """The fleet events the watcher would hear, through a real Listener on the spool."""

    def __init__(self, cfg: Config) -> None:
        self.events: list[Any] = []
        self.listener = Listener(cfg, lambda body, _at: self.events.append(parse(body)))
        self.listener.start()
        wait_for(lambda: self.listener.connected_since is not None, 10, "the listener")

    def busy(self, count: int) -> list[Busy]:
        wait_for(lambda: len([e for e in self.events if isinstance(e, Busy)]) >= count, 10,
                 f"{count} busy markers")
        return [e for e in self.events if isinstance(e, Busy)]


@pytest.fixture
def setup(tmp_path: Path, tiny_model: str) -> Iterator[tuple[Config, Any, Markers, Heard]]:
    cfg = make_cfg(tmp_path, tiny_model)
    conn = schema.connect(cfg.database.path)
    heard = Heard(cfg)
    markers = Markers(cfg, "embeddings@test:1")
    yield cfg, conn, markers, heard
    heard.listener.stop()
    heard.listener.join(5)
    markers.close()


def test_embed_batch_marks_each_photo_while_it_is_decoded_then_the_batch(
        setup: tuple[Config, Any, Markers, Heard], holder: EmbedderHolder,
        tmp_path: Path) -> None:
    cfg, conn, markers, heard = setup
    items = [add_photo(conn, tmp_path, f"{i}.jpg", jpeg(i, 64)) for i in range(3)]
    result = embed_batch(cfg, conn, holder, markers, items)
    assert (result.saved, result.failed, result.skipped) == (3, 0, 0)
    steps = [b.items for b in heard.busy(5)]
    assert steps == [(items[0],), (items[1],), (items[2],), tuple(items), ()]
    assert {b.kind for b in heard.busy(5)} == {"embedding"}
    statuses = {r[0] for r in conn.execute("SELECT embedding_status FROM images")}
    assert statuses == {"done"}
    precisions = {r[0] for r in conn.execute("SELECT precision FROM embeddings")}
    assert precisions == {holder.embedder.precision} != {None}  # type: ignore[union-attr]


def test_the_task_encodes_batch_size_at_a_time_whatever_celery_batches_flushed(
        setup: tuple[Config, Any, Markers, Heard], holder: EmbedderHolder,
        tmp_path: Path) -> None:
    """celery-batches hands the task all it buffered (up to the prefetch, 2 x batch_size): the
    photos are still encoded [embeddings] batch_size at a time, each chunk its own step, so a
    batch that kills the worker blames no more photos than that."""
    from celery_batches import SimpleRequest

    from watcherd.broker.app import EMBED_TASK

    cfg, conn, markers, heard = setup
    items = [add_photo(conn, tmp_path, f"{i}.jpg", jpeg(i, 64)) for i in range(16)]
    app = make_app(cfg)
    tasks.register(app, cfg, holder, markers)
    assert holder.key is not None
    requests = [SimpleRequest(f"r{n}", EMBED_TASK, (*item, *holder.key), {}, {}, "test", True,
                              None, None, {}) for n, item in enumerate(items)]
    assert app.tasks[EMBED_TASK].run(requests) == []
    # every marker sent: one per photo read, then each chunk's busy and idle (waiting for
    # fewer raced the listener: the second chunk's marker could still be on its way)
    markers_sent = heard.busy(16 + 2 * 2)
    assert len(markers_sent) == 16 + 2 * 2
    encoded = [b.items for b in markers_sent if len(b.items) > 1]
    assert [len(e) for e in encoded] == [8, 8]
    assert {r[0] for r in conn.execute("SELECT embedding_status FROM images")} == {"done"}


def test_a_bad_photo_fails_alone_and_a_stale_message_is_skipped_unmarked(
        setup: tuple[Config, Any, Markers, Heard], holder: EmbedderHolder,
        tmp_path: Path) -> None:
    cfg, conn, markers, heard = setup
    good = add_photo(conn, tmp_path, "good.jpg", jpeg(1, 64))
    bad = add_photo(conn, tmp_path, "bad.jpg", b"\xff\xd8\xff" + b"garbage" * 50)
    stale = (good[0], "0" * 64)
    result = embed_batch(cfg, conn, holder, markers, [stale, bad, good])
    assert (result.saved, result.failed, result.skipped) == (1, 1, 1)
    rows = {r["path"].rsplit("/", 1)[1]: r for r in conn.execute("SELECT * FROM images")}
    assert rows["good.jpg"]["embedding_status"] == "done"
    assert rows["bad.jpg"]["embedding_status"] == "failed"
    assert "not an image" in rows["bad.jpg"]["embedding_error"]
    # Marked: bad while decoded, good while decoded, the batch (good alone), done. The stale
    # message was never marked (nothing to do costs no publish).
    assert [b.items for b in heard.busy(4)] == [(bad,), (good,), (good,), ()]


def test_two_messages_for_one_photo_in_a_batch_compute_it_once(
        setup: tuple[Config, Any, Markers, Heard], holder: EmbedderHolder,
        tmp_path: Path) -> None:
    cfg, conn, markers, heard = setup
    item = add_photo(conn, tmp_path, "a.jpg", jpeg(1, 64))
    result = embed_batch(cfg, conn, holder, markers, [item, item])
    assert (result.saved, result.skipped) == (1, 1)
    assert [b.items for b in heard.busy(3)] == [(item,), (item,), ()]


def test_embed_batch_holds_one_photos_bytes_at_a_time(
        setup: tuple[Config, Any, Markers, Heard], holder: EmbedderHolder,
        tmp_path: Path) -> None:
    """Eight ~1.5 MB files: Python-side peak memory (the file bytes; decoded pixels and tensors
    live outside tracemalloc) stays near one file, not the sum of the batch."""
    cfg, conn, markers, _ = setup
    items = [add_photo(conn, tmp_path, f"big{i}.jpg", jpeg(i, size=1000, quality=100))
             for i in range(8)]
    largest = max((tmp_path / f"big{i}.jpg").stat().st_size for i in range(8))
    total = sum((tmp_path / f"big{i}.jpg").stat().st_size for i in range(8))
    assert total > 6 * largest
    tracemalloc.start()
    try:
        result = embed_batch(cfg, conn, holder, markers, items)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.saved == 8
    assert peak < 2.5 * largest, (peak, largest, total)


def test_model_that_failed_to_load_fails_the_pending_photos_with_the_reason(
        setup: tuple[Config, Any, Markers, Heard], tmp_path: Path) -> None:
    cfg, conn, markers, _ = setup
    broken = EmbedderHolder()
    broken.error = "no such model"
    item = add_photo(conn, tmp_path, "a.jpg", jpeg(1, 64))
    assert embed_batch(cfg, conn, broken, markers, [item]).failed == 1
    row = conn.execute("SELECT embedding_status, embedding_error FROM images").fetchone()
    assert tuple(row) == ("failed", "embedding model could not be loaded: no such model")


def test_thumbnail_step_is_marked_busy_while_it_renders(
        setup: tuple[Config, Any, Markers, Heard], tmp_path: Path) -> None:
    cfg, conn, markers, heard = setup
    item = add_photo(conn, tmp_path, "a.jpg", jpeg(1, 64))
    assert thumbnail_one(cfg, conn, markers, *item) == "done"
    assert thumbnail_one(cfg, conn, markers, *item) == "skipped"  # redelivered: a no-op
    assert [(b.kind, b.items) for b in heard.busy(2)] == [("thumbnail", (item,)),
                                                          ("thumbnail", ())]
    assert conn.execute("SELECT count(*) FROM thumbnails").fetchone()[0] == 1


def test_a_database_locked_past_the_busy_timeout_gives_the_task_back_with_a_reason(
        tmp_path: Path, tiny_model: str) -> None:
    """One retry layer: the busy timeout (0.2 s here). Then the task gives its message back
    (Celery's Reject with requeue) within about that time, the row stays pending with no attempt
    counted, and its error says what happened."""
    cfg = make_cfg(tmp_path, tiny_model, busy_timeout_seconds=0.2)
    conn = schema.connect(cfg.database.path)
    item = add_photo(conn, tmp_path, "a.jpg", jpeg(1, 64))
    app = make_app(cfg)
    tasks.register(app, cfg, EmbedderHolder(), Markers(cfg, "thumbnails@test:1"))
    locker = sqlite3.connect(cfg.database.path, isolation_level=None, check_same_thread=False)

    def release() -> None:
        if locker.in_transaction:
            locker.execute("ROLLBACK")

    gave_up: list[float] = []

    def on_log(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        # The task's warning that it gives up: the lock goes now, so the note that follows
        # can be written. Nothing here depends on how long the task takes to reach the database.
        if event["event"] == "database locked; giving the task back to the queue":
            gave_up.append(time.monotonic())
            release()
        raise structlog.DropEvent

    logging = structlog.get_config()
    structlog.configure(processors=[on_log])
    locker.execute("BEGIN IMMEDIATE")
    backstop = threading.Timer(10, release)  # a task that ignores the busy timeout fails below
    backstop.start()
    started = time.monotonic()
    try:
        with pytest.raises(Reject) as raised:
            app.tasks[THUMBNAIL_TASK](*item)
    finally:
        structlog.configure(**logging)
        backstop.cancel()
        release()
    assert raised.value.requeue
    assert len(gave_up) == 1 and gave_up[0] - started < 3, gave_up  # not 30 s, nor retries
    row = conn.execute("SELECT * FROM images WHERE id = ?", (item[0],)).fetchone()
    assert row["thumbnail_status"] == "pending" and row["thumbnail_attempts"] == 0
    assert row["thumbnail_error"].startswith("database locked for 0.2 s")
    # The message comes back and, the lock gone, the task does its work.
    assert app.tasks[THUMBNAIL_TASK](*item) == "done"
    row = conn.execute("SELECT * FROM images WHERE id = ?", (item[0],)).fetchone()
    assert (row["thumbnail_status"], row["thumbnail_error"]) == ("done", None)
    locker.close()
    database(str(cfg.database.path), 0.2).close()


def test_steps_carry_their_time_limits(setup: tuple[Config, Any, Markers, Heard],
                                       holder: EmbedderHolder, tmp_path: Path) -> None:
    """Each embedding step carries [embeddings] step_time_limit_seconds; a thumbnail task's
    marker carries the hard limit's deadline (the watcher judges hangs and timeouts by them)."""
    cfg, conn, markers, heard = setup
    items = [add_photo(conn, tmp_path, f"{i}.jpg", jpeg(i, 64)) for i in range(2)]
    before = time.time()
    embed_batch(cfg, conn, holder, markers, items)
    step = cfg.embeddings.step_time_limit_seconds
    marked = [b for b in heard.busy(4) if b.items]
    assert [b.limit for b in marked] == [step] * 3
    assert all(before + step <= b.deadline <= time.time() + step for b in marked)
    item = add_photo(conn, tmp_path, "t.jpg", jpeg(9, 64))
    assert thumbnail_one(cfg, conn, markers, *item, deadline=before + 300) == "done"
    thumb = [b for b in heard.busy(6) if b.kind == "thumbnail"]
    assert [(b.items, b.limit, b.deadline) for b in thumb] == [
        ((item,), cfg.thumbnails.time_limit_seconds, before + 300), ((), 0.0, 0.0)]


def test_a_remote_prepare_carries_the_hard_limit_from_the_read_on(
        setup: tuple[Config, Any, Markers, Heard], tmp_path: Path) -> None:
    """Preparing a remote embedding runs in the thumbnail pool under its hard limit: the busy
    marker goes up before the read and carries the deadline (a kill past it is a timeout)."""
    from watcherd.dispatch import remote
    from watcherd.media.clipinput import InputSpec
    from watcherd.worker.remote_prepare import prepare_one

    cfg, conn, markers, heard = setup
    item = add_photo(conn, tmp_path, "p.jpg", jpeg(11, 64))
    job = remote.job(("M", "P"), InputSpec(draft=64, resize=64, interpolation="bicubic",
                                           crop=(64, 64)))
    sent: list[int] = []
    deadline = time.time() + 300
    assert prepare_one(cfg, conn, markers, lambda i, _s, _j: sent.append(i), *item, job,
                       deadline=deadline) == "sent"
    assert sent == [item[0]]
    marked = [b for b in heard.busy(2) if b.kind == "embedding"]
    assert [(b.items, b.limit, b.deadline) for b in marked] == [
        ((item,), cfg.thumbnails.time_limit_seconds, deadline), ((), 0.0, 0.0)]


def test_the_soft_time_limit_charges_an_attempt_and_fails_at_max_attempts(
        setup: tuple[Config, Any, Markers, Heard], tmp_path: Path) -> None:
    cfg, conn, _, _ = setup
    image_id, sha = add_photo(conn, tmp_path, "slow.jpg", jpeg(3, 64))
    assert [timed_out(cfg, conn, image_id, sha) for _ in range(3)] == [False, False, True]
    status, error, attempts = conn.execute(
        "SELECT thumbnail_status, thumbnail_error, thumbnail_attempts FROM images WHERE id = ?",
        (image_id,)).fetchone()
    assert (status, attempts) == ("failed", 3)
    assert error == ("timed out after 240 s (3 attempts): a pathological file, or a read stuck "
                     "on its disk?")
    assert timed_out(cfg, conn, image_id, sha) is True  # failed already: nothing to give back


def test_each_app_runs_its_own_tasks(tmp_path: Path, tiny_model: str) -> None:
    """Tasks are closures over one app's config and database. Celery's default (shared tasks)
    hands every app the tasks registered on any earlier one, in no fixed order: the
    locked-database test above once ran another test's task, on another database, unlocked."""
    apps, photos = [], []
    for i in range(4):
        folder = tmp_path / f"app{i}"
        folder.mkdir()
        cfg = make_cfg(folder, tiny_model)
        conn = schema.connect(cfg.database.path)
        photos.append(add_photo(conn, folder, "p.jpg", jpeg(40 + i, 64)))
        app = make_app(cfg)
        tasks.register(app, cfg, EmbedderHolder(), Markers(cfg, f"thumbnails@test:{i}"))
        apps.append((app, cfg))
    # Each app's task finds its own photo, in its own database: "done" (another's: "skipped").
    assert [app.tasks[THUMBNAIL_TASK](*photo) for (app, _), photo in zip(apps, photos,
                                                                            strict=True)] \
        == ["done"] * 4
    for _, cfg in apps:
        database(str(cfg.database.path), cfg.database.busy_timeout_seconds).close()
