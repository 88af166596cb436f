"""A queue whose depth cannot be read, on each broker (the spool, Redis, RabbitMQ): the error
names the queue (what the outbox does then is tested in-process in
tests/unit/test_queue_depths.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kombu import Connection

from tests.helpers import require_broker, write_config
from tests.libraries import spool_folder_is_a_file as _spool_folder_is_a_file
from watcherd import config
from watcherd.broker.app import (
    TASKS,
    QueueDepthError,
    make_app,
    queue_depths,
    queue_names,
)
from watcherd.config import Config


def _send(cfg: Config, n: int) -> None:
    app = make_app(cfg)
    queue = queue_names(cfg)["thumbnail"]
    with app.producer_or_acquire() as producer:
        for i in range(n):
            app.send_task(TASKS["thumbnail"], args=[i, "0" * 64], queue=queue, routing_key=queue,
                          producer=producer)


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
