"""The app that Celery's own command line loads: ``celery -A watcherd inspect ping``.

``watcherd.celery`` (and ``watcherd.app``) is built on first use from the config file named by
``$WATCHERD_CONFIG``, never on ``import watcherd``: the same broker, queue names (after
``[broker] queue_prefix``), control and event exchanges as watcherd's own processes, so that
``inspect``, ``control``, ``purge``, ``events`` and Flower reach its workers. It registers no
tasks: the workers keep their own command lines (``watcherd worker …``).

When it cannot be built (no ``$WATCHERD_CONFIG``, a bad config, the embedded broker), the error
is an ``AttributeError`` whose message says why and what to do. That is the one kind of error
Celery's command line prints as a message rather than a traceback ("Unable to load celery
application." and the message, exit status 2).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from watcherd.config import ENV_VAR, ConfigError, load

if TYPE_CHECKING:
    from celery import Celery

SPOOL = (
    "watcherd's embedded broker (an empty [broker] url in {file}) has no remote control and "
    "no events, so Celery's tools (inspect, control, purge, events, Flower) cannot reach its "
    "workers. Use `watcherd status` (or `watcherd status --json`) for the workers, their "
    "queues and what they hold; set [broker] url to RabbitMQ or Redis to use Celery's tools."
)

_lock = threading.Lock()
_app: Celery | None = None


class Verbatim(str):
    """A message Celery prints as written: its command line shows an ``AttributeError`` raised
    while loading the app as ``message.capitalize()``, which would lower-case all of it
    (``$watcherd_config``, the config file's path)."""

    __slots__ = ()

    def capitalize(self) -> str:
        return str(self)


class AppUnavailable(AttributeError):
    """watcherd's Celery app cannot be built here; the message says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(Verbatim(message))


def tools_app() -> Celery:
    """The app for Celery's tools, built once from ``$WATCHERD_CONFIG``."""
    global _app
    with _lock:
        if _app is None:
            _app = _build()
        return _app


def _build() -> Celery:
    path = os.environ.get(ENV_VAR)
    if not path:
        raise AppUnavailable(
            f"${ENV_VAR} is not set: Celery's tools load watcherd's app from the config file it "
            f"names, e.g. {ENV_VAR}=/etc/watcherd/config.toml celery -A watcherd inspect ping")
    try:
        # remote=True: the config of a worker on another machine ([broker] and [embeddings])
        cfg = load(path, check_paths=False, remote=True)
    except ConfigError as exc:
        raise AppUnavailable(f"{ENV_VAR}: {exc}") from None
    if cfg.broker.embedded:
        raise AppUnavailable(SPOOL.format(file=cfg.file))
    from watcherd.broker.app import make_app

    return make_app(cfg)
