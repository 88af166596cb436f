"""A queue depth that cannot be read is unknown, never 0 (issue 7, item 9), on every broker:
``queue_depths`` raises, the outbox does not re-send, ``watcherd status`` says so."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog.testing
from kombu import Connection

from tests.helpers import cli, require_broker, write_config
from watcherd import config
from watcherd.broker.app import (
    TASKS,
    QueueDepthError,
    make_app,
    queue_depths,
    queue_names,
)
from watcherd.config import Config
from watcherd.dispatch.outbox import Outbox
from watcherd.store import discovery, schema


def _send(cfg: Config, n: int) -> None:
    app = make_app(cfg)
    queue = queue_names(cfg)["thumbnail"]
    with app.producer_or_acquire() as producer:
        for i in range(n):
            app.send_task(TASKS["thumbnail"], args=[i, "0" * 64], queue=queue, routing_key=queue,
                          producer=producer)


@contextlib.contextmanager
def _spool_folder_is_a_file(cfg: Config) -> Iterator[None]:
    """The queue's folder replaced by a plain file: listing it fails (ENOTDIR)."""
    folder = cfg.spool_dir / "queues" / queue_names(cfg)["thumbnail"]
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("not a folder")
    try:
        yield
    finally:
        folder.unlink()


@contextlib.contextmanager
def _redis_key_of_the_wrong_type(cfg: Config) -> Iterator[None]:
    """The queue's key holds a string: LLEN fails with WRONGTYPE."""
    import redis

    client = redis.Redis.from_url(cfg.broker.url)
    queue = queue_names(cfg)["thumbnail"]
    client.set(queue, "not a list")
    try:
        yield
    finally:
        client.delete(queue)


@contextlib.contextmanager
def _rabbitmq_queue_locked(cfg: Config) -> Iterator[None]:
    """Another connection holds the queue exclusively: 405 RESOURCE_LOCKED."""
    with Connection(cfg.broker.url) as holder:
        holder.default_channel.queue_declare(queue=queue_names(cfg)["thumbnail"], exclusive=True)
        yield


BREAK: dict[str, Callable[[Config], contextlib.AbstractContextManager[None]]] = {
    "embedded": _spool_folder_is_a_file,
    "redis": _redis_key_of_the_wrong_type,
    "amqp": _rabbitmq_queue_locked,
}


def _cleanup(cfg: Config) -> None:
    if cfg.broker.embedded:
        return
    with make_app(cfg).connection_for_write() as conn:
        for queue in queue_names(cfg).values():
            with contextlib.suppress(Exception):
                conn.channel().queue_delete(queue)


@pytest.mark.parametrize("broker", ["embedded", "redis", "amqp"])
def test_a_depth_that_cannot_be_read_raises(tmp_path: Path, broker: str) -> None:
    cfg = config.load(write_config(tmp_path, broker_url=require_broker(broker)))
    names = queue_names(cfg)
    app = make_app(cfg)
    try:
        # Never declared (RabbitMQ: 404 NOT_FOUND; Redis: no list): nothing waiting.
        assert queue_depths(app, cfg) == {names["thumbnail"]: 0, names["embedding"]: 0}
        _send(cfg, 2)
        assert queue_depths(app, cfg)[names["thumbnail"]] == 2
        _cleanup(cfg)  # RabbitMQ: an exclusive declare needs the queue gone
        with BREAK[broker](cfg), pytest.raises(QueueDepthError) as info:
            queue_depths(app, cfg)
        assert names["thumbnail"] in str(info.value)
    finally:
        _cleanup(cfg)


def _stale_row(cfg: Config) -> int:
    """A pending row whose thumbnail task was sent long ago: due for a re-send if (and only if)
    its queue is empty."""
    conn = schema.connect(cfg.database.path)
    reuse = discovery.Reuse(model="m", pretrained="p", thumbnail_sizes=[64],
                            thumbnail_format="webp")
    image_id = discovery.record_file(conn, str(tmp_photo(cfg)), 1, 1.0, "a" * 64, reuse).id
    conn.execute("UPDATE images SET thumbnail_queued_at = '2000-01-01T00:00:00.000Z', "
                 "embedding_queued_at = '2999-01-01T00:00:00.000Z' WHERE id = ?", [image_id])
    conn.commit()
    return image_id


def tmp_photo(cfg: Config) -> Path:
    return cfg.watch.paths[0] / "a.jpg"


def _queued_at(cfg: Config, image_id: int) -> str:
    conn = schema.connect(cfg.database.path)
    return str(conn.execute("SELECT thumbnail_queued_at FROM images WHERE id = ?",
                            [image_id]).fetchone()[0])


def test_the_outbox_does_not_resend_to_a_queue_of_unknown_depth(tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path, broker={"resend_after_seconds": 1}))
    image_id = _stale_row(cfg)
    outbox = Outbox(make_app(cfg), schema.connect(cfg.database.path), cfg)
    queue = queue_names(cfg)["thumbnail"]
    with structlog.testing.capture_logs() as events, _spool_folder_is_a_file(cfg):
        sent = outbox.send_due(resend_stale=True)
        again = outbox.send_due(resend_stale=True)
    assert sent == again == {"thumbnail": 0, "embedding": 0}
    assert outbox.broker_ok  # no send was even tried
    assert _queued_at(cfg, image_id).startswith("2000-")
    warnings = [e for e in events if e["event"].startswith("queue depth unknown")]
    assert len(warnings) == 1, events  # once, not every tick
    assert warnings[0]["queue"] == queue and "NotADirectoryError" in warnings[0]["error"]
    # The queue readable again (and empty): the stale row is sent again.
    assert outbox.send_due(resend_stale=True) == {"thumbnail": 1, "embedding": 0}
    assert not _queued_at(cfg, image_id).startswith("2000-")


def test_status_shows_an_unknown_depth(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    cfg = config.load(path)
    queue = queue_names(cfg)["thumbnail"]
    with _spool_folder_is_a_file(cfg):
        text = cli(path, "status")
        report = json.loads(cli(path, "status", "--json").stdout)
    assert text.returncode == 0, text.stderr
    assert "queue depths unknown" in text.stdout and queue in text.stdout, text.stdout
    assert "waiting in" not in text.stdout
    assert report["queues"] is None and queue in report["broker_error"]
